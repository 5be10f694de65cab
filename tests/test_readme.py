"""README.md works when pasted: every ``curl`` of "Try it by hand" against a running gateway
(``gateway serve``'s process model: an edge and two shard processes, a fresh database),
each answer equal to the JSON the README shows under it; and its errors table is the one
generated from gateway/edge/problems.py.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import shlex

import orjson
import pytest

from gateway import config_doc
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()
#: fields that differ on every run
VOLATILE = {"token", "expires_at"}


def walkthrough() -> list[tuple[list[str], list[dict]]]:
    """(curl commands, expected answers) per example of "Try it by hand", in order."""
    section = README.split("## Try it by hand", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(bash|json)\n(.*?)```", section, flags=re.S)
    examples: list[tuple[list[str], list[dict]]] = []
    for (kind, body), (next_kind, next_body) in itertools.pairwise(blocks):
        if kind != "bash" or next_kind != "json":
            continue
        commands = [line for line in body.replace("\\\n", " ").splitlines() if line.startswith("curl ")]
        answers = [orjson.loads(line) for line in next_body.splitlines() if line.strip()]
        assert commands and len(commands) == len(answers), body
        examples.append((commands, answers))
    return examples


def test_the_walkthrough_is_found():
    examples = walkthrough()
    assert len(examples) >= 9
    assert sum(len(c) for c, _ in examples) >= 12


def test_the_errors_table_is_generated():
    start = README.index(config_doc.ERRORS_BEGIN) + len(config_doc.ERRORS_BEGIN)
    end = README.index(config_doc.ERRORS_END)
    assert README[start:end].strip() == config_doc.render_errors().strip(), (
        "README.md errors table is out of date: python -m gateway.config_doc --errors")


@pytest.mark.fault  # spawns a process tree of its own
async def test_every_curl_of_the_walkthrough_answers_as_shown(spawn_gateway):
    gateway = await spawn_gateway(env={"GATEWAY_CLUSTER__SINGLE_PROCESS": "false",
                                       "GATEWAY_CLUSTER__EDGES": "1", "GATEWAY_CLUSTER__SHARDS": "2"})
    host = gateway.url.removeprefix("http://")
    for commands, answers in walkthrough():
        for command, expected in zip(commands, answers, strict=True):
            argv = shlex.split(command.replace("localhost:8080", host))
            proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE)
            out, _ = await proc.communicate()
            assert proc.returncode == 0, command
            got = orjson.loads(out)
            for field in VOLATILE & set(expected):
                assert isinstance(got.pop(field, None), str), (command, field)
                expected = {k: v for k, v in expected.items() if k != field}
            assert got == expected, f"{command}\nREADME shows {expected}\ngateway said {got}"
