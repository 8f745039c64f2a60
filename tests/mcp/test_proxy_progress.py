"""A call the proxy holds for its tool's rate limit is not silent: a client that asked for
progress (the SDK's `progress_callback` sends a `_meta.progressToken`) hears why its call
waits and for how long, over stdio and over HTTP; a call that does not wait sends nothing."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from typer.testing import CliRunner

from carlang.cli import app
from tests.conftest import ROOT
from tests.mcp.conftest import HttpProxy, needs_sdk, toy_command

# slow: the proxy as a subprocess in front of a real MCP server (CI runs these)
pytestmark = [needs_sdk, pytest.mark.slow]
runner = CliRunner()


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("proxy_progress")
    toy = folder / "toy.car"
    result = runner.invoke(
        app, ["mcp", "import", "--name", "toy", "-o", str(toy), "--", *toy_command()]
    )
    assert result.exit_code == 0, result.output
    # one call of toy.slow per 2 seconds: the second call of a burst waits its turn
    limited = toy.read_text().replace(
        'description "Sleep, then answer."', 'description "Sleep, then answer."\n  rate 1 per 2s'
    )
    assert "rate 1 per 2s" in limited
    toy.write_text(limited)
    path = folder / "limited.car"
    path.write_text('import "toy.car"\ncapability agent { tools allow toy.slow }\n')
    return path


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'runtime'}"}


async def _two_calls(session: Any) -> list[list[tuple[float, float | None, str | None]]]:
    """Two calls of toy.slow in a row, each asking for progress: what each one heard."""
    heard: list[list[tuple[float, float | None, str | None]]] = [[], []]
    for index in range(2):

        async def note(
            progress: float, total: float | None, message: str | None, index: int = index
        ) -> None:
            heard[index].append((progress, total, message))

        result = await session.call_tool("toy.slow", {"seconds": 0}, progress_callback=note)
        assert not result.isError, result
    return heard


def _check(heard: list[list[tuple[float, float | None, str | None]]]) -> None:
    first, second = heard
    assert first == []  # (it did not wait)
    assert len(second) == 1, second
    progress, total, message = second[0]
    assert progress == 1 and total is None
    assert message is not None and "rate limit of tool 'toy.slow'" in message, message
    assert message.startswith("waiting ") and " s for " in message


def test_a_call_held_by_a_rate_limit_tells_the_stdio_client(program: Path) -> None:
    async def client() -> list[list[tuple[float, float | None, str | None]]]:
        from mcp import ClientSession, StdioServerParameters
        from mcp.client.stdio import stdio_client

        command = [sys.executable, "-m", "carlang", "mcp", "proxy", str(program)]
        parameters = StdioServerParameters(
            command=command[0], args=[*command[1:], "--capability", "agent"], env=_env()
        )
        async with stdio_client(parameters) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                return await _two_calls(session)

    _check(anyio.run(client))


def test_a_call_held_by_a_rate_limit_tells_the_http_client(program: Path) -> None:
    proxy = HttpProxy(program)
    try:

        async def client() -> list[list[tuple[float, float | None, str | None]]]:
            from mcp import ClientSession
            from mcp.client.streamable_http import streamable_http_client

            async with streamable_http_client(proxy.url) as (read, write, _):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    return await _two_calls(session)

        _check(anyio.run(client))
    finally:
        said = proxy.stop()
    assert "Traceback" not in said, said
