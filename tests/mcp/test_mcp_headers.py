"""`headers` of an HTTP `mcp_server` (bearer tokens, API keys): parsed, lowered into the IR,
checked at their line and column (CL0225, CL0226), formatted, and refused by the client when
they cannot be sent. `carlang mcp import --header` is in test_mcp_headers_import.py, the real
authenticated server in test_mcp_headers_http.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from carlang_runtime.ir import McpServer, Program
from carlang_runtime.mcp import McpClient, McpError
from typer.testing import CliRunner

from carlang.cli import app
from carlang.diagnostics import Label
from carlang.fmt import format_source
from carlang.parse import parse
from carlang.render import render_text
from carlang.source import Source
from tests.helpers import compile_diagnostics, compile_ok

runner = CliRunner()

GITHUB = """mcp_server github {
  url "http://127.0.0.1:9000/mcp/"
  headers { "Authorization": "Bearer ${GITHUB_TOKEN}", "X-Client": "carlang" }
}
tool github.search(q: string)
proposal p { s = github.search(q: "x") }
"""


def _found(text: str) -> list[tuple[str, int, int, str]]:
    """Each diagnostic as (code, line, column, message)."""
    result = compile_diagnostics(text)
    out = []
    for d in result.diagnostics.sorted():
        _, line, column = d.location()
        out.append((d.code, line, column, d.message))
    return out


def _at(label: Label) -> tuple[int, int]:
    return label.source.line_column(label.span.start)


def test_headers_are_parsed_lowered_and_kept_as_written() -> None:
    program = compile_ok(GITHUB)
    (server,) = program.mcp_servers
    # the references stay references: the program holds the variable's name, never its value
    assert server.headers == {"Authorization": "Bearer ${GITHUB_TOKEN}", "X-Client": "carlang"}
    assert server.url == "http://127.0.0.1:9000/mcp/"
    assert json.loads(program.model_dump_json())["mcp_servers"][0]["headers"] == server.headers


def test_a_server_without_headers_has_none_and_old_ir_still_loads() -> None:
    program = compile_ok('mcp_server t { url "http://localhost:1/mcp" }\n')
    dumped = program.model_dump(mode="json")
    assert "headers" not in dumped["mcp_servers"][0]  # (the IR of existing programs is unchanged)
    assert Program.model_validate(dumped).mcp_servers[0].headers == {}
    old = {"name": "t", "url": "http://localhost:1/mcp", "args": [], "env": {}}
    assert McpServer.model_validate(old).headers == {}


def test_the_entries_keep_where_each_name_and_value_is() -> None:
    text = 'mcp_server g {\n  url "http://localhost:1/mcp"\n  headers { A: "1", "B-2": "x" }\n}\n'
    module = parse(Source("t.car", text)).module
    assert module is not None
    (decl,) = module.declarations
    setting = decl.settings[1]
    assert setting.word == "headers"
    assert [(e.key.text, text[e.key.span.start : e.key.span.end]) for e in setting.entries] == [
        ("A", "A"),
        ("B-2", '"B-2"'),
    ]
    assert [text[e.value.span.start : e.value.span.end] for e in setting.entries] == ['"1"', '"x"']


def test_headers_is_a_keyword_only_in_an_mcp_server() -> None:
    """A parameter, a state key or an action called `headers` is still a name, beside a
    server's `headers`."""
    program = compile_ok(
        'mcp_server s { url "http://localhost:1/mcp"  headers { "X-Client": "carlang" } }\n'
        "tool fetch(url: string, headers: map[string]) -> object\n"
        "state { headers: any }\n"
        'proposal p { headers = fetch(url: "https://x", headers: { a: "b" }) {'
        " effects { headers = 1 } } }\n"
    )
    assert program.mcp_servers[0].headers == {"X-Client": "carlang"}
    assert program.proposals[0].actions[0].parameters["headers"] == {"a": "b"}


def test_fmt_round_trips_the_block() -> None:
    text = (
        "mcp_server github {\n"
        '  url "http://127.0.0.1:9000/mcp/"\n'
        '  headers {"Authorization":"Bearer ${GITHUB_TOKEN}",  "X-Client" : "carlang"}\n'
        "  timeout 10s\n"
        "}\n"
    )
    formatted = format_source(Source("t.car", text))
    assert formatted == (
        "mcp_server github {\n"
        '  url "http://127.0.0.1:9000/mcp/"\n'
        '  headers { Authorization: "Bearer ${GITHUB_TOKEN}", "X-Client": "carlang" }\n'
        "  timeout 10s\n"
        "}\n"
    )
    assert format_source(Source("t.car", formatted)) == formatted
    assert compile_ok(formatted).mcp_servers[0].headers == compile_ok(text).mcp_servers[0].headers


def test_fmt_writes_many_headers_one_per_line() -> None:
    many = ", ".join(f'"X-Header-Number-{i}": "${{VALUE_{i}}}"' for i in range(5))
    text = f'mcp_server g {{\n  url "http://localhost:1/mcp"\n  headers {{ {many} }}\n}}\n'
    formatted = format_source(Source("t.car", text))
    assert '    "X-Header-Number-0": "${VALUE_0}",\n' in formatted
    assert format_source(Source("t.car", formatted)) == formatted


def test_headers_on_a_started_server_are_cl0225_at_the_keyword() -> None:
    text = 'mcp_server s {\n  command "srv"\n  headers { A: "${T}" }\n}\n'
    ((code, line, column, message),) = _found(text)
    assert (code, line, column) == ("CL0225", 3, 3)
    assert "started by a `command`" in message


@pytest.mark.parametrize(
    ("entry", "column", "says"),
    [
        ('"X Api Key": "v"', 13, "`X Api Key` is not an HTTP header name"),
        ('"X:Y": "v"', 13, "`X:Y` is not an HTTP header name"),
        ('"": "v"', 13, "`` is not an HTTP header name"),
        ('"Content-Type": "text/plain"', 13, "carlang sends `Content-Type` itself"),
        ('accept: "*/*"', 13, "carlang sends `Accept` itself"),
        ('"MCP-Protocol-Version": "1"', 13, "carlang sends `MCP-Protocol-Version` itself"),
        ('"Mcp-Session-Id": "s"', 13, "carlang sends `Mcp-Session-Id` itself"),
        ('Host: "evil.example"', 13, "carlang sends `Host` itself"),
        ('"X-A": "a\\r\\nX-B: 1"', 20, "its value holds a line break (CR or LF)"),
        ('"X-A": "a\\nb"', 20, "header injection"),
        ('"X-A": "a\\u0000b"', 20, "its value holds a NUL character"),
        ('"X-A": "a\\u0007b"', 20, "its value holds a control character"),
        ('"X-A": "\\u20ac"', 20, "only Latin-1 text can be sent"),
        ('"X-A": 3', 20, "its value is not a string"),
        ('"X-A": ["a"]', 20, "its value is not a string"),
    ],
)
def test_a_header_that_cannot_be_sent_is_cl0225_at_its_name_or_value(
    entry: str, column: int, says: str
) -> None:
    text = f'mcp_server s {{\n  url "http://localhost:1/mcp"\n  headers {{ {entry} }}\n}}\n'
    ((code, line, at, message),) = _found(text)
    assert (code, line, at) == ("CL0225", 3, column), message
    assert says in message


def test_a_name_given_twice_in_any_case_is_cl0225_pointing_at_the_first() -> None:
    text = (
        "mcp_server s {\n"
        '  url "http://localhost:1/mcp"\n'
        '  headers {\n    Authorization: "Bearer ${A}",\n    authorization: "Bearer ${B}"\n  }\n'
        "}\n"
    )
    result = compile_diagnostics(text)
    (found,) = result.diagnostics.items
    assert found.code == "CL0225" and found.location()[1:] == (5, 5)
    assert "given twice (as `Authorization` before)" in found.message
    (first,) = [label for label in found.labels if not label.primary]
    assert _at(first) == (4, 5) and first.message == "given first here"
    # written twice exactly, it is CL0215 (as in any map), not reported again
    same = 'mcp_server s {\n  url "http://localhost:1/mcp"\n  headers { A: "1", A: "2" }\n}\n'
    assert [c for c, *_ in _found(same)] == ["CL0215"]


def test_authorization_beside_a_url_password_is_cl0225() -> None:
    text = 'mcp_server s {\n  url "http://u:pw@localhost:1/mcp"\n  headers { "Authorization": "Bearer ${T}" }\n}\n'
    ((code, line, column, message),) = _found(text)
    assert (code, line, column) == ("CL0225", 3, 13)
    assert "`user:password@` would both set" in message
    # another header beside the url's credentials is no CL0225 (the password written in the
    # url is CL0226 all the same: tests/mcp/test_mcp_references.py)
    other = _found(text.replace('"Authorization"', '"X-Api-Key"').replace("Bearer ", ""))
    assert [code for code, *_ in other] == ["CL0226"]


def test_a_server_whose_headers_are_wrong_is_left_out_with_one_error() -> None:
    """As a server whose `env` is wrong: no IR for it, and no error following from that."""
    text = (
        'mcp_server s {\n  url "http://localhost:1/mcp"\n  headers { "Host": "x" }\n}\n'
        "tool s.x()\nproposal p { a = s.x() }\n"
    )
    result = compile_diagnostics(text)
    assert [d.code for d in result.diagnostics.items] == ["CL0225"]
    assert result.program is not None and result.program.mcp_servers == []


@pytest.mark.parametrize(
    ("entry", "suggested"),
    [
        ('"Authorization": "Bearer ghp_abc123"', '"Bearer ${TOKEN}"'),
        ('"X-Api-Key": "sk-live-5f2a9c"', '"${X_API_KEY}"'),
        ('"Cookie": "session=abc"', '"${COOKIE}"'),
        ('"X-Whatever": "Basic dXNlcjpwdw=="', '"Basic ${X_WHATEVER}"'),
    ],
)
def test_a_credential_written_out_is_a_warning_suggesting_a_reference(
    entry: str, suggested: str
) -> None:
    text = f'mcp_server s {{\n  url "http://localhost:1/mcp"\n  headers {{ {entry} }}\n}}\n'
    result = compile_diagnostics(text)
    (found,) = result.diagnostics.items
    assert found.code == "CL0226" and found.severity == "warning"
    value_column = entry.index(":") + 2 + 13
    assert found.location()[1:] == (3, value_column)
    assert suggested in (found.help or "")
    assert result.program is not None and result.program.mcp_servers  # a warning: it works


@pytest.mark.parametrize(
    "entry",
    [
        '"Authorization": "Bearer ${TOKEN}"',
        '"X-Api-Key": "${KEY}"',
        '"X-Client": "carlang"',
        '"Accept-Language": "en"',
        '"Authorization": ""',
    ],
)
def test_a_reference_or_a_plain_value_is_no_warning(entry: str) -> None:
    text = f'mcp_server s {{\n  url "http://localhost:1/mcp"\n  headers {{ {entry} }}\n}}\n'
    assert _found(text) == []


def test_the_warning_can_be_accepted_by_a_pragma(tmp_path: Path) -> None:
    path = tmp_path / "demo.car"
    path.write_text(
        "mcp_server s {\n"
        '  url "http://localhost:1/mcp"\n'
        '  headers { "X-Api-Key": "public-demo-key" }  # carlang: allow CL0226\n'
        "}\n"
    )
    result = runner.invoke(app, ["check", "--strict", str(path)])
    assert result.exit_code == 0 and "0 errors, 0 warnings" in result.output, result.output


def test_messages_never_show_a_value() -> None:
    """A value may be a secret: what a problem says names the header, not what it holds."""
    secret = "sk-live-never-shown-1234"
    text = (
        "mcp_server s {\n"
        '  url "http://localhost:1/mcp"\n'
        f'  headers {{ "X-Api-Key": "{secret}\\r\\n", "X-Key-2": "{secret}" }}\n'
        "}\n"
    )
    result = compile_diagnostics(text)
    assert [d.code for d in result.diagnostics.sorted()] == ["CL0225", "CL0226"]
    for d in result.diagnostics.items:
        assert secret not in d.message and secret not in (d.help or "")
        assert all(secret not in label.message for label in d.labels)


def test_header_problems_is_one_check_for_compiler_client_and_import() -> None:
    from carlang_runtime.mcp.client import header_problems, written_out_credential

    assert header_problems({"Authorization": "Bearer x"}, url="http://localhost/mcp") == []
    (problem,) = header_problems({"a b": "x"}, url=None)
    assert problem.part == "name" and problem.name == "a b"
    (problem,) = header_problems({"X": "a\nb"}, url=None, taken=True)
    assert problem.part == "value" and "the value its `${...}` takes" in problem.message
    (problem,) = header_problems({"X": "1"}, url=None, command="srv")
    assert problem.part == "headers" and problem.name is None
    assert written_out_credential("Authorization", "Bearer abc")
    assert not written_out_credential("Authorization", "Bearer ${T}")
    assert not written_out_credential("X-Client", "carlang")


# -- the client refuses what cannot be sent, before it connects (nothing listens there) --------


def _client(headers: dict[str, str], url: str = "http://127.0.0.1:9/mcp") -> McpClient:
    return McpClient(McpServer(name="gh", url=url, headers=headers))


def test_an_unset_variable_fails_the_start_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_TOKEN_HERE", raising=False)
    client = _client({"Authorization": "Bearer ${NO_SUCH_TOKEN_HERE}"})
    with pytest.raises(McpError) as raised:
        client.start(5)
    assert str(raised.value) == (
        "MCP server 'gh': its headers name ${NO_SUCH_TOKEN_HERE}, which carlang's environment"
        " does not have: set it before starting carlang, or remove the header that needs it"
    )


def test_a_variable_whose_value_breaks_the_header_fails_without_showing_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TOKEN_WITH_NEWLINE", "tok-3141\r\nX-Injected: yes")
    client = _client({"Authorization": "Bearer ${TOKEN_WITH_NEWLINE}"})
    with pytest.raises(McpError) as raised:
        client.start(5)
    said = str(raised.value)
    assert "header `Authorization`: the value its `${...}` takes holds a line break" in said
    assert "tok-3141" not in said and "Injected" not in said


def test_the_client_refuses_headers_the_compiler_refuses() -> None:
    """A program's IR may come from anywhere (JSON): the client checks too."""
    with pytest.raises(McpError, match="carlang sends `Content-Type` itself"):
        _client({"content-type": "text/plain"}).start(5)
    with pytest.raises(McpError, match="would both set"):
        _client({"Authorization": "Bearer x"}, "http://u:p@127.0.0.1:9/mcp").start(5)
    started = McpClient(McpServer(name="s", command="true", headers={"A": "1"}))
    with pytest.raises(McpError, match="started by a `command`"):
        started.start(5)


def test_every_header_value_is_a_secret_of_the_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """As declared, as taken, and each variable taken on its own."""
    monkeypatch.setenv("HDR_TOKEN", "tok-271828-abcdef")
    client = _client({"Authorization": "Bearer ${HDR_TOKEN}", "X-Api-Key": "key-161803-xyz"})
    text = "sent Bearer tok-271828-abcdef and tok-271828-abcdef and key-161803-xyz"
    scrubbed = client.scrubbed(text)
    assert "tok-271828" not in scrubbed and "key-161803" not in scrubbed
    assert "tok-271828" not in json.dumps(client.scrubbed_value({"echo": text}))


def test_the_golden_case_renders_each_code_at_its_place() -> None:
    from carlang.compiler import compile_file
    from tests.conftest import ROOT

    path = ROOT / "tests" / "golden" / "diagnostics" / "mcp_headers.car"
    text = render_text(compile_file(path, path.parent).diagnostics.sorted())
    assert "mcp_headers.car:13:3: error[CL0225]" in text
    assert "mcp_headers.car:9:26: warning[CL0226]" in text


def test_completion_offers_headers_in_an_mcp_server() -> None:
    from carlang.lsp import completion

    pattern = completion._STATEMENT_STARTS["mcp_server"]
    assert pattern.search("  headers ") is not None


def test_check_from_the_cli(tmp_path: Path) -> None:
    path = tmp_path / "gh.car"
    path.write_text(GITHUB)
    result = runner.invoke(app, ["check", str(path)])
    assert result.exit_code == 0 and "0 errors, 0 warnings" in result.output, result.output
    path.write_text(GITHUB.replace("${GITHUB_TOKEN}", "ghp_live_0123456789"))
    result = runner.invoke(app, ["check", str(path), "--strict"])
    assert result.exit_code == 1 and "warning[CL0226]" in result.output
    assert "gh.car:3:30:" in result.output


def test_the_editor_s_piecewise_parse_places_each_header_as_a_whole_parse_does() -> None:
    """The language server parses a file by declarations, shifting unchanged ones: each
    header's name and value stay where a whole parse puts them (CL0225's place)."""
    from carlang.incremental import DeclarationCache
    from tests.conftest import ROOT

    text = (ROOT / "tests" / "golden" / "diagnostics" / "mcp_headers.car").read_text()
    cache = DeclarationCache()
    cache.parse(Source("t.car", text))
    edited = "tool added_above()\n\n" + text

    def places(module: object) -> list[tuple[str, object, object]]:
        return [
            (entry.key.text, entry.key.span, entry.value.span)
            for decl in module.declarations  # type: ignore[attr-defined]
            for setting in getattr(decl, "settings", ())
            for entry in setting.entries
        ]

    piecewise = cache.parse(Source("t.car", edited))
    whole = parse(Source("t.car", edited)).module
    assert piecewise is not None and whole is not None
    assert places(piecewise.module) == places(whole) and len(places(whole)) == 14
