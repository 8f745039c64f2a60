"""`carlang mcp serve` says it is carlang (its version, not the SDK's), and a call's bad
arguments are one clean line each: which argument, what is wrong (no pydantic text); an
argument no tool takes is refused, not ignored. (A tool it does not have is a JSON-RPC error:
test_serve_protocol.py.)"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from tests.mcp.conftest import needs_sdk
from tests.mcp.test_serve import call, serve_params, serving

# slow: a server as a subprocess per test (the default run stays under three minutes; CI
# runs these)
pytestmark = [needs_sdk, pytest.mark.slow]


def test_serve_reports_carlang_and_its_version() -> None:
    from mcp import ClientSession
    from mcp.client.stdio import stdio_client

    from carlang import __version__

    async def scenario() -> None:
        async with stdio_client(serve_params()) as (read, write):
            async with ClientSession(read, write) as session:
                info = (await session.initialize()).serverInfo
                assert (info.name, info.version) == ("carlang", __version__)

    anyio.run(scenario)


def test_bad_arguments_are_one_clean_line_each(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with serving(cwd=tmp_path) as session:
            cases: list[tuple[str, dict[str, object], str]] = [
                ("check", {"path": 3}, "argument `path`: expected a string, got a number"),
                (
                    "check",
                    {"program": ["tool t()"]},
                    "argument `program`: expected a string, got an array",
                ),
                ("policy_check", {"params": {}}, "argument `tool` is missing"),
                (
                    "policy_check",
                    {"tool": "t", "params": [1], "state": "x"},
                    "argument `params`: expected an object, got an array\n"
                    "argument `state`: expected an object, got a string",
                ),
                (
                    "rank",
                    {"candidates": [{}, 1]},
                    "argument `candidates[1]`: expected an object, got a number",
                ),
                ("verify", {}, "argument `proposal` is missing"),
                (
                    "policy_check",
                    {"tool": "t", "parameters": {"x": 1}, "program": "tool t(x: int)"},
                    "tool `policy_check` has no argument `parameters` (did you mean `params`?)",
                ),
                (
                    "check",
                    {"text": "tool t()"},
                    "tool `check` has no argument `text` (its arguments: program, path)",
                ),
                ("check", {}, "give the program: `program` (.car source text) or `path` (a file)"),
            ]
            for name, arguments, expected in cases:
                error, message = await call(session, name, **arguments)
                assert error and message == expected, (name, arguments, message)

    anyio.run(scenario)
