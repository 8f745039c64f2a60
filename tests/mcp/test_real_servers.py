"""End to end against MCP servers no one here wrote: mcp-server-git (PyPI) imported, checked,
run, and proxied to the official SDK client; the npm filesystem and memory servers when npx
can fetch them (skipped cleanly otherwise)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from typer.testing import CliRunner

from carlang.cli import app
from tests.conftest import ROOT
from tests.mcp.conftest import needs_sdk, npx_or_skip, server_command

pytestmark = [needs_sdk, pytest.mark.slow]
runner = CliRunner()


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "a.txt").write_text("one\n")
    subprocess.run([*git, "add", "a.txt"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "first commit"], check=True)
    (repo / "a.txt").write_text("two\n")
    return repo


def _import(tmp_path: Path, command: list[str], name: str) -> Path:
    out = tmp_path / f"{name}.car"
    result = runner.invoke(app, ["mcp", "import", "--name", name, "-o", str(out), "--", *command])
    if result.exit_code != 0 and "npx" in command[0]:
        pytest.skip(f"npx could not start {command[-2]}: {result.output.strip()[:200]}")
    assert result.exit_code == 0, result.output
    assert runner.invoke(app, ["check", str(out)]).exit_code == 0
    assert runner.invoke(app, ["fmt", "--check", str(out)]).exit_code == 0
    return out


def test_mcp_server_git_run_and_proxy(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    path = _import(tmp_path, server_command("mcp-server-git"), "git")
    path.write_text(
        path.read_text()
        + f"""
capability reader {{ tools allow git.git_status, git.git_log, git.git_diff_unstaged }}
policy short_logs: deny git.git_log when params.max_count > 5
  message "at most 5 commits at a time"

proposal look under reader {{
  status = git.git_status(repo_path: "{repo}")
  diff = git.git_diff_unstaged(repo_path: "{repo}") after status
  log = git.git_log(repo_path: "{repo}", max_count: 3) after diff
}}
"""
    )
    run = runner.invoke(app, ["run", str(path), "--format", "json"])
    assert run.exit_code == 0, run.output
    results = {r["action_id"]: r for r in json.loads(run.stdout)["result"]["results"]}
    assert "a.txt" in results["status"]["output"]
    assert "-one" in results["diff"]["output"] and "+two" in results["diff"]["output"]
    assert "first commit" in json.dumps(results["log"]["output"])

    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "carlang", "mcp", "proxy", str(path), "--capability", "reader"],
        env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'runtime'}"},
    )

    async def scenario() -> None:
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                names = sorted(t.name for t in (await session.list_tools()).tools)
                assert names == ["git.git_diff_unstaged", "git.git_log", "git.git_status"]
                allowed = await session.call_tool("git.git_status", {"repo_path": str(repo)})
                assert not allowed.isError and "a.txt" in allowed.content[0].text
                denied = await session.call_tool(
                    "git.git_log", {"repo_path": str(repo), "max_count": 50}
                )
                assert denied.isError and "short_logs" in denied.content[0].text
                hidden = await session.call_tool(
                    "git.git_commit", {"repo_path": str(repo), "message": "x"}
                )
                assert hidden.isError and hidden.content[0].text == "unknown tool 'git.git_commit'"

    anyio.run(scenario)


def _npx_server(package: str, *args: str) -> list[str]:
    return [npx_or_skip(), "-y", package, *args]


def test_npm_filesystem_server(tmp_path: Path) -> None:
    files = tmp_path / "files"
    files.mkdir()
    (files / "note.txt").write_text("hello from npm")
    path = _import(
        tmp_path, _npx_server("@modelcontextprotocol/server-filesystem", str(files)), "fs"
    )
    text = path.read_text()
    assert "tool fs.read_text_file()" in text or "tool fs.read_file()" in text
    tool = "fs.read_text_file" if "tool fs.read_text_file()" in text else "fs.read_file"
    path.write_text(text + f'\nproposal read {{ r = {tool}(path: "{files / "note.txt"}") }}\n')
    run = runner.invoke(app, ["run", str(path), "--format", "json"])
    assert run.exit_code == 0, run.output
    (result,) = json.loads(run.stdout)["result"]["results"]
    assert "hello from npm" in json.dumps(result["output"])


def test_npm_memory_server(tmp_path: Path) -> None:
    memory = tmp_path / "memory.jsonl"
    command = _npx_server("@modelcontextprotocol/server-memory")
    path = _import(tmp_path, command, "memory")
    text = path.read_text().replace(
        "mcp_server memory {", f'mcp_server memory {{\n  env {{ MEMORY_FILE_PATH: "{memory}" }}'
    )
    entities = [{"name": "carlang", "entityType": "project", "observations": ["compiles policies"]}]
    text += f"""
proposal remember {{
  add = memory.create_entities(entities: {json.dumps(entities)})
  find = memory.search_nodes(query: "carlang") after add
}}
"""
    path.write_text(text)
    run = runner.invoke(app, ["run", str(path), "--format", "json"])
    assert run.exit_code == 0, run.output
    results = json.loads(run.stdout)["result"]["results"]
    assert "compiles policies" in json.dumps(results[1]["output"])
