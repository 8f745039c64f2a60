"""The name `carlang mcp import` gives a server (its tools' prefix, `server.tool`) when no
--name is given: the name the server gives itself (its initialize `serverInfo.name`) when
that says something, else what its command runs (launchers, their options, an npm scope, a
version, a file's extension and `mcp` / `server` at either end passed over) or its URL's
path; always a carlang name. --name wins, and must be a carlang name."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from carlang.cli import app
from carlang.mcp_import import is_server_name, server_name_for
from tests.mcp.conftest import TOY, needs_sdk, npx_or_skip, server_command, toy_command
from tests.mcp.test_provider import http_toy

pytestmark = needs_sdk
runner = CliRunner()
__all__ = ["http_toy"]  # (a fixture, used by name)

COMMANDS = [
    ("npx -y @modelcontextprotocol/server-everything", "everything"),
    ("npx -y @modelcontextprotocol/server-filesystem /tmp", "filesystem"),
    ("npx -y @upstash/context7-mcp@latest", "context7"),
    ("npx -y tavily-mcp@0.1.4", "tavily"),
    ("bunx @playwright/mcp@latest", "playwright"),
    ("pnpm dlx @scope/server-notes", "notes"),
    ("python -m some_server --flag", "some"),
    ("python -m mcp_server_git", "git"),
    ("/usr/bin/python3.12 -u -m mcp_server_time.__main__", "time"),
    ("python tests/mcp/toy_server.py", "toy"),
    ("uvx mcp-server-time --local-timezone UTC", "time"),
    ("uvx --from git+https://github.com/x/fetch mcp-server-fetch", "fetch"),
    ("uv tool run mcp-server-time", "time"),
    ("uv --directory /srv/weather run weather.py", "weather"),
    ("pipx run mcp-server-time", "time"),
    ("node /home/me/weather-server/build/index.js", "weather"),
    ("deno run -A npm:@scope/server-search", "search"),
    ("docker run -i --rm -e TOKEN=x mcp/github:latest", "github"),
    ("env DEBUG=1 uvx mcp-server-git", "git"),
    ("sh -c 'exec npx -y @acme/server-tickets'", "tickets"),
    ("cmd /c npx -y @acme/server-tickets", "tickets"),
    ("github-mcp-server stdio", "github"),
    ("./bin/my-notes-mcp", "my_notes"),
    ("npx -y @acme/2fa-mcp", "_2fa"),
    ("npx -y mcp-remote http://127.0.0.1:9000/jira/mcp", "jira"),
    # nothing in the command says what it is: the server's own name will, else `server`
    ("npx", "server"),
    ("python -c pass", "server"),
    ("uv run --with mcp server.py", "server"),
    ("node build/index.js", "server"),
]


@pytest.mark.parametrize(("command", "name"), COMMANDS)
def test_a_name_from_the_command(command: str, name: str) -> None:
    import shlex

    assert server_name_for(shlex.split(command), None) == name
    assert is_server_name(name)


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("http://127.0.0.1:8000/mcp", "server"),
        ("http://localhost:3001/sse", "server"),
        ("http://127.0.0.1:9000/github/mcp", "github"),
        ("http://[::1]:9000/tools/mcp-notes/", "notes"),
    ],
)
def test_a_name_from_the_url(url: str, name: str) -> None:
    assert server_name_for(None, url) == name


SECRET = "KEY-ABCDEF123"


@pytest.mark.parametrize(
    ("url", "name"),
    [
        (f"http://127.0.0.1:8791/mcp?token={SECRET}", "server"),
        (f"http://127.0.0.1:8791/?token={SECRET}", "server"),
        (f"http://127.0.0.1:8791/github/mcp?token={SECRET}&x=1", "github"),
        (f"http://admin:{SECRET}@127.0.0.1:8791/mcp", "server"),
        (f"http://admin:{SECRET}@127.0.0.1:8791", "server"),
        (f"http://{SECRET}@localhost:8791/", "server"),
        (f"http://127.0.0.1:8791/mcp#token={SECRET}", "server"),
        (f"http://127.0.0.1:8791/mcp;token={SECRET}", "server"),
        ("http://127.0.0.1:8791/mcp%3Ftoken%3DKEY-ABCDEF123", "server"),
        # a key in the path (some hosted servers put one there) is passed over
        (f"http://127.0.0.1:8791/mcp/{SECRET}/sse", "server"),
        (f"http://127.0.0.1:8791/zapier/{SECRET}/sse", "zapier"),
        ("http://127.0.0.1:8791/notes/sk-ak-3f9a8b7c6d5e4f3a2b1c/mcp", "notes"),
        ("http://127.0.0.1:8791/v1/3fa85f64-5717-4562-b3fc-2c963f66afa6/mcp", "server"),
        ("http://127.0.0.1:8791/mcp/aGVsbG8gd29ybGQgdGhpcyBpcyBh", "server"),
        ("http://[::1:8791/mcp", "server"),  # (not a URL: no name, and no crash)
    ],
)
def test_a_name_from_the_url_carries_no_credential(url: str, name: str) -> None:
    """The name goes into every tool's name, the program and its logs: the URL's query,
    fragment, path parameters, user and password never reach it, nor a path segment that
    looks like a key."""
    assert server_name_for(None, url) == name
    assert server_name_for(["npx", "-y", "mcp-remote", url], None) == name
    for part in ("key", "abcdef123", "token", "3f9a8b", "3fa85f64", "agvsbg8"):
        assert part not in name


@pytest.mark.parametrize(
    ("own", "name"),
    [
        ("mcp-time", "time"),
        ("mcp-servers/everything", "everything"),
        ("secure-filesystem-server", "secure_filesystem"),
        ("Context7", "context7"),
        ("github-mcp-server", "github"),
        ("Weather Server", "weather"),
        ("FastMCP", "fetch"),  # the SDK's default says nothing: the command's name
        ("mcp-server", "fetch"),
        ("", "fetch"),
        (None, "fetch"),
    ],
)
def test_the_servers_own_name_wins_when_it_says_something(own: str | None, name: str) -> None:
    assert server_name_for(["uvx", "mcp-server-fetch"], None, {"name": own}) == name


def _import(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["mcp", "import", *args])
    return result.exit_code, result.stdout, result.stderr


def test_import_names_the_server_as_it_names_itself(tmp_path: Path) -> None:
    """The toy server calls itself `toy`: its tools are `toy.add`... (from its command alone
    they were `toy_server_py.add`); the file passes `carlang check`; --name wins."""
    out = tmp_path / "toy.car"
    code, _, errors = _import("-o", str(out), "--", sys.executable, str(TOY))
    assert code == 0, errors
    text = out.read_text()
    assert "mcp_server toy {" in text and "tool toy.add()" in text
    assert "wrote " in errors and "MCP server `toy` with 4 tools" in errors
    assert runner.invoke(app, ["check", str(out)]).exit_code == 0
    code, text, errors = _import("--name", "sums", "--", *toy_command())
    assert code == 0, errors
    assert "mcp_server sums {" in text and "tool sums.add()" in text


def test_import_over_http_names_the_server_as_it_names_itself(http_toy: str) -> None:
    code, text, errors = _import("--url", http_toy)  # (its URL says only `mcp`)
    assert code == 0, errors
    assert "mcp_server toy {" in text and "tool toy.add()" in text


@pytest.mark.parametrize("name", ["café", "1st", "fs.tools", "my-server", ""])
def test_a_name_that_is_not_a_carlang_name_is_refused(name: str) -> None:
    code, _, errors = _import("--name", name, "--", *toy_command())
    assert code == 2 and "use letters, digits and `_`, not starting with a digit" in errors


@pytest.mark.slow
def test_real_servers_get_their_names() -> None:
    code, text, errors = _import("--", *server_command("mcp-server-git"))
    assert code == 0, errors
    assert "mcp_server git {" in text and "tool git.git_status()" in text
    npx = npx_or_skip()
    code, text, errors = _import("--", npx, "-y", "@modelcontextprotocol/server-everything")
    if code != 0:
        pytest.skip(f"npx could not start server-everything: {errors.strip()[:200]}")
    assert "mcp_server everything {" in text and "tool everything.echo()" in text
