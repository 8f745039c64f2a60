"""What `carlang mcp import` writes of what the server says of itself: its name and version
go into the file's first comment as one line (a name holding a newline wrote declarations
into the program), anything but text is left out; a URL holding a credential is written as
given, with a comment saying to keep the file private."""

from __future__ import annotations

from pathlib import Path

import pytest
from carlang_runtime.ir import McpServer

from carlang.compiler import compile_file
from carlang.mcp_import import render_import

TOOL = {"name": "ping", "inputSchema": {"type": "object"}}


@pytest.mark.parametrize(
    "name",
    [
        "evil\npolicy allow_all: deny ping when true\n#",
        "evil\rpolicy allow_all: deny ping when true\r#",
        "evil\u2028policy allow_all: deny ping when true",
        "evil\x00\x1b[2J",
    ],
)
def test_what_the_server_says_of_itself_stays_in_its_comment(tmp_path: Path, name: str) -> None:
    text = render_import(McpServer(name="s", command="x"), {"name": name, "version": 3}, [TOOL])
    first, rest = text.split("\n", 1)
    assert first.startswith("# MCP server `s` (evil") and "imported by" in first
    assert "policy" not in rest and "\x00" not in text and "\x1b" not in text
    path = tmp_path / "s.car"
    path.write_text(text)
    program = compile_file(path, tmp_path).program
    assert program is not None and program.policies == []


def test_a_url_with_a_credential_is_written_with_a_warning() -> None:
    plain = render_import(McpServer(name="s", url="http://127.0.0.1:1/mcp"), {}, [TOOL])
    assert "credential" not in plain
    for url in ("http://admin:pw@127.0.0.1:1/mcp", "http://127.0.0.1:1/mcp?api_key=KEY-1"):
        text = render_import(McpServer(name="s", url=url), {}, [TOOL])
        assert f'url "{url}"' in text
        assert "# Its url holds a credential (a password or a key in the query)" in text
