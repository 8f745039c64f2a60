"""A proxy's tokens per tenant, in process: what `http_access` refuses, and that a client session
belongs to one tenant, whose runs have it in their scope (the same over HTTP with real
processes: test_proxy_tenants.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from carlang_runtime.engine import Runtime
from carlang_runtime.errors import CarlangRuntimeError
from carlang_runtime.mcp.proxy import PolicyProxy, http_access

from carlang.compiler import compile_text

PROGRAM = """
mcp_server there {
  url "http://127.0.0.1:9/mcp"
}
tool there.add(a: int) -> int { description "add" }
capability agent { tools allow there.add }
"""


@pytest.mark.parametrize(
    ("tenants", "token", "said"),
    [
        ({"acme": "same", "globex": "same"}, None, "tenants 'acme' and 'globex' have the same"),
        ({"acme": "a"}, "b", "not both"),
        ({"": "a"}, None, "a tenant must be a non-empty string"),
        ({"acme": ""}, None, "tenant 'acme' has an empty token"),
        ({"ac me": "a-long-token-123456"}, None, "a tenant's name is letters, digits"),
        ({'acme"x': "a-long-token-123456"}, None, "a tenant's name is letters, digits"),
        ({"acme": "line\nbreak-token"}, None, "the token of tenant 'acme' holds a space"),
        ({"acme": "tökéntökéntökén"}, None, "which a client cannot send"),
        ({}, "one two", "the token holds a space"),
    ],
)
def test_tokens_per_tenant_that_cannot_be_are_refused(
    tenants: dict[str, str], token: str | None, said: str
) -> None:
    with pytest.raises(CarlangRuntimeError) as refused:
        http_access("127.0.0.1", 8765, tenants=tenants, token=token)
    assert said in str(refused.value)
    for secret in tenants.values():
        if secret:
            assert f"'{secret}'" not in str(refused.value)


def test_the_access_keeps_each_tenants_token_out_of_its_repr() -> None:
    access = http_access("127.0.0.1", 8765, tenants={"acme": "s3cr3t-acme"})
    assert access.tenants == (("acme", "s3cr3t-acme"),)
    assert "s3cr3t" not in repr(access)


@pytest.fixture
def proxy(tmp_path: Path) -> Any:
    result = compile_text(PROGRAM, root=tmp_path)
    assert result.program is not None
    runtime = Runtime.from_program(result.program)
    yield PolicyProxy(result.program, runtime, capability="agent")
    runtime.close()


def test_a_client_session_is_its_tenants_alone(proxy: PolicyProxy) -> None:
    mcp_session = object()
    client = proxy.client(mcp_session, "acme")
    assert client.scope == {"mcp_session": client.session, "tenant": "acme"}
    assert proxy.client(mcp_session, "acme") is client
    for other in ("globex", None):
        with pytest.raises(CarlangRuntimeError, match="belongs to another tenant"):
            proxy.client(mcp_session, other)
    # the runtime's session is bound to the tenant too: another tenant's run is refused there
    assert proxy.runtime.session_problem(client.session, "globex") is not None
    assert proxy.runtime.session_problem(client.session, "acme") is None
    untenanted = proxy.client(object())
    assert untenanted.scope == {"mcp_session": untenanted.session}


def test_a_servers_secrets_are_its_credentials_not_its_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from carlang_runtime.ir import McpServer
    from carlang_runtime.mcp.client import server_secrets

    monkeypatch.setenv("SRV_TOKEN", "tok-from-env-123456")
    server = McpServer(
        name="s",
        url="http://127.0.0.1:9/mcp",
        env={
            "NODE_ENV": "production",
            "API_KEY": "literal-key-123456",
            "DATABASE": "postgres://u:db-pass-123456@h/db",
            "ALLOWED": "${HOME_DIR}",
            "PWD": "/srv/work",
            "KEYBOARD_LAYOUT": "dvorak",
        },
        headers={"Authorization": "Bearer ${SRV_TOKEN}", "X-Org": "acme"},
    )
    monkeypatch.setenv("HOME_DIR", "/home/alice")
    found = set(server_secrets(server))
    assert {"literal-key-123456", "db-pass-123456", "tok-from-env-123456"} <= found
    assert "Bearer tok-from-env-123456" in found
    # plain settings, taken from the environment or not, stay as they are in every output
    assert not found & {"production", "/home/alice", "/srv/work", "dvorak", "acme"}, found


def test_a_secret_the_host_keeps_out_is_in_no_record_of_a_run(tmp_path: Path) -> None:
    from carlang_runtime.engine import EventLog, JsonlSink
    from carlang_runtime.ir import ActionProposal

    log = tmp_path / "run.jsonl"
    runtime = Runtime(events=EventLog([JsonlSink(log)]))
    runtime.register_tool("echo", lambda text: f"said {text}")
    runtime.keep_out(["host-token-987654"])
    proposal = ActionProposal.model_validate(
        {
            "id": "p",
            "actions": [
                {"id": "a", "type": "tool_call", "tool": "echo", "parameters": {"text": "x"}},
                {
                    "id": "b",
                    "type": "tool_call",
                    "tool": "echo",
                    "parameters": {"text": "tok host-token-987654"},
                },
            ],
        }
    )
    result = runtime.execute(proposal)
    assert "host-token" not in result.model_dump_json()
    runtime.close()
    logged = log.read_text()
    assert "host-token" not in logged and "tok [REDACTED]" in logged
    assert "said x" in result.model_dump_json()  # (the rest as it is)


@pytest.mark.parametrize(
    ("value", "said"),
    [
        (None, "its headers name ${GW_TOKEN}, which carlang's environment does not have"),
        ("", "its headers name ${GW_TOKEN}, which is empty here"),
        ("set-and-long-enough", None),
    ],
)
def test_the_proxy_says_at_start_which_variables_its_servers_lack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str | None, said: str | None
) -> None:
    """An MCP client starts the proxy with a small environment of its own: a token variable
    the user exported in a shell is not there, and every call would fail (or go without it)."""
    from typer.testing import CliRunner

    from carlang.cli import app

    program = tmp_path / "gw.car"
    program.write_text(
        PROGRAM.replace(
            '  url "http://127.0.0.1:9/mcp"\n',
            '  url "http://127.0.0.1:9/mcp"\n  headers { "Authorization": "Bearer ${GW_TOKEN}" }\n',
        )
    )
    if value is None:
        monkeypatch.delenv("GW_TOKEN", raising=False)
    else:
        monkeypatch.setenv("GW_TOKEN", value)
    # (over stdio, with no client: the proxy stops at once, its input being empty)
    result = CliRunner().invoke(app, ["mcp", "proxy", str(program), "--capability", "agent"])
    assert result.exit_code == 0, result.output
    if said is None:
        assert "GW_TOKEN" not in result.stderr
    else:
        assert said in result.stderr and "its configuration's `env`" in result.stderr


TWO_TOOLS = PROGRAM.replace(
    "capability agent",
    'tool there.sub(a: int) -> int { description "subtract" }\n'
    "capability reader { tools allow there.sub }\ncapability agent",
)


def test_a_tenants_own_capability_is_what_its_clients_see_and_call(tmp_path: Path) -> None:
    result = compile_text(TWO_TOOLS, root=tmp_path)
    assert result.program is not None
    runtime = Runtime.from_program(result.program)
    try:
        proxy = PolicyProxy(
            result.program, runtime, capability="agent", tenant_capabilities={"globex": "reader"}
        )
        assert [t["name"] for t in proxy.list_tools("acme")] == ["there.add"]
        assert [t["name"] for t in proxy.list_tools("globex")] == ["there.sub"]
        assert [t["name"] for t in proxy.list_tools()] == ["there.add"]
        assert proxy.capability_of("globex") == "reader" and proxy.capability_of("acme") == "agent"
        with pytest.raises(CarlangRuntimeError, match="tenant 'globex': no capability 'nope'"):
            PolicyProxy(result.program, runtime, tenant_capabilities={"globex": "nope"})
    finally:
        runtime.close()


def test_tenant_capability_options_that_cannot_be_are_usage_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import carlang_runtime.mcp.proxy as proxy_module
    from typer.testing import CliRunner

    from carlang.cli import app

    served: list[Any] = []

    def serve(proxy: Any, *_args: Any, listener: Any, **_options: Any) -> None:  # (no serving)
        listener.close()
        served.append(proxy)

    monkeypatch.setattr(proxy_module, "serve_http", serve)
    monkeypatch.setenv("ACME_TOKEN", "acme-token-1234567890")
    monkeypatch.setenv("GLOBEX_TOKEN", "globex-token-1234567890")
    program = tmp_path / "p.car"
    program.write_text(TWO_TOOLS)
    http = ["mcp", "proxy", str(program), "--transport", "http", "--port", "0"]
    tenants = ["--tenant-token", "acme=ACME_TOKEN", "--tenant-token", "globex=GLOBEX_TOKEN"]
    runner = CliRunner()
    for options, said in (
        (["--tenant-capability", "initech=reader"], "no tenant initech (tenants: acme, globex)"),
        (["--tenant-capability", "globex=nope"], "no capability 'nope' (capabilities: reader,"),
        (["--tenant-capability", "globex"], "give TENANT=CAPABILITY"),
        (["--tenant-capability", "globex=reader"] * 2, "tenant globex twice"),
    ):
        refused = runner.invoke(app, [*http, *tenants, *options])
        assert refused.exit_code == 2 and said in refused.output, (options, refused.output)
    stdio = runner.invoke(app, ["mcp", "proxy", str(program), "--tenant-capability", "a=reader"])
    assert stdio.exit_code == 2 and "--tenant-capability is for --transport http" in stdio.output
    started = runner.invoke(
        app, [*http, *tenants, "--capability", "agent", "--tenant-capability", "globex=reader"]
    )
    assert started.exit_code == 0, started.output
    # one tool each, but not the same one: each tenant's count is said
    assert "carlang mcp proxy: tools for acme 1, globex 1 at http://127.0.0.1:" in started.output
    assert "warning: no capability" not in started.output
    assert served[-1].capability_of("globex") == "reader"
    # every tenant with a capability of its own: no client sees every tool, so no warning
    both = ["--tenant-capability", "acme=reader", "--tenant-capability", "globex=reader"]
    quiet = runner.invoke(app, [*http, *tenants, *both])
    assert quiet.exit_code == 0 and "warning: no capability" not in quiet.output, quiet.output
    assert "carlang mcp proxy: 1 tool(s) at" in quiet.output, quiet.output
    # a tenant without one, and no --capability: the warning names it
    one = runner.invoke(app, [*http, *tenants, "--tenant-capability", "globex=reader"])
    assert "warning: no capability: tenant(s) acme see every tool" in one.output, one.output
    assert "carlang mcp proxy: tools for acme 2, globex 1 at" in one.output, one.output
    # a capability that allows none of the servers' tools is said to (a trial's finding)
    program.write_text(TWO_TOOLS + "capability nothing { tools allow nosuch.* }\n")
    none = runner.invoke(app, [*http, *tenants, "--tenant-capability", "globex=nothing"])
    assert (
        "warning: capability `nothing` allows none of the MCP servers' tools: tenant(s)"
        " globex can call nothing" in none.output
    ), none.output
    # and no warning comes before an error that stops the proxy
    monkeypatch.setenv("GLOBEX_TOKEN", "acme-token-1234567890")
    same = runner.invoke(app, [*http, *tenants])
    assert same.exit_code == 2 and "have the same token" in same.output, same.output
    assert "warning" not in same.output, same.output
