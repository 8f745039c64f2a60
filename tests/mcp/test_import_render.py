"""What `carlang mcp import` writes of what the server says of itself: its name and version
go into the file's first comment as one line (a name holding a newline wrote declarations
into the program), anything but text is left out; a URL holding a credential is written as
given, with a comment saying to keep the file private. A tool whose name is a carlang name
keeps it; one renamed is said in the file and on stderr."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from carlang_runtime.agents.specs import visible_tools
from carlang_runtime.ir import McpServer
from typer.testing import CliRunner

from carlang import mcp_import
from carlang.cli import app
from carlang.compiler import compile_file
from carlang.mcp_import import renamed_tools, render_import

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


def _tools(*names: str) -> list[dict[str, Any]]:
    return [
        {"name": n, "description": f"tool {n}", "inputSchema": {"type": "object"}} for n in names
    ]


def test_a_tool_whose_name_is_a_carlang_name_keeps_it_exactly(tmp_path: Path) -> None:
    """`get-env` was imported as `s.get_env` and the server's own `get_env` as `s.get_env_2`:
    `deny s.get_env` then let the real `get_env` through. Names that are carlang names are
    given out first; only a tool that must be renamed gets a derived name, never another's."""
    tools = _tools("get-env", "get_env", "_", "__a__b", "a.b", "a_b", "x y", "true")
    assert renamed_tools("s", tools) == {
        "get-env": "s.get_env_2",
        "a.b": "s.a_b_2",
        "x y": "s.x_y",
    }
    text = render_import(McpServer(name="s", command="x"), {}, tools)
    assert "# renamed: the server's `get-env` is not a carlang name\ntool s.get_env_2()" in text
    assert "renamed: the server's `get_env`" not in text
    path = tmp_path / "s.car"
    path.write_text(text + "capability c {\n  tools allow s.*  deny s.get_env\n}\n")
    result = compile_file(path, tmp_path)
    assert result.program is not None, result.diagnostics
    remote = {t.name: t.mcp.tool for t in result.program.tools if t.mcp is not None}
    assert remote == {
        "s.get_env": "get_env",
        "s.get_env_2": "get-env",
        "s._": "_",
        "s.__a__b": "__a__b",
        "s.a_b": "a_b",
        "s.a_b_2": "a.b",
        "s.x_y": "x y",
        "s.true": "true",
    }
    allowed = {s.name for s in visible_tools(result.program, "c")}
    assert "s.get_env" not in allowed and "s.get_env_2" in allowed


def test_import_warns_of_each_renamed_tool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tools = _tools("get-env", "get_env", "ns/x\x1b[2J")
    monkeypatch.setattr(mcp_import, "import_server", lambda server, timeout: ({}, tools))
    out = tmp_path / "s.car"
    result = CliRunner().invoke(app, ["mcp", "import", "--name", "s", "-o", str(out), "--", "x"])
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[:2] == [
        "warning: tool `get-env` imported as s.get_env_2: its name is not a carlang name"
        " (policies and capabilities name it so)",
        "warning: tool `ns/x\\x1b[2J` imported as s.ns_x__2J: its name is not a carlang name"
        " (policies and capabilities name it so)",
    ]
    assert "# renamed: the server's `get-env` is not a carlang name" in out.read_text()


def test_the_name_of_a_tool_left_out_stays_in_its_comment(tmp_path: Path) -> None:
    """A tool not imported (its schema unusable) is named in a comment: a name holding a
    newline wrote declarations into the program."""
    name = "evil\npolicy allow_all: deny s.ping when true\n#"
    broken = {"name": name, "inputSchema": {"type": "string"}}
    text = render_import(McpServer(name="s", command="x"), {}, [TOOL, broken])
    assert "# not imported: `evil policy allow_all: deny s.ping when true #`: its" in text
    path = tmp_path / "s.car"
    path.write_text(text)
    program = compile_file(path, tmp_path).program
    assert program is not None and program.policies == []


def test_a_tool_that_must_be_called_as_a_task_is_left_out_saying_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """carlang calls tools with a plain tools/call, which a server refuses for a tool whose
    `execution.taskSupport` is "required" (MCP 2025-11-25): it is not imported, with a
    comment and a warning; "optional" and "forbidden" are called as any other."""
    tools = _tools("long_job", "quick", "either", "never")
    tools[0]["execution"] = {"taskSupport": "required"}
    tools[2]["execution"] = {"taskSupport": "optional"}
    tools[3]["execution"] = {"taskSupport": "forbidden"}
    monkeypatch.setattr(mcp_import, "import_server", lambda server, timeout: ({}, tools))
    out = tmp_path / "s.car"
    result = CliRunner().invoke(app, ["mcp", "import", "--name", "s", "-o", str(out), "--", "x"])
    assert result.exit_code == 0, result.output
    why = (
        "it must be called as a task (execution.taskSupport: required), which carlang does"
        " not do: a call of it would be refused"
    )
    assert f"warning: tool `long_job` not imported: {why}" in result.stderr
    text = out.read_text()
    assert f"# not imported: `long_job`: {why}" in text
    program = compile_file(out, tmp_path).program
    assert program is not None
    assert {t.name for t in program.tools} == {"s.quick", "s.either", "s.never"}


@pytest.mark.parametrize(
    ("schema", "where", "shown"),
    [
        (
            {"type": "integer", "default": 2**70},
            "properties.n.default",
            "1180591620717411303424",
        ),
        (
            {"type": "integer", "enum": [1, -(2**63) - 1]},
            "properties.n.enum[1]",
            "-9223372036854775809",
        ),
        ({"type": "integer", "maximum": 10**400}, "properties.n.maximum", "100000000000...000000"),
    ],
)
def test_a_tool_whose_schema_holds_an_integer_out_of_range_is_left_out_saying_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, schema: dict[str, Any], where: str, shown: str
) -> None:
    """A .car integer fits in 64 bits: a schema holding one past them (a default of 2^70) made
    the import fail with an internal error (NotFormattable); the tool is now left out with a
    comment and a warning, and the others imported."""
    tools = _tools("ok", "big")
    tools[1]["inputSchema"] = {"type": "object", "properties": {"n": schema}}
    monkeypatch.setattr(mcp_import, "import_server", lambda server, timeout: ({}, tools))
    out = tmp_path / "s.car"
    result = CliRunner().invoke(app, ["mcp", "import", "--name", "s", "-o", str(out), "--", "x"])
    assert result.exit_code == 0, result.output
    why = (
        f"its input schema is not usable: the integer {shown} at {where} is out of range"
        " (carlang's integers fit in 64 bits)"
    )
    assert f"warning: tool `big` not imported: {why}" in result.stderr
    assert f"# not imported: `big`: {why}" in out.read_text()
    program = compile_file(out, tmp_path).program
    assert program is not None
    assert {t.name for t in program.tools} == {"s.ok"}
