"""What in an `mcp_server` reads as a variable of carlang's environment but is not taken from
it: a `${...}` in a `url` (CL0220, and the client refuses such a url from IR JSON before
sending anything), a credential written into a url (CL0226, as a header's is), and a
reference miswritten in a `headers` or `env` value (CL0228: `$TOKEN`, `${TOKEN`, ...), which
is not also CL0226, and any variable in a `command` or `args`, which take none (CL0228). The rule is in docs/language.md, "References to carlang's environment"."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from carlang_runtime.environment import expand_references
from carlang_runtime.ir import McpServer, Program
from carlang_runtime.mcp import McpClient, McpError
from carlang_runtime.mcp.client import header_problems, written_out_credential
from typer.testing import CliRunner

from carlang.cli import app
from carlang.compiler import compile_file
from carlang.fmt import format_source
from carlang.lower import local_url_problem
from carlang.source import Source
from tests.helpers import compile_diagnostics, compile_ok

runner = CliRunner()


def _found(text: str) -> list[tuple[str, int, int, str]]:
    """Each diagnostic as (code, line, column, message)."""
    out = []
    for d in compile_diagnostics(text).diagnostics.sorted():
        _, line, column = d.location()
        out.append((d.code, line, column, d.message))
    return out


def _url_server(url: str, headers: str = "") -> str:
    more = f"\n  headers {{ {headers} }}" if headers else ""
    return f'mcp_server s {{\n  url "{url}"{more}\n}}\n'


def _header(value: str, name: str = "Authorization") -> str:
    escaped = value.replace("\\", "\\\\")
    return _url_server("http://127.0.0.1:9101/mcp", f'"{name}": "{escaped}"')


# -- 1. `${...}` in a url: an error at the url; the client refuses it --------------------------


def test_a_reference_in_a_url_is_cl0220_at_the_url_saying_to_use_headers() -> None:
    text = _url_server("http://alice:${PW}@127.0.0.1:9101/mcp?api_key=${KEY}&x=1")
    result = compile_diagnostics(text)
    (found,) = result.diagnostics.items
    assert found.code == "CL0220" and found.severity == "error"
    assert found.location()[1:] == (2, 7)  # the url's string
    assert "`${PW}` and `${KEY}`" in found.message
    assert "a url takes no reference from carlang's environment" in found.message
    help_text = found.help or ""
    assert '`headers { "Authorization": "Bearer ${TOKEN}" }`' in help_text
    assert '`"Basic ${B64}"`' in help_text
    assert result.program is None or not result.program.mcp_servers


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://127.0.0.1:9101/mcp?token=${TOKEN}", "`${TOKEN}`"),
        ("http://alice:${PW@127.0.0.1:9101/mcp", "`${PW`"),
        ("http://${HOST}:9101/mcp", "`${HOST}`"),  # (said before "not on this machine")
        ("http://127.0.0.1:9101/${ PATH }", "`${ PATH }`"),
    ],
)
def test_any_dollar_brace_in_a_url_is_the_error(url: str, shown: str) -> None:
    ((code, line, column, message),) = _found(_url_server(url))
    assert (code, line, column) == ("CL0220", 2, 7)
    assert message.startswith(f"`url` holds {shown}: a url takes no reference")


def test_mcp_import_refuses_such_a_url_too() -> None:
    """`carlang mcp import --url` checks its url with `local_url_problem`."""
    problem = local_url_problem("http://alice:${PW}@127.0.0.1:9101/mcp")
    assert problem is not None and "`${PW}`" in problem
    assert local_url_problem("http://alice:pw@127.0.0.1:9101/mcp") is None
    result = runner.invoke(app, ["mcp", "import", "--url", "http://127.0.0.1:9/mcp?k=${KEY}"])
    assert result.exit_code != 0
    assert "a url takes no reference from carlang's environment" in result.output


@pytest.fixture
def listener() -> Iterator[tuple[str, list[str]]]:
    """A local HTTP server that records every request it gets (and answers 401)."""
    got: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            got.append(f"{self.path} {self.headers.get('Authorization')}")
            self.send_response(401)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", got
    finally:
        server.shutdown()
        server.server_close()


def test_the_client_refuses_a_url_with_a_reference_from_ir_json_sending_nothing(
    listener: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A program's IR may come from anywhere: the check fails closed, before any request
    (with the variables set, too: a url takes none)."""
    where, got = listener
    monkeypatch.setenv("PW", "hunter2pw")
    url = f"http://alice:${{PW}}@{where}/mcp?api_key=${{KEY}}&x=1"
    dumped = compile_ok('mcp_server s { url "http://127.0.0.1:1/mcp" }\n').model_dump(mode="json")
    dumped["mcp_servers"][0]["url"] = url
    (server,) = Program.model_validate(json.loads(json.dumps(dumped))).mcp_servers
    with pytest.raises(McpError) as raised:
        McpClient(server).start(5)
    said = str(raised.value)
    assert "`url` holds `${PW}` and `${KEY}`" in said
    assert "a url takes no reference from carlang's environment" in said
    assert "hunter2pw" not in said
    assert got == []  # nothing was sent


def test_the_same_client_reaches_the_server_without_the_reference(
    listener: tuple[str, list[str]],
) -> None:
    """(The listener above does get what the client sends: its silence is the check's.)"""
    where, got = listener
    with pytest.raises(McpError, match="401"):
        McpClient(McpServer(name="s", url=f"http://{where}/mcp")).start(5)
    assert got == ["/mcp None"]


def test_header_problems_says_a_url_s_reference_first() -> None:
    (problem, *_) = header_problems({"X": "1"}, url="http://a:${PW}@127.0.0.1/mcp")
    assert problem.part == "url" and problem.name is None and "`${PW}`" in problem.message
    assert header_problems({}, url="http://a:pw@127.0.0.1/mcp") == []


# -- 2. a credential written out in a url: CL0226 at the url ------------------------------------


def test_a_password_and_a_credential_query_value_in_a_url_are_cl0226() -> None:
    text = _url_server("http://alice:hunter2pw@127.0.0.1:9101/mcp?api_key=qqq123&x=1")
    result = compile_diagnostics(text)
    (found,) = result.diagnostics.items
    assert found.code == "CL0226" and found.severity == "warning"
    assert found.location()[1:] == (2, 7)
    assert found.message == (
        "`url` holds a credential written out in the program: the password of `alice` and the"
        " value of `api_key` in its query"
    )
    help_text = found.help or ""
    assert "send them in `headers`" in help_text
    assert '"Authorization": "Basic ${B64}"' in help_text and "`alice:PASSWORD`" in help_text
    assert '"X-Api-Key": "${API_KEY}"' in help_text
    for secret in ("hunter2pw", "qqq123"):
        assert secret not in found.message and secret not in help_text
        assert all(secret not in label.message for label in found.labels)
    assert result.program is not None and result.program.mcp_servers  # a warning: it works


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("http://bob:s3cret@localhost:1/mcp", "the password of `bob`"),
        ("http://localhost:1/mcp?token=abc", "the value of `token` in its query"),
        ("http://localhost:1/mcp?x=1&Signature=zz", "the value of `Signature` in its query"),
    ],
)
def test_each_part_carlang_hides_as_stars_is_a_credential(url: str, said: str) -> None:
    ((code, line, column, message),) = _found(_url_server(url))
    assert (code, line, column) == ("CL0226", 2, 7) and message.endswith(said)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:1/mcp",
        "http://127.0.0.1:1/mcp?x=1&page=2",
        "http://alice@127.0.0.1:1/mcp",  # (a user without a password)
        "http://alice:@127.0.0.1:1/mcp",
        "http://127.0.0.1:1/mcp?api_key=",
        "http://127.0.0.1:1/price$5",
    ],
)
def test_a_url_without_a_credential_is_quiet(url: str) -> None:
    assert _found(_url_server(url)) == []


def test_a_url_password_beside_an_authorization_header_is_cl0225_alone() -> None:
    text = _url_server("http://u:pw@localhost:1/mcp", '"Authorization": "Bearer ${T}"')
    assert [code for code, *_ in _found(text)] == ["CL0225"]


def test_a_dollar_name_in_a_url_is_cl0228_not_a_written_credential() -> None:
    found = _found(_url_server("http://alice:$PW@127.0.0.1:9101/mcp?api_key=qqq123"))
    assert found == [
        (
            "CL0226",
            2,
            7,
            "`url` holds a credential written out in the program: the value of `api_key` in"
            " its query",
        ),
        (
            "CL0228",
            2,
            7,
            "`$PW` is not a reference carlang takes from the environment: a url takes none",
        ),
    ]


# -- 3. a reference miswritten in a header or env value: CL0228, not CL0226 ---------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "Bearer $SRV_TOKEN",
            "`$SRV_TOKEN` is not a reference carlang takes from the"
            " environment: write `${SRV_TOKEN}`",
        ),
        (
            "Bearer ${SRV_TOKEN",
            "`${SRV_TOKEN` is not a reference carlang takes from the"
            " environment: write `${SRV_TOKEN}`",
        ),
        (
            "Bearer ${ SRV_TOKEN }",
            "`${ SRV_TOKEN }` is not a reference carlang takes from the"
            " environment: write `${SRV_TOKEN}`",
        ),
        (
            "${1BAD}",
            "`${1BAD}` is not a reference carlang takes from the environment: a"
            " variable's name does not start with a digit",
        ),
        (
            "Bearer ${}",
            "`${}` is not a reference carlang takes from the environment: it names no variable",
        ),
        (
            "Bearer $SRV_TOKEN}",
            "`$SRV_TOKEN}` is not a reference carlang takes from the"
            " environment: write `${SRV_TOKEN}`",
        ),
        (
            "${LEVEL:-info}",
            "`${LEVEL:-info}` is not a reference carlang takes from the"
            " environment: it takes `${NAME}` alone (no default, no other shell form)",
        ),
    ],
)
def test_a_miswritten_reference_in_a_header_is_cl0228_at_the_value(
    value: str, message: str
) -> None:
    result = compile_diagnostics(_header(value))
    (found,) = result.diagnostics.items  # (and not CL0226: no secret is in the file)
    assert (found.code, found.severity, found.message) == ("CL0228", "warning", message)
    assert found.location()[1:] == (3, 30)
    assert "is sent as it is" in (found.help or "")
    assert result.program is not None and result.program.mcp_servers  # a warning: it works


def test_a_header_not_named_for_a_credential_is_warned_too() -> None:
    ((code, line, column, message),) = _found(_header("$TENANT", name="X-Tenant"))
    assert (code, line, column) == ("CL0228", 3, 25)
    assert message.endswith("write `${TENANT}`")


def test_each_miswritten_reference_of_a_value_is_said() -> None:
    found = _found(_header("${A} $B ${C"))
    assert [(code, message.split("`")[1]) for code, _, _, message in found] == [
        ("CL0228", "$B"),
        ("CL0228", "${C"),
    ]


@pytest.mark.parametrize(
    "value",
    [
        "price $5",
        "$name",
        "$Foo and $camelCase",
        "$ ",
        "a$",
        "$_",
        "$$HOME",
        "\\$HOME",
        "${SRV_TOKEN}",
        "${srv_token}",
        "${A}${B_2}",
        "costs $5, ${TOKEN}",
    ],
)
def test_a_dollar_that_is_not_a_reference_meant_is_quiet(value: str) -> None:
    assert _found(_header(value, name="X-Note")) == []
    env = value.replace("\\", "\\\\")
    assert _found(f'mcp_server s {{\n  command "srv"\n  env {{ V: "{env}" }}\n}}\n') == []


def test_env_values_are_warned_each_at_its_own_place() -> None:
    text = (
        "mcp_server fs {\n"
        '  command "npx"\n'
        "  env {\n"
        '    NODE_ENV: "production",  # "a $FAKE in a comment"\n'
        '    "PS1": "$ ",\n'
        '    TENANT: "$TENANT",\n'
        '    SEARCH: "caf\\u00e9 ${HOME}/bin:$PATH",\n'
        '    TOKEN: "${ GITHUB_TOKEN }"\n'
        "  }\n"
        "}\n"
    )
    assert [
        (code, line, column, message.split("`")[1]) for code, line, column, message in _found(text)
    ] == [
        ("CL0228", 6, 13, "$TENANT"),
        ("CL0228", 7, 13, "$PATH"),
        ("CL0228", 8, 12, "${ GITHUB_TOKEN }"),
    ]


def test_a_variable_in_args_or_command_is_cl0228_saying_to_pass_it_in_env() -> None:
    text = (
        "mcp_server gh {\n"
        '  command "npx"\n'
        '  args ["-y", "server-github", "--token", "${GITHUB_TOKEN}", "$HOME/x", "costs $5"]\n'
        "}\n"
        "mcp_server local {\n"
        '  command "$HOME/bin/srv"\n'
        "}\n"
    )
    result = compile_diagnostics(text)
    args, command = result.diagnostics.sorted()
    assert (args.code, args.severity, args.location()[1:]) == ("CL0228", "warning", (3, 8))
    assert args.message == (
        "`args` takes no variable from carlang's environment: `${GITHUB_TOKEN}`, `$HOME` are"
        " passed to the server as written"
    )
    assert 'env { GITHUB_TOKEN: "${GITHUB_TOKEN}" }' in (args.help or "")
    assert "visible to every user of the machine" in (args.help or "")
    assert (command.code, command.location()[1:]) == ("CL0228", (6, 11))
    assert "`$HOME` is passed to the server as written" in command.message
    assert "write the program's path out" in (command.help or "")
    # the program still compiles: the server gets the arguments as written
    assert result.program is not None
    (gh, local) = result.program.mcp_servers
    assert gh.args[3] == "${GITHUB_TOKEN}" and local.command == "$HOME/bin/srv"


@pytest.mark.parametrize("arg", ["costs $5", "$name", "a$", "$$HOME", "\\$HOME", "--port=8080"])
def test_a_dollar_in_args_that_is_no_variable_meant_is_quiet(arg: str) -> None:
    written = arg.replace("\\", "\\\\")
    assert _found(f'mcp_server s {{\n  command "srv"\n  args ["{written}"]\n}}\n') == []


def test_the_warning_can_be_accepted_by_a_pragma_on_the_value_s_line(tmp_path: Path) -> None:
    path = tmp_path / "shell.car"
    path.write_text(
        "mcp_server s {\n"
        '  command "srv"\n'
        "  env {\n"
        '    CACHE: "$HOME/.cache",  # carlang: allow CL0228\n'
        "  }\n"
        "}\n"
    )
    result = runner.invoke(app, ["check", "--strict", str(path)])
    assert result.exit_code == 0 and "0 errors, 0 warnings" in result.output, result.output


def test_a_miswritten_reference_is_no_written_out_credential() -> None:
    assert not written_out_credential("Authorization", "Bearer $SRV_TOKEN")
    assert not written_out_credential("X-Api-Key", "${ KEY }")
    assert written_out_credential("Authorization", "Bearer sk-live-123")
    assert written_out_credential("X-Api-Key", "price $5")  # (no reference meant: a value)


def test_the_rule_finds_each_form_where_it_is() -> None:
    from carlang_runtime.environment import misreferences  # (new: imported here)

    found = misreferences("a $A ${B ${ C } ${} ${1D} $$E \\$F $g ${H}")
    assert [(m.written, m.fix, m.start) for m in found] == [
        ("$A", "${A}", 2),
        ("${B", "${B}", 5),
        ("${ C }", "${C}", 9),
        ("${}", None, 16),
        ("${1D}", None, 20),
    ]
    # what `misreferences` says is not a reference, `expand_references` does leave as written
    value = "$A ${B ${ C } ${} ${1D}"
    assert expand_references({"v": value}, {"A": "1", "B": "2", "C": "3", "D": "4"})[0] == {
        "v": value
    }


def test_fmt_keeps_every_such_value_as_written() -> None:
    text = _header("Bearer ${ SRV_TOKEN }") + (
        'mcp_server t {\n  command "srv"\n  env { A: "$TENANT", B: "${1BAD}" }\n}\n'
    )
    formatted = format_source(Source("t.car", text))
    for written in ("Bearer ${ SRV_TOKEN }", '"$TENANT"', '"${1BAD}"'):
        assert written in formatted
    assert format_source(Source("t.car", formatted)) == formatted
    before = [(code, message) for code, _, _, message in _found(text)]
    assert [(code, message) for code, _, _, message in _found(formatted)] == before
    assert [code for code, _ in before] == ["CL0228", "CL0228", "CL0228"]


def test_the_tools_of_a_server_declared_with_an_error_get_no_follow_on_finding() -> None:
    """Only the server's error is said: its tools were "never used" (CL0207), and one naming
    its remote tool was told `remote` is only for MCP tools."""
    text = (
        'mcp_server remote {\n  url "http://127.0.0.1:9/mcp?key=${KEY}"\n}\n'
        'tool remote.x() { description "x" }\n'
        'tool remote.y() { remote "why" }\n'
    )
    assert [code for code, *_ in _found(text)] == ["CL0220"]


def test_a_relative_path_of_a_server_without_cwd_is_cl0229(tmp_path: Path) -> None:
    """`args ["server.py"]` without `cwd` worked only when carlang ran from the file's folder
    (for `carlang mcp proxy`, started by a client in `/`, never): a gateway trial's finding."""
    (tmp_path / "data").mkdir()
    program = tmp_path / "servers.car"
    program.write_text(
        "mcp_server local {\n"
        '  command "python"\n'
        '  args ["server.py", "--root", "data", "-m", "time", "@scope/pkg", "nothing-here"]\n'
        "}\n"
        "mcp_server placed {\n"
        '  command "python"\n'
        '  args ["server.py", "--root", "data"]\n'
        '  cwd "."\n'
        "}\n"
    )
    found = compile_file(program).diagnostics.sorted()
    assert [(d.code, d.location()[1:]) for d in found] == [("CL0229", (3, 8))]
    assert found[0].message == (
        "`args` names `server.py`, `data`, read from the directory the server starts in, and"
        " this server has no `cwd`"
    )
    assert 'add `cwd "."`' in (found[0].help or "")


def test_cl0229_leaves_launchers_that_start_elsewhere_or_fetch_packages() -> None:
    """`uv --directory /opt/weather run weather.py` (MCP's own quickstart) starts the server in
    that folder, and `npx -y server.js` names a package, not a file: no CL0229 (review)."""
    text = (
        "mcp_server weather {\n"
        '  command "uv"\n'
        '  args ["--directory", "/opt/weather", "run", "weather.py"]\n'
        "}\n"
        "mcp_server weather2 {\n"
        '  command "uv"\n'
        '  args ["--directory=/opt/weather", "run", "weather.py"]\n'
        "}\n"
        "mcp_server fetched {\n"
        '  command "npx"\n'
        '  args ["-y", "some-mcp-server.js"]\n'
        "}\n"
    )
    assert compile_diagnostics(text).diagnostics.sorted() == []


def test_cl0229_names_a_launchers_relative_folder_and_an_options_path() -> None:
    """`uv --directory sub run server.py` starts the server in `sub` of wherever carlang runs,
    and `--config=conf.py` is a path too; `sh -c "python server.py"` is a command line, not a
    file (a trial's findings)."""
    text = (
        "mcp_server rel {\n"
        '  command "uv"\n'
        '  args ["run", "--directory", "sub", "server.py"]\n'
        "}\n"
        "mcp_server opt {\n"
        '  command "node"\n'
        '  args ["--config=conf.js", "/srv/server.js"]\n'
        "}\n"
        "mcp_server shell {\n"
        '  command "sh"\n'
        '  args ["-c", "python /srv/server.py"]\n'
        "}\n"
    )
    found = compile_diagnostics(text).diagnostics.sorted()
    assert [(d.code, d.location()[1], d.message.split("`")[3]) for d in found] == [
        ("CL0229", 3, "sub"),
        ("CL0229", 7, "--config=conf.js"),
    ]
