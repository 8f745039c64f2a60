"""Where an `mcp_server` starts: a relative `cwd` is read from the folder of the file that
declares it (as `import` and `schema from` are), not from the directory the program runs in
(an MCP client starts `carlang mcp proxy` with its own working directory, often `/`);
`carlang check` reports one that is not a folder at its line."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from carlang_runtime.ir import McpServer
from carlang_runtime.mcp import McpClient, McpError
from typer.testing import CliRunner

from carlang.cli import app
from carlang.compiler import compile_file
from carlang.render import render_text

runner = CliRunner()

SERVERS = """
mcp_server here {
  command "python3"
  args ["server.py"]
  cwd "."
}
mcp_server below {
  command "python3"
  cwd "bin"
}
mcp_server above {
  command "python3"
  cwd "../data"
}
mcp_server fixed {
  command "python3"
  cwd "ABSOLUTE"
}
mcp_server anywhere { command "python3" }
"""


def _project(tmp_path: Path) -> tuple[Path, Path]:
    """A project whose servers are declared in `servers/tools.car`, imported by `main.car`
    at its top: (main.car, the servers' folder)."""
    project = tmp_path / "project"
    servers = project / "servers"
    (servers / "bin").mkdir(parents=True)
    (project / "data").mkdir()
    (tmp_path / "fixed").mkdir()
    (project / "carlang.toml").write_text("")
    text = SERVERS.replace("ABSOLUTE", (tmp_path / "fixed").as_posix())
    (servers / "tools.car").write_text(text)
    main = project / "main.car"
    main.write_text('import "servers/tools.car"\n')
    return main, servers


def test_a_relative_cwd_is_read_from_the_declaring_files_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Compiled from another directory (and through an import from another folder), each
    relative `cwd` is its declaring file's folder joined with it, made absolute; an absolute
    one stays; a server without `cwd` starts where the program runs, as before."""
    main, servers = _project(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = compile_file(main, main.parent)
    assert not result.diagnostics.items, render_text(result.diagnostics.sorted())
    assert result.program is not None
    cwd = {s.name: s.cwd for s in result.program.mcp_servers}
    assert cwd == {
        "here": str(servers.resolve()),
        "below": str((servers / "bin").resolve()),
        "above": str((servers.parent / "data").resolve()),
        "fixed": str((tmp_path / "fixed").resolve()),
        "anywhere": None,
    }


def test_check_reports_a_cwd_that_is_not_a_folder_at_its_line(tmp_path: Path) -> None:
    (tmp_path / "a_file").write_text("")
    program = tmp_path / "servers.car"
    program.write_text(
        "mcp_server missing {\n"
        '  command "python3"\n'
        '  cwd "nowhere"\n'
        "}\n"
        "mcp_server file {\n"
        '  command "python3"\n'
        '  cwd "a_file"\n'
        "}\n"
        'mcp_server gone { command "python3"  cwd "/no/such/folder" }\n'
        'mcp_server empty { command "python3"  cwd "" }\n'
    )
    result = runner.invoke(app, ["check", str(program)])
    assert result.exit_code == 1
    out = result.output
    folder = tmp_path.resolve()
    assert (
        f"servers.car:3:7: error[CL0220]: `cwd` `nowhere` (from this file's folder:"
        f" {folder / 'nowhere'}) does not exist: the server cannot start there"
    ) in out
    assert "servers.car:7:7: error[CL0220]: `cwd` `a_file` (from this file's folder:" in out
    assert "a_file) is not a folder" in out
    assert "servers.car:9:" in out and "`cwd` /no/such/folder does not exist" in out
    assert "servers.car:10:" in out and "`cwd` is empty" in out
    assert "4 errors" in out


def test_a_runtime_given_a_missing_cwd_says_so() -> None:
    """An IR built otherwise (not checked) with a `cwd` that is not there: the error names
    the directory, not only "No such file or directory" (as if the command were missing)."""
    server = McpServer(name="bank", command=sys.executable, cwd="/no/such/folder")
    client = McpClient(server)
    with pytest.raises(McpError) as raised:
        client.start(5)
    client.close()
    assert "working directory (cwd) /no/such/folder is not an existing folder" in str(raised.value)
