"""Where an `mcp_server` starts: a relative `cwd` is read from the folder of the file that
declares it (as `import` and `schema from` are), not from the directory the program runs in;
`carlang check` reports one that is not a folder at its line; `carlang mcp import` writes the
directory the server was imported from, so the file works from anywhere (an MCP client starts
`carlang mcp proxy` with its own working directory, often `/`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from carlang_runtime.ir import McpServer
from carlang_runtime.mcp import McpClient, McpError
from typer.testing import CliRunner

from carlang.cli import app
from carlang.compiler import compile_file
from carlang.mcp_import import import_directory
from carlang.render import render_text
from tests.conftest import ROOT
from tests.mcp.conftest import TOY, initialize, needs_sdk

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


def test_import_writes_where_it_ran_relative_to_the_output_inside_its_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The directory import ran in, relative to the output file's folder (`/`-separated)
    when it is in the output's project, so the two move together; absolute when it is
    outside; relative to the working directory when the text goes to standard output."""
    project = tmp_path / "project"
    (project / "server").mkdir(parents=True)
    (project / "policies").mkdir()
    (project / "carlang.toml").write_text("")
    outside = tmp_path / "outside"
    outside.mkdir()
    monkeypatch.chdir(project)
    assert import_directory(None) == "."
    assert import_directory(Path("tools.car")) == "."
    assert import_directory(project / "tools.car") == "."
    assert import_directory(Path("policies/tools.car")) == ".."
    monkeypatch.chdir(project / "server")
    assert import_directory(Path("../tools.car")) == "server"
    assert import_directory(Path("../policies/tools.car")) == "../server"
    monkeypatch.chdir(outside)
    assert import_directory(project / "tools.car") == str(outside.resolve())
    assert import_directory(None) == "."
    assert import_directory(None, project / "server") == "../project/server"


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'runtime'}"}


def _proxy_call(program: Path, cwd: Path, tool: str, arguments: dict[str, Any]) -> str:
    """`carlang mcp proxy PROGRAM` started in `cwd` (as an MCP client starts it), one call
    of `tool`: the call's text, or what the proxy said when it failed."""
    messages = [
        initialize(),
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {
            "jsonrpc": "2.0",
            "id": "call",
            "method": "tools/call",
            "params": {"name": tool, "arguments": arguments},
        },
    ]
    done = subprocess.run(
        [sys.executable, "-m", "carlang", "mcp", "proxy", str(program)],
        input="".join(json.dumps(m) + "\n" for m in messages),
        capture_output=True,
        text=True,
        cwd=cwd,
        env=_env(),
        timeout=60,
    )
    answers = {a["id"]: a for a in map(json.loads, done.stdout.splitlines()) if "id" in a}
    assert "call" in answers, done.stderr
    result = answers["call"]["result"]
    text = "\n".join(c.get("text", "") for c in result["content"])
    assert not result["isError"], f"{text}\n{done.stderr}"
    return text


@needs_sdk
@pytest.mark.slow  # (a proxy and a real MCP server per case)
@pytest.mark.parametrize("output", ["tools.car", "car/tools.car"])
def test_an_imported_server_is_called_from_another_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, output: str
) -> None:
    """The trial's case: `carlang mcp import -o tools.car -- python server.py` in the
    server's folder (`args ["server.py"]`, a path relative to it), then the proxy started
    from elsewhere (`/`, and another folder): the call reaches the server. Before, the
    server was started in the proxy's directory and exited ("can't open file")."""
    folder = tmp_path / "bank"
    folder.mkdir()
    shutil.copy(TOY, folder / "server.py")
    (folder / "car").mkdir()
    monkeypatch.chdir(folder)
    imported = runner.invoke(
        app,
        ["mcp", "import", "--name", "bankserver", "-o", output, "--", sys.executable, "server.py"],
    )
    assert imported.exit_code == 0, imported.output
    tools = folder / output
    expected = "." if output == "tools.car" else ".."
    assert f'  args ["server.py"]\n  cwd "{expected}"\n' in tools.read_text()
    program = tools.parent / "policy.car"
    program.write_text(
        'import "tools.car"\ncapability agent { tools allow bankserver.* }\n'
        'policy small: deny bankserver.add when params.a > 100\n  message "too big"\n'
    )
    checked = runner.invoke(app, ["check", str(program)])
    assert checked.exit_code == 0, checked.output
    other = tmp_path / "client"
    other.mkdir()
    for where in (Path("/"), other):
        assert _proxy_call(program, where, "bankserver.add", {"a": 2, "b": 3}) == "5"


def test_where_import_and_serve_write_and_read_is_checked_before_anything_starts(
    tmp_path: Path,
) -> None:
    """A trial: `-o out.json` wrote carlang source into a .json file; `-o nodir/x.car` started
    the server, then failed with "No such file or directory"; `serve --root p.car` said "no
    such folder" of a file. Each is refused first, saying what to give (no server started:
    the command named does not exist)."""
    missing = str(tmp_path / "no-such-server")
    for output, said in (
        ("out.json", "-o out.json: import writes a carlang program; name a .car file"),
        (f"{tmp_path}/nodir/x.car", f"there is no folder {tmp_path}/nodir to write it in"),
    ):
        done = runner.invoke(app, ["mcp", "import", "-o", output, "--", missing])
        assert done.exit_code == 2 and said in done.output, done.output
    program = tmp_path / "p.car"
    program.write_text("tool t()\n")
    done = runner.invoke(app, ["mcp", "serve", "--root", str(program)])
    assert done.exit_code == 2
    assert f"--root {program}: a file; name the folder that holds it" in done.output
