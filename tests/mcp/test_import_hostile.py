"""`carlang mcp import` (and the runtime's `tools/list`) against a server whose list is
hostile or malformed (tests/mcp/hostile_server.py): a reply that is not a list of tools is
a clear error (exit 2) saying what the server sent; an entry that is not a tool is skipped
with a warning; a property named "" (JSON Schema allows it) is imported; pagination that
never ends (a cursor given before, or page after page) is an error naming the server, never
a loop."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from carlang_runtime.ir import McpServer
from carlang_runtime.mcp import McpClient, McpError
from typer.testing import CliRunner

from carlang.cli import app

HOSTILE = Path(__file__).resolve().parent / "hostile_server.py"
runner = CliRunner()

# slow: each case starts the scripted server as a subprocess (the default run stays under
# three minutes; CI runs these)
pytestmark = pytest.mark.slow


def imported(tmp_path: Path, mode: str) -> Any:
    """`carlang mcp import --output tmp/a.car -- python hostile_server.py MODE`, in process."""
    out = tmp_path / "a.car"
    return runner.invoke(
        app, ["mcp", "import", "--output", str(out), "--", sys.executable, str(HOSTILE), mode]
    )


def checked(path: Path) -> Any:
    return runner.invoke(app, ["check", str(path)])


def bounded(call: Callable[[], Any], seconds: float = 5.0) -> Any:
    """`call()`'s result or its exception, failing the test when it runs on past `seconds`
    (a list that never ends): run on a thread, which the caller's `finally` ends."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still listing after {seconds:g}s: it never ends"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


@pytest.fixture
def client_for() -> Iterator[Callable[[str], McpClient]]:
    """A started McpClient for `hostile_server.py MODE`, closed after the test (which ends
    a list still being followed: its next request fails)."""
    clients: list[McpClient] = []

    def start(mode: str) -> McpClient:
        server = McpServer(name="hostile", command=sys.executable, args=[str(HOSTILE), mode])
        client = McpClient(server, stderr=subprocess.PIPE)
        clients.append(client)
        client.start(10)
        return client

    try:
        yield start
    finally:
        for client in clients:
            client.close()


# -- a reply that is not a list of tools: a clear error -----------------------------------


def test_tools_that_is_not_a_list_is_an_error(tmp_path: Path) -> None:
    result = imported(tmp_path, "notlist")
    assert result.exit_code == 2, result.output
    assert (
        "error: MCP server 'hostile' answered tools/list with `tools` that is not a list of"
        ' tools: {"a": 1}' in result.output
    )
    assert "internal error" not in result.output and "Traceback" not in result.output
    assert not (tmp_path / "a.car").exists()


def test_a_result_that_is_not_an_object_is_an_error(tmp_path: Path) -> None:
    result = imported(tmp_path, "notobject")
    assert result.exit_code == 2, result.output
    assert "error: MCP server 'hostile' answered with a result that is not an object" in (
        result.output
    )
    assert "internal error" not in result.output


# -- an entry that is not a tool: skipped with a warning -----------------------------------


def test_entries_that_are_not_tools_are_skipped_with_a_warning(tmp_path: Path) -> None:
    result = imported(tmp_path, "toolnotobj")
    assert result.exit_code == 0, result.output
    output = result.output
    assert "warning: not imported: tools/list entry 1: it is not a tool (an object) but 5" in output
    assert 'tools/list entry 2: it is not a tool (an object) but "x"' in output
    assert "tools/list entry 3: it is not a tool (an object) but null" in output
    assert "tools/list entry 4: it has no `name`" in output
    assert "tools/list entry 5: it has a `name` that is not text (7)" in output
    assert "with 1 tool" in output
    text = (tmp_path / "a.car").read_text()
    assert "tool hostile.add()" in text
    assert "# not imported: tools/list entry 1: it is not a tool (an object) but 5" in text
    assert checked(tmp_path / "a.car").exit_code == 0


def test_the_runtime_lists_only_the_entries_that_are_tools(
    client_for: Callable[[str], McpClient],
) -> None:
    client = client_for("toolnotobj")
    tools = bounded(lambda: client.list_tools(10))
    assert [tool["name"] for tool in tools] == ["add"]


# -- a property named "": JSON Schema allows it --------------------------------------------


def test_a_property_named_empty_is_imported(tmp_path: Path) -> None:
    result = imported(tmp_path, "emptyprop")
    assert result.exit_code == 0, result.output
    assert "internal error" not in result.output and "not imported" not in result.output
    text = (tmp_path / "a.car").read_text()
    assert '"": { type: "string" }' in text
    assert 'properties: { "": { type: "integer" } }' in text
    assert "  description" not in text and "  read_only" not in text  # (a number, a list)
    assert checked(tmp_path / "a.car").exit_code == 0


# -- pagination that never ends: an error, never a loop ------------------------------------


def test_import_stops_at_a_cursor_given_before() -> None:
    command = [sys.executable, "-m", "carlang", "mcp", "import", "--timeout", "20", "--"]
    try:
        done = subprocess.run(
            [*command, sys.executable, str(HOSTILE), "cursorloop"],
            capture_output=True,
            text=True,
            timeout=10,
            env={**os.environ, "NO_COLOR": "1"},
        )
    except subprocess.TimeoutExpired:
        pytest.fail("carlang mcp import followed the same nextCursor for 10s: it never ends")
    assert done.returncode == 2, done.stderr
    assert (
        "error: MCP server 'hostile' answered tools/list with a nextCursor it gave before"
        ' ("same", after 2 pages): its pagination would never end' in done.stderr
    )
    assert done.stdout == ""


def test_the_runtime_stops_at_a_cursor_given_before(
    client_for: Callable[[str], McpClient],
) -> None:
    client = client_for("cursorloop")
    with pytest.raises(McpError, match=r'a nextCursor it gave before \("same", after 2 pages\)'):
        bounded(lambda: client.list_tools(10))


def test_the_runtime_stops_after_too_many_pages(
    client_for: Callable[[str], McpClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    from carlang_runtime.mcp import client as module

    monkeypatch.setattr(module, "MAX_TOOL_PAGES", 20, raising=False)
    client = client_for("cursorever")
    with pytest.raises(McpError, match="listed its tools in more than 20 pages"):
        bounded(lambda: client.list_tools(10))


def test_a_cursor_that_is_not_a_string_is_an_error(
    client_for: Callable[[str], McpClient],
) -> None:
    client = client_for("cursornumber")
    with pytest.raises(McpError, match="a `nextCursor` that is not a string: 5"):
        bounded(lambda: client.list_tools(10))


def test_a_list_over_pages_that_ends_is_followed(client_for: Callable[[str], McpClient]) -> None:
    client = client_for("paged")
    assert [tool["name"] for tool in bounded(lambda: client.list_tools(10))] == ["t0", "t1", "t2"]
