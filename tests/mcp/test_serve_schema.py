"""`carlang mcp serve` and `schema from "file.json"`, the one construct that reads a file that
is not .car: a program the client gives inline may not use it (it read any JSON file under the
root and quoted it back: `its type is 'sk-live-TOPSECRET'`), with one message whether the file
exists or not; a program given by `path` (a .car file of the project) and the project files an
inline program imports may, and what is said about their schema files never quotes them."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from tests.mcp.conftest import needs_sdk
from tests.mcp.test_serve import call, serving

# slow: mcp serve as a subprocess, per test (the default run stays under three minutes; CI runs these)
pytestmark = [needs_sdk, pytest.mark.slow]

CONFIG = {"type": "sk-live-TOPSECRET", "x": {"password": "TOPSECRET2"}, "arr": [{"k": "T3"}]}
GOOD = {"type": "object", "properties": {"env": {"enum": ["staging", "prod"]}}}


def _project(tmp_path: Path) -> Path:
    (tmp_path / "cfg.json").write_text(json.dumps(CONFIG))
    (tmp_path / ".env").write_text("DB_PASSWORD=hunter2-TOPSECRET\n")
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "deploy.json").write_text(json.dumps(GOOD))
    (tmp_path / "tools.car").write_text('tool deploy() { schema from "schemas/deploy.json" }\n')
    (tmp_path / "bad.car").write_text(
        'tool b() { schema from "cfg.json" }\n'
        'tool c() { schema from "cfg.json#/x" }\n'
        'tool d() { schema from ".env" }\n'
        'tool e() { schema from "cfg.json#/nope" }\n'
    )
    return tmp_path


INLINE = [
    'tool b() { schema from "cfg.json" }\n',
    'tool b() { schema from "cfg.json#/x/password" }\n',
    'tool b() {\n  schema # a comment\n  from ".env"\n}\n',
    'tool b() { schema from "no-such-file.json" }\n',
    'tool b() { schema from "../../etc/hostname" }\n',
]

REFUSED = "`schema from` reads a file: a program given inline to `carlang mcp serve` may not use it"


def test_an_inline_program_may_not_read_a_schema_file(tmp_path: Path) -> None:
    project = _project(tmp_path)

    async def scenario() -> None:
        async with serving(cwd=project) as session:
            messages = set()
            for program in INLINE:
                error, checked = await call(session, "check", program=program)
                assert not error and not checked["ok"], checked
                (found,) = checked["diagnostics"]
                assert (found["code"], found["severity"]) == ("CL0219", "error")
                assert found["message"] == REFUSED, found
                assert "TOPSECRET" not in json.dumps(checked)
                messages.add(json.dumps({**found, "labels": None}))
                for tool, arguments in (
                    ("policy_check", {"tool": "b", "params": {}}),
                    ("explain", {"tool": "b", "params": {}}),
                    ("verify", {"proposal": {"id": "p", "actions": []}}),
                    ("rank", {"candidates": [{"id": "p", "actions": []}]}),
                ):
                    error, message = await call(session, tool, program=program, **arguments)
                    assert error and REFUSED in message, (tool, message)
                    assert "TOPSECRET" not in message
            assert len(messages) == 1  # (one answer whether the file exists or not)

    anyio.run(scenario)


def test_a_project_file_may_read_one_and_nothing_of_it_is_quoted(tmp_path: Path) -> None:
    project = _project(tmp_path)

    async def scenario() -> None:
        async with serving(cwd=project) as session:
            error, checked = await call(session, "check", path="tools.car")
            assert not error and checked["ok"], checked
            for given in ({"path": "tools.car"}, {"program": 'import "tools.car"\n'}):
                error, decided = await call(
                    session, "policy_check", tool="deploy", params={"env": "prod"}, **given
                )
                assert not error and decided["decision"] == "allow", decided
                error, message = await call(
                    session, "policy_check", tool="deploy", params={"env": "dev"}, **given
                )
                assert error and "is not one of" in message  # (the schema is the project's)
            for given in ({"path": "bad.car"}, {"program": 'import "bad.car"\n'}):
                error, checked = await call(session, "check", **given)
                shown = json.dumps(checked)
                assert not error and not checked["ok"]
                assert "TOPSECRET" not in shown and "T3" not in shown, shown
                messages = [d["message"] for d in checked["diagnostics"] if d["code"] == "CL0219"]
                assert messages == [
                    "the schema of tool `b` is not usable (what is wrong is not shown:"
                    " `carlang mcp serve` quotes nothing of a schema file; `carlang check`"
                    " says)",
                    "schema document `.env` is not JSON",
                    "`cfg.json` has nothing at `#/nope` (no `nope`)",
                ], messages

    anyio.run(scenario)
