"""docs/CONFIGURATION.md, generated from the settings model: ``python -m gateway.config_doc``.

Every setting of ``gateway/config.py`` (and of each provider's ``settings.py``) with its
type, its default, its environment variable and the comments written beside it in the
source, so the reference cannot drift from the code (tests/test_config_doc.py compares).
"""

from __future__ import annotations

import inspect
import io
import sys
import tokenize
from typing import Any

import msgspec

from gateway import config
from gateway.providers import registry
from gateway.providers.integration import IntegrationSettings

HEADER = """# Configuration reference

Generated from the settings model (`gateway/config.py`, `gateway/providers/*/settings.py`)
by `python -m gateway.config_doc > docs/CONFIGURATION.md`; `tests/test_config_doc.py` fails
when it is out of date. How settings load (README.md, "Configuration"):
`config/default.toml`, then `config/sandbox.toml` in sandbox mode, then the file named by
`--config FILE` or `GATEWAY_CONFIG`, then environment variables: `GATEWAY_<SECTION>__<KEY>`
overrides `[section] key` (`GATEWAY_SHARD__BATCH_SIZE_MAX=500`), `GATEWAY_DATABASE_URL` and
`GATEWAY_REDIS_URL` are short forms, `GATEWAY_DATA_DIR`, `GATEWAY_LOG_LEVEL` and
`GATEWAY_MODE` set the top-level keys. Start-up refuses contradictory limits with one line
naming the setting (`Settings.check`). Units are the last word of a name: `_ms`, `_s`,
`_bytes`, `_minor`, `_days`; `_max` is an upper bound. A setting without an environment
variable is set in a TOML file.
"""


def _field_comments(cls: type) -> dict[str, str]:
    """The comments beside each field in ``cls``'s source: the comment lines just above it
    (after the previous field) and its trailing comment."""
    source = inspect.getsource(cls)
    comments: dict[str, str] = {}
    pending: list[str] = []
    line_of_field: dict[int, str] = {}
    names = {f.name for f in msgspec.structs.fields(cls)}
    for number, line in enumerate(source.splitlines(), start=1):
        stripped = line.strip()
        head = stripped.split(":", 1)[0].strip()
        if head in names and line.startswith("    ") and not line.startswith("     ") and ":" in stripped:
            line_of_field[number] = head
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    trailing: dict[int, str] = {}
    standalone: dict[int, str] = {}
    for token in tokens:
        if token.type == tokenize.COMMENT:
            text = token.string.lstrip("#").strip()
            if token.line.strip().startswith("#"):
                standalone[token.start[0]] = text
            else:
                trailing[token.start[0]] = text
    for number in range(1, len(source.splitlines()) + 1):
        if number in standalone:
            pending.append(standalone[number])
        elif number in line_of_field:
            parts = pending + ([trailing[number]] if number in trailing else [])
            comments[line_of_field[number]] = " ".join(parts)
            pending = []
        elif not source.splitlines()[number - 1].strip():
            pending = []
    return comments


def _default(field: Any) -> str:
    if field.default is not msgspec.NODEFAULT:
        value = field.default
    elif field.default_factory is not msgspec.NODEFAULT:
        value = field.default_factory()
    else:
        return "required"
    if isinstance(value, msgspec.Struct):
        return "{ " + ", ".join(f"{k} = {v!r}" for k, v in msgspec.structs.asdict(value).items()) + " }"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, int):
        return f"{value:_}".replace("_", " ") if abs(value) >= 10_000 else str(value)
    return "{}" if value == {} else "[]" if value == [] else repr(value)


def _type(field: Any) -> str:
    t = field.type
    if "SecretRef" in str(t):
        return "secret (text, `{ env = NAME }` or `{ file = PATH }`)"
    name = getattr(t, "__name__", None) or str(t)
    return name.replace("typing.", "").replace("|", "or")


def _doc(cls: type) -> str:
    doc = inspect.getdoc(cls)
    if not doc or doc == inspect.getdoc(msgspec.Struct):
        return ""
    return doc.replace("``", "`") + "\n\n"


def _table(cls: type, prefix: str | None, skip: tuple[str, ...] = ()) -> str:
    comments = _field_comments(cls)
    env_head = f"GATEWAY_{prefix.upper()}__" if prefix else "GATEWAY_"
    rows = ["| setting | type | default | environment | meaning |", "|---|---|---|---|---|"]
    for field in msgspec.structs.fields(cls):
        if field.name in skip:
            continue
        meaning = comments.get(field.name, "").replace("|", "\\|").replace("``", "`")
        scalar = field.type in (str, int, bool)
        env = f"`{env_head}{field.name.upper()}`" if prefix is not None and scalar else "-"
        rows.append(f"| `{field.name}` | {_type(field)} | `{_default(field)}` | {env} | {meaning} |")
    return "\n".join(rows) + "\n"


def render() -> str:
    """The whole document (markdown)."""
    out = [HEADER, "\n"]
    sections = [(f.name, f.type) for f in msgspec.structs.fields(config.Settings)
                if isinstance(f.type, type) and issubclass(f.type, msgspec.Struct)]
    out.append("## Top level\n\n`mode` is `sandbox` or `production` (docs/SECURITY.md).\n\n")
    out.append(_table(config.Settings, "", skip=(*(name for name, _ in sections), "partners", "integrations")))
    for name, cls in sections:
        out.append(f"\n## [{name}]\n\n{_doc(cls)}")
        out.append(_table(cls, name))
    out.append("\n## [partners.<partner_id>]\n\n" + _doc(config.Partner))
    out.append(_table(config.Partner, None))
    out.append("\n`api_keys` entries:\n\n" + _doc(config.ApiKey) + _table(config.ApiKey, None))
    out.append("\n## [integrations.<name>]\n\n" + _doc(IntegrationSettings))
    out.append("Every integration has:\n\n" + _table(IntegrationSettings, None))
    common = {f.name for f in msgspec.structs.fields(IntegrationSettings)}
    for provider in registry.NAMES:
        cls = next(t for t in registry.settings_types() if t.__struct_config__.tag == provider)
        out.append(f'\n### provider = "{provider}"\n\n{_doc(cls)}')
        out.append(_table(cls, None, skip=tuple(common)))
    return "".join(out)


ERRORS_BEGIN = "<!-- errors table: python -m gateway.config_doc --errors -->"
ERRORS_END = "<!-- end of errors table -->"


def render_errors() -> str:
    """The generic API's problem codes as a markdown table (README.md, "Errors"), from
    gateway/edge/problems.py: code, HTTP status, title, retryable, and the routes that
    can answer it."""
    from gateway.edge import problems

    def short(route: str) -> str:  # "POST /v1/wallet/debit" -> "debit"
        return [part for part in route.split("/") if not part.startswith("{")][-1]

    rows = ["| code | HTTP | meaning | retry the same request? | answered by |", "|---|---|---|---|---|"]
    for code, status in problems.HTTP_STATUS.items():
        routes = [route for route, answers in problems.ROUTES.items() if code in answers.codes]
        if not routes:
            continue  # provider-only codes: each adapter answers in its own protocol
        where = "every route" if len(routes) == len(problems.ROUTES) else ", ".join(short(r) for r in routes)
        retry = "yes, after `Retry-After` s" if code in problems.RETRYABLE else "no"
        rows.append(f"| `{code}` | {status} | {problems.TITLES.get(code, '')} | {retry} | {where} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render_errors() if sys.argv[1:] == ["--errors"] else render())
