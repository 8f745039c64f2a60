"""`carlang mcp ...`: import an MCP server's tools, front a program's MCP servers with its
policies (`proxy`), and serve carlang's checks as MCP tools (`serve`)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
import threading
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from ..render import plural
from .common import (
    EXIT_OK,
    RootOption,
    check_output_path,
    echo,
    echo_err,
    fail_usage,
    guarded,
    seconds,
    write_output,
)

__all__ = ["register"]


@guarded
def import_command(
    command: Annotated[
        list[str] | None,
        typer.Argument(help="The server's command and arguments, after `--`."),
    ] = None,
    url: Annotated[
        str | None, typer.Option("--url", help="A Streamable HTTP server on this machine.")
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(
            "--name",
            help="The server's name in the program (default: the name it gives itself, else"
            " one from its command or URL).",
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write the .car here (else stdout).")
    ] = None,
    timeout: Annotated[
        float,
        typer.Option("--timeout", callback=seconds, help="Seconds to wait for the server."),
    ] = 60.0,
    env: Annotated[
        list[str] | None,
        typer.Option(
            "--env",
            metavar="NAME",
            help="Pass this environment variable to the server (repeatable): it is declared"
            ' as env { NAME: "${NAME}" }, the value taken when the server starts, never'
            " written. A server gets no other variable but PATH, HOME, the locale and the"
            " like.",
        ),
    ] = None,
    header: Annotated[
        list[str] | None,
        typer.Option(
            "--header",
            metavar="'NAME: VALUE'",
            help="Send this header to the server at --url (repeatable), like 'Authorization:"
            " Bearer ${GITHUB_TOKEN}': declared in `headers` as given, so in single quotes a"
            " ${VAR} stays a reference, its value taken from carlang's environment when the"
            " server is reached, never written.",
        ),
    ] = None,
) -> None:
    """Start (or reach) an MCP server, list its tools and write carlang declarations: the
    server and every tool (`server.tool`) with its description and full schema. The server's
    name is --name, else the name it gives itself (`mcp-time` -> `time`), else one from its
    command (`npx -y @modelcontextprotocol/server-filesystem` -> `filesystem`) or URL. A
    started server is declared with `cwd`, the directory it ran in here (relative to the
    output's folder when in its project), so that it starts there from any directory; and
    with `env` for each --env. A server at --url is declared with `headers` for each
    --header."""
    from carlang_runtime.ir import McpServer
    from carlang_runtime.mcp import McpError

    from carlang.lower import local_url_problem
    from carlang.mcp_import import (
        import_directory,
        import_server,
        is_server_name,
        malformed_tools,
        renamed_tools,
        render_import,
        server_name_for,
        unusable_tools,
    )

    from .console import terminal_text

    if bool(command) == (url is not None):
        fail_usage("give the server's command after `--`, or --url URL (not both)")
    if out is not None and out.suffix != ".car":  # (a trial wrote carlang source to x.json)
        fail_usage(f"-o {out}: import writes a carlang program; name a .car file")
    check_output_path(out, "-o")  # (before the server is started: its folder, say)
    if url is not None:
        problem = local_url_problem(url)
        if problem:
            fail_usage(problem)
    if name is not None and not is_server_name(name):
        fail_usage(f"--name {name}: use letters, digits and `_`, not starting with a digit")
    server_name = name or server_name_for(command, url)  # (until it says its own)
    if command:
        if header:
            fail_usage(
                "--header is for a server at --url (HTTP), not one carlang starts (a command):"
                " pass it what it needs with --env"
            )
        server = McpServer(
            name=server_name,
            command=command[0],
            args=list(command[1:]),
            env=_passed_env(env or []),
        )
    else:
        if env:
            fail_usage("--env is for a server carlang starts (a command), not one at --url")
        server = McpServer(name=server_name, url=url, headers=_passed_headers(header or [], url))
    # (SIGTERM and SIGHUP too stop the server it started, as Ctrl-C does, before it exits)
    with _stopped_as_by_ctrl_c() as caught:
        try:
            info, entries = import_server(server, timeout)
        except McpError as exc:
            fail_usage(str(exc))
        except TimeoutError:
            fail_usage(f"MCP server '{server_name}' did not answer within {timeout:g}s")
        except KeyboardInterrupt:
            if not caught:  # (Ctrl-C itself)
                raise
    if caught:
        raise typer.Exit(128 + caught[0])
    if name is None:
        server_name = server_name_for(command, url, info)
        server = server.model_copy(update={"name": server_name})
    if command:  # (started where import ran: declared so, it starts there from anywhere)
        server = server.model_copy(update={"cwd": import_directory(out)})
    tools, malformed = malformed_tools(entries)
    unusable = unusable_tools(tools)
    text = render_import(server, info, tools, unusable, malformed)
    for problem in malformed:  # (what the server sent: shown escaped)
        echo_err(
            f"warning: not imported: {terminal_text(problem)} (the server is at fault: MCP"
            " lists each tool as an object with a string `name`)"
        )
    for remote, problem in unusable.items():  # (names from the server: shown escaped)
        echo_err(f"warning: tool `{terminal_text(remote)}` not imported: {terminal_text(problem)}")
    for remote, local in renamed_tools(server_name, tools, unusable).items():
        echo_err(
            f"warning: tool `{terminal_text(remote)}` imported as {local}: its name is not a"
            " carlang name (policies and capabilities name it so)"
        )
    if out is None:
        echo(text.rstrip("\n"))
    else:
        write_output(out, text)
        imported = plural(len(tools) - len(unusable), "tool")
        echo_err(f"wrote {out}: MCP server `{server_name}` with {imported}")
    raise typer.Exit(EXIT_OK)


class Transport(StrEnum):
    """How `carlang mcp proxy` talks to its clients."""

    stdio = "stdio"
    http = "http"


class BudgetPer(StrEnum):
    """What spends one `carlang mcp proxy --budget` (`limits.BUDGET_SCOPES`)."""

    session = "session"
    tenant = "tenant"


@guarded
def proxy_command(
    file: Annotated[Path, typer.Argument(help="The program: MCP servers, tools, policies.")],
    capability: Annotated[
        str | None,
        typer.Option(
            "--capability",
            help="Only the tools this capability allows (default: carlang.toml's `capability`).",
        ),
    ] = None,
    budget: Annotated[
        str | None,
        typer.Option(
            "--budget",
            help="The program's budget calls spend: each client session's own, or with"
            " --budget-per tenant each tenant's sessions together.",
        ),
    ] = None,
    budget_per: Annotated[
        BudgetPer,
        typer.Option(
            "--budget-per",
            help="What spends one --budget: each client session, or each tenant's sessions"
            " together (--tenant-token; with no tenants, every client's).",
        ),
    ] = BudgetPer.session,
    events: Annotated[
        Path | None,
        typer.Option("--events", help="Log events to run.jsonl, or to run.db (SQLite)."),
    ] = None,
    transport: Annotated[
        Transport, typer.Option("--transport", help="stdio, or Streamable HTTP.")
    ] = Transport.stdio,
    port: Annotated[
        int,
        typer.Option("--port", min=0, max=65535, help="The HTTP port (0: any free one)."),
    ] = 8765,
    host: Annotated[
        str,
        typer.Option(
            "--host",
            help="The address to listen on over HTTP. Another than this machine's own (like"
            " 0.0.0.0) needs --token-env or --tenant-token, or --insecure.",
        ),
    ] = "127.0.0.1",
    allow_host: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-host",
            help="Also answer requests with this Host header (NAME, NAME:PORT or NAME:*;"
            " localhost, 127.0.0.1 and [::1] at the port are always answered). Repeatable.",
        ),
    ] = None,
    allow_origin: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-origin",
            help="Also answer browser requests from this origin (scheme://host[:port]; a"
            " request with no Origin is answered). Repeatable.",
        ),
    ] = None,
    token_env: Annotated[
        str | None,
        typer.Option(
            "--token-env",
            metavar="VAR",
            help="Require `Authorization: Bearer <token>` over HTTP, the token being the value"
            " of environment variable VAR (never printed); other requests get 401.",
        ),
    ] = None,
    tenant_token: Annotated[
        list[str] | None,
        typer.Option(
            "--tenant-token",
            metavar="TENANT=VAR",
            help="Over HTTP, a bearer token per tenant, the value of environment variable VAR"
            " (never printed): a request's token says whose it is, a client session is its"
            " tenant's alone (another tenant's requests for it get 404), and its calls run"
            " with `scope.tenant`. Repeatable; not with --token-env.",
        ),
    ] = None,
    tenant_capability: Annotated[
        list[str] | None,
        typer.Option(
            "--tenant-capability",
            metavar="TENANT=CAPABILITY",
            help="With --tenant-token, the capability a tenant's clients get instead of"
            " --capability: the tools they see and call, and their limits. Repeatable.",
        ),
    ] = None,
    insecure: Annotated[
        bool,
        typer.Option(
            "--insecure",
            help="Listen on an address other machines reach without --token-env or"
            " --tenant-token: anyone who reaches it can call the tools.",
        ),
    ] = False,
    max_sessions: Annotated[
        int | None,
        typer.Option(
            "--max-sessions",
            min=1,
            metavar="N",
            help="Over HTTP, how many client sessions at once may have servers started for"
            " them (each has its own server processes); a call that would start another"
            " session's is refused (JSON-RPC -32000) until one ends. Default: 32.",
        ),
    ] = None,
    max_sessions_per_tenant: Annotated[
        int | None,
        typer.Option(
            "--max-sessions-per-tenant",
            min=1,
            metavar="N",
            help="With --tenant-token, how many of the --max-sessions places one tenant's"
            " sessions may hold, so that one tenant cannot take them all; its next session's"
            " calls are refused (JSON-RPC -32000) until one of its own ends. Default: no limit"
            " but --max-sessions.",
        ),
    ] = None,
    idle_timeout: Annotated[
        float | None,
        typer.Option(
            "--idle-timeout",
            min=1,
            callback=seconds,
            metavar="SECONDS",
            help="Over HTTP, end a client session after this long with no request (and no"
            " open stream); its servers are stopped. Default: 1800 (30 minutes).",
        ),
    ] = None,
    history_limit: Annotated[
        int | None,
        typer.Option(
            "--history-limit",
            min=1,
            metavar="N",
            help="How many calls of a client session `history` keeps (the last N refused and"
            " the last N others): past it, policies that read `history` refuse the session's"
            " calls they would allow (they cannot be decided on part of it). Default: 1000.",
        ),
    ] = None,
    root: RootOption = None,
) -> None:
    """An MCP server fronting the program's MCP servers: clients see only the tools the
    capability allows, and every call goes through the program's policies, budget, approvals
    (MCP elicitation) and event log. Over HTTP it answers only requests naming this machine
    (Host, Origin: DNS rebinding protection) and, with --token-env, carrying the token (with
    --tenant-token, one tenant's token, whose calls they are); each client session has
    servers of its own (started on its first call of their tools, stopped when it ends), for
    at most --max-sessions sessions at once."""
    import asyncio

    from carlang_runtime.engine import Runtime
    from carlang_runtime.mcp.proxy import (
        IDLE_TIMEOUT,
        MAX_SESSIONS,
        PolicyProxy,
        serve_http,
        serve_stdio,
    )
    from carlang_runtime.policy import HISTORY_LIMIT

    from .agent_commands import chosen_capability, load_program
    from .run_commands import _set_up_log

    if transport is Transport.stdio:
        given = {
            "--allow-host": (allow_host, "stdio has no hosts or origins"),
            "--allow-origin": (allow_origin, "stdio has no hosts or origins"),
            "--token-env": (token_env, _STDIO_CLIENT),
            "--tenant-token": (tenant_token, _STDIO_CLIENT),
            "--tenant-capability": (tenant_capability, _STDIO_CLIENT),
            "--insecure": (insecure, "stdio listens on no address"),
            "--host": (host != "127.0.0.1", "stdio listens on no address"),
        }
        for option, (value, why) in given.items():
            if value:
                fail_usage(f"{option} is for --transport http ({why})")
        limits = {
            "--max-sessions": max_sessions,
            "--max-sessions-per-tenant": max_sessions_per_tenant,
            "--idle-timeout": idle_timeout,
        }
        for option, limit in limits.items():
            if limit is not None:
                fail_usage(f"{option} is for --transport http (stdio serves one client session)")
    if budget_per is not BudgetPer.session and budget is None:
        fail_usage(f"--budget-per {budget_per.value} says what spends a budget: give --budget")
    token = _token("--token-env", token_env)
    tenants = _tenant_tokens(tenant_token or [])
    if insecure and (token is not None or tenants):
        fail_usage(
            "--insecure is for listening with no token; with --token-env or --tenant-token every"
            " request needs one: drop --insecure"
        )
    _check_tenant_limit(max_sessions_per_tenant, max_sessions or MAX_SESSIONS, tenants)
    program = load_program(file, root, tell_warnings=True)
    capability = chosen_capability(file, root, capability, program)
    if not program.mcp_servers:
        fail_usage(f"{file} declares no mcp_server: there is nothing to proxy")
    own_capabilities = _tenant_capabilities(tenant_capability or [], tenants, program)
    _warn_missing_commands(program)
    _warn_unset_variables(program, started_by_client=transport is Transport.stdio)
    http = transport is Transport.http
    with _set_up_log(events) as log:  # (a proxy that cannot start leaves no log it created)
        log.keep = False  # a gateway runs for days: events go to --events, not to memory
        runtime = Runtime.from_program(
            program, events=log, history_limit=history_limit or HISTORY_LIMIT
        )
        try:
            proxy = PolicyProxy(
                program,
                runtime,
                capability=capability,
                budget=budget,
                budget_per=budget_per.value,
                stderr=sys.stderr,
                max_sessions=(max_sessions or MAX_SESSIONS) if http else None,
                max_sessions_per_tenant=max_sessions_per_tenant,
                tenant_capabilities=own_capabilities,
            )
            listening = (
                _listen(host, port, allow_host, allow_origin, (token, tenants), insecure)
                if http
                else None
            )
        except BaseException:
            runtime.close()
            raise
    _warn_capabilities(proxy, tenants)  # (once every option is known to be right)
    interrupted = False
    with _stopped_as_by_ctrl_c() as caught:
        try:
            if listening is not None:
                listener, access = listening
                bound = listener.getsockname()[1]  # (with --port 0, the one the system chose)
                where = f"[{host}]" if ":" in host else host
                echo_err(
                    f"carlang mcp proxy: {_tool_counts(proxy, tenants)} at"
                    f" http://{where}:{bound}/mcp (Ctrl-C to stop)"
                )
                serve_http(
                    proxy,
                    bound,
                    host,
                    listener=listener,
                    access=access,
                    idle_timeout=idle_timeout or IDLE_TIMEOUT,
                )
            else:
                asyncio.run(serve_stdio(proxy))
        except KeyboardInterrupt:
            interrupted = not caught  # (Ctrl-C itself, not SIGTERM or SIGHUP)
        finally:
            # (stops the servers, and waits for them; a second Ctrl-C meanwhile, as a
            # terminal sends to the whole group, must not cut that short, nor escape as a
            # KeyboardInterrupt that kills the process by the signal instead of exiting 130)
            with _stopping_goes_on():
                runtime.close()
    if caught:  # stopped by SIGTERM or SIGHUP: its usual status, once everything is closed
        raise typer.Exit(128 + caught[0])
    if interrupted:
        raise typer.Exit(130)


@contextlib.contextmanager
def _stopping_goes_on() -> Iterator[None]:
    """While inside, Ctrl-C, SIGTERM and SIGHUP are noted and otherwise ignored: the proxy is
    already stopping, in order."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    numbers = (signal.SIGINT, *_STOPPING)
    previous = {number: signal.signal(number, lambda signum, frame: None) for number in numbers}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _check_tenant_limit(per_tenant: int | None, places: int, tenants: dict[str, str]) -> None:
    """Refuse a --max-sessions-per-tenant that cannot mean anything: without tenants, or
    larger than the places there are."""
    if per_tenant is None:
        return
    if not tenants:
        fail_usage(
            "--max-sessions-per-tenant needs tenants: give each one's token with --tenant-token"
            " TENANT=VAR"
        )
    if per_tenant > places:
        fail_usage(
            f"--max-sessions-per-tenant {per_tenant} is more than the proxy's places"
            f" (--max-sessions {places}): give at most {places}, or raise --max-sessions"
        )


#: The signals that stop the proxy as Ctrl-C does: how an MCP client stops a server it
#: started (it closes its input, then sends SIGTERM), how a service manager stops one, and a
#: terminal that closes.
_STOPPING = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


@contextlib.contextmanager
def _stopped_as_by_ctrl_c() -> Iterator[list[int]]:
    """While inside, SIGTERM and SIGHUP do what SIGINT does (whatever handles SIGINT then:
    asyncio's runner cancels the calls in flight, which the event log records as
    interrupted; uvicorn shuts down), so that the proxy closes its runtime and with it the
    servers it started, instead of dying and leaving them running. The list holds the
    signals caught."""
    caught: list[int] = []

    def stop(signum: int, frame: Any) -> None:
        caught.append(signum)
        handler = signal.getsignal(signal.SIGINT)
        if callable(handler):
            handler(signal.SIGINT, frame)
        else:  # (SIGINT ignored, as in a background job: stop all the same)
            raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield caught  # (signals reach the main thread only: in tests, a runner's thread)
        return
    previous = {number: signal.signal(number, stop) for number in _STOPPING}
    try:
        yield caught
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _passed_env(names: list[str]) -> dict[str, str]:
    """`--env NAME`s as a server's env: each a reference to the variable (`${NAME}`), so the
    declaration never holds its value; a usage error for a name that cannot be one."""
    for name in names:
        if not _VARIABLE_NAME.fullmatch(name):
            fail_usage(
                f"--env {name}: give the name of an environment variable (like GITHUB_TOKEN);"
                " its value is taken from carlang's environment when the server starts"
            )
    return {name: f"${{{name}}}" for name in names}


def _passed_headers(given: list[str], url: str | None) -> dict[str, str]:
    """`--header 'NAME: VALUE'`s as a server's headers, each value as given (a `${VAR}` in it
    is declared so, and taken from carlang's environment when the server is reached); a
    usage error for one that cannot be sent (never showing a value), and a warning for a
    credential written out, which goes into the file as it is."""
    from carlang_runtime.environment import misreferences
    from carlang_runtime.mcp.client import header_problems, written_out_credential

    from carlang.lower import credential_reference

    headers: dict[str, str] = {}
    for text in given:
        name, colon, value = text.partition(":")
        name, value = name.strip(), value.strip()
        if not colon or not name:
            fail_usage(
                "--header: write it as 'NAME: VALUE', like 'Authorization: Bearer ${TOKEN}'"
                " (in single quotes, so that the shell leaves ${TOKEN} to carlang)"
            )
        if name in headers:
            fail_usage(f"--header {name} is given twice")
        headers[name] = value
    problems = header_problems(headers, url=url)
    if problems:
        fail_usage(f"--header: {problems[0].message}")
    for name, value in headers.items():
        for wrong in misreferences(value):  # (the shell took `${T}` for `$T`, or a typo)
            echo_err(
                f"warning: --header {name}: {wrong.message()}, in single quotes so that the"
                " shell leaves it to carlang; as given, it is sent as written"
            )
        if written_out_credential(name, value):  # (never for a reference miswritten)
            echo_err(
                f"warning: --header {name}: its value is a credential, written into the"
                " declaration as given; to have the file hold a variable's name instead,"
                f" pass '{name}: {credential_reference(name, value)[1:-1]}' (in single quotes:"
                " the shell leaves ${...} to carlang)"
            )
    return headers


#: An environment variable's name, as `--token-env` and `--tenant-token` take one.
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _token(option: str, variable: str | None) -> str | None:
    """The bearer token `option` (`--token-env VAR`, `--tenant-token TENANT=VAR`) names:
    the value of environment variable `variable`, checked before anything starts; None
    without the option."""
    if variable is None:
        return None
    if not _VARIABLE_NAME.fullmatch(variable):  # (never shown: it may be the token itself)
        fail_usage(
            f"{option}: give the name of the environment variable that holds the token, not"
            " a value: what was given is not a variable's name, and is not shown (it may be"
            " the token: a shell puts a variable's value in place of `$NAME` before carlang"
            " sees it). Like --tenant-token acme=ACME_TOKEN or --token-env PROXY_TOKEN"
        )
    given = os.environ.get(variable)
    if given is None:
        fail_usage(f"{option}: the environment variable {variable} is not set")
    token = given.strip()
    if not token:
        blank = "empty" if not given else "only white space"
        fail_usage(
            f"{option}: the environment variable {variable} is {blank}: set it to the token"
            f" (like `export {variable}=$(openssl rand -hex 32)`)"
        )
    return token


def _tenant_tokens(options: list[str]) -> dict[str, str]:
    """Each tenant's bearer token, from `--tenant-token TENANT=VAR` options (see `_token`)."""
    tokens: dict[str, str] = {}
    for given in options:
        tenant, _, variable = given.partition("=")
        tenant, variable = tenant.strip(), variable.strip()
        if not tenant or not variable:  # (what was given is not shown: it may be a token)
            fail_usage(
                "--tenant-token: give TENANT=VAR, the tenant's name and the environment"
                " variable that holds its token (like --tenant-token acme=ACME_TOKEN)"
            )
        if tenant in tokens:
            fail_usage(f"--tenant-token: tenant {tenant} twice: give each tenant one token")
        shown = variable if _VARIABLE_NAME.fullmatch(variable) else "..."
        token = _token(f"--tenant-token {tenant}={shown}", variable)
        assert token is not None
        tokens[tenant] = token
    return tokens


def _tenant_capabilities(
    options: list[str], tenants: dict[str, str], program: Any
) -> dict[str, str]:
    """Each tenant's own capability, from `--tenant-capability TENANT=CAPABILITY` options:
    a tenant of --tenant-token's, a capability of the program's, and one per tenant."""
    chosen: dict[str, str] = {}
    for given in options:
        tenant, _, name = (part.strip() for part in given.partition("="))
        if not tenant or not name:
            fail_usage(
                f"--tenant-capability {given!r}: give TENANT=CAPABILITY (like"
                " --tenant-capability acme=acme_agent)"
            )
        if tenant not in tenants:
            known = ", ".join(sorted(tenants)) or "none: give each one's token with --tenant-token"
            fail_usage(f"--tenant-capability {given}: no tenant {tenant} (tenants: {known})")
        if tenant in chosen:
            fail_usage(f"--tenant-capability: tenant {tenant} twice: give each tenant one")
        if program.capability(name) is None:
            names = ", ".join(c.name for c in program.capabilities) or "none"
            fail_usage(
                f"--tenant-capability {given}: no capability '{name}' (capabilities: {names})"
            )
        chosen[tenant] = name
    return chosen


def _warn_capabilities(proxy: Any, tenants: dict[str, str]) -> None:
    """Warn of clients that see every tool (no capability), and of a capability that allows
    none of the MCP servers' tools (its clients could call nothing)."""
    whose: list[str | None] = [*sorted(tenants)] or [None]
    open_to = [t for t in whose if proxy.capability_of(t) is None]
    if open_to:
        who = "clients" if open_to == [None] else f"tenant(s) {', '.join(map(str, open_to))}"
        echo_err(
            f"warning: no capability: {who} see every tool of the program's MCP servers"
            " (choose some with --capability NAME, or `capability` in carlang.toml)"
        )
    empty = [t for t in whose if proxy.capability_of(t) is not None and not proxy.list_tools(t)]
    for capability in sorted({proxy.capability_of(t) for t in empty}):
        users = [t for t in empty if proxy.capability_of(t) == capability]
        who = "its clients" if users == [None] else f"tenant(s) {', '.join(map(str, users))}"
        echo_err(
            f"warning: capability `{capability}` allows none of the MCP servers' tools: {who}"
            " can call nothing (check its `tools allow` patterns against the tools' names)"
        )


def _tool_counts(proxy: Any, tenants: dict[str, str]) -> str:
    """How many tools the proxy's clients see: `3 tool(s)`, or each tenant's when tenants see
    different tools (`tools for acme 2, globex 1`; with tenants, every client is some
    tenant's)."""
    each = {tenant: [t["name"] for t in proxy.list_tools(tenant)] for tenant in sorted(tenants)}
    if len({tuple(names) for names in each.values()}) > 1:
        return "tools for " + ", ".join(f"{tenant} {len(names)}" for tenant, names in each.items())
    count = len(next(iter(each.values()))) if each else len(proxy.list_tools())
    return f"{count} tool(s)"


def _listen(
    host: str,
    port: int,
    allow_host: list[str] | None,
    allow_origin: list[str] | None,
    tokens: tuple[str | None, dict[str, str]],
    insecure: bool,
) -> tuple[Any, Any]:
    """The HTTP proxy's listening socket and who it answers (`tokens`: one token for every
    client, and a token per tenant). An address other machines reach is refused without a
    token unless --insecure (then a warning says what that means)."""
    from carlang_runtime.errors import CarlangRuntimeError
    from carlang_runtime.mcp.proxy import bind_http, http_access, is_loopback

    one, tenants = tokens

    def access_at(port: int) -> Any:
        return http_access(
            host,
            port,
            allow_hosts=allow_host or (),
            allow_origins=allow_origin or (),
            token=one,
            tenants=tenants,
        )

    try:
        access_at(port)  # (checked before the port is taken)
    except CarlangRuntimeError as exc:
        fail_usage(str(exc))
    listener = bind_http(port, host)
    address, bound = listener.getsockname()[:2]
    secured = one is not None or bool(tenants)
    if not is_loopback(address):
        if not secured and not insecure:
            listener.close()
            fail_usage(
                f"--host {host}: other machines can reach this address, and anyone who does"
                " could call the tools; require a token with --token-env VAR (the value of"
                " environment variable VAR) or one per tenant with --tenant-token TENANT=VAR,"
                " or accept that with --insecure"
            )
        short = [t for t in (one, *tenants.values()) if t is not None and len(t) < _SHORT_TOKEN]
        if short:
            echo_err(
                f"warning: a token of fewer than {_SHORT_TOKEN} characters on {host}, which other"
                " machines reach, can be guessed: use a long random one (like `openssl rand -hex"
                " 32`)"
            )
        if not secured:
            echo_err(
                f"warning: --insecure: listening on {host}:{bound} with no token; anyone who"
                " reaches it can call the program's tools (within its policies)"
            )
        if host in ("0.0.0.0", "::") and not allow_host:
            echo_err(
                f"note: on {host}, requests from other machines must name an allowed host:"
                " add --allow-host NAME for the name or address they use"
            )
    return listener, access_at(bound)


#: Why a bearer token means nothing over stdio.
_STDIO_CLIENT = "over stdio the one client is the process that started the proxy: no token"
#: Fewer characters than this, a token on an address other machines reach is warned about.
_SHORT_TOKEN = 16


def _warn_unset_variables(program: Any, *, started_by_client: bool) -> None:
    """Say at start-up which MCP servers' `env` or `headers` name a variable carlang's
    environment does not have, or has empty: the gateway would start, and fail every call of
    their tools (or send an empty token). An MCP client starts its servers, this proxy among
    them over stdio (`started_by_client`), with a small environment of its own: its
    configuration's `env` must pass them."""
    from carlang_runtime.environment import expand_references

    why = (
        " (an MCP client that starts this proxy passes only the variables its configuration's"
        " `env` names)"
        if started_by_client
        else ""
    )

    for server in program.mcp_servers:
        for part, values in (("env", server.env), ("headers", server.headers)):
            names = expand_references(values, {})[1]
            unset = [name for name in names if name not in os.environ]
            empty = [name for name in names if os.environ.get(name, "x").strip() == ""]
            for found, what, consequence in (
                (
                    unset,
                    "which carlang's environment does not have",
                    "every call of its tools will fail until it is set",
                ),
                (
                    empty,
                    "which is empty here" if len(empty) == 1 else "which are empty here",
                    "its tools' calls go without a value",
                ),
            ):
                if found:
                    listed = ", ".join(f"${{{name}}}" for name in found)
                    echo_err(
                        f"warning: mcp_server `{server.name}`: its {part}"
                        f" {'names' if part == 'env' else 'name'} {listed}, {what}:"
                        f" {consequence}{why}"
                    )


def _warn_missing_commands(program: Any) -> None:
    """Say at start-up which MCP servers' commands cannot be found (not on PATH, no such
    file): the gateway would start, and fail every call of their tools."""
    import shutil

    for server in program.mcp_servers:
        command = server.command
        if command is None:
            continue
        where = Path(server.cwd) if server.cwd else Path.cwd()
        found = shutil.which(command) or (os.sep in command and shutil.which(str(where / command)))
        if not found:
            echo_err(
                f"warning: mcp_server `{server.name}`: its command `{command}` is not found"
                " (not on PATH, no such file): every call of its tools will fail"
            )


@guarded
def serve_command(root: RootOption = None) -> None:
    """An MCP server (stdio) with carlang's checks as tools: check, verify, simulate,
    optimize, equivalent, explain, rank, policy_check. None of them runs anything; a `path`
    they are given must be a .car file under the project root (--root, default: the working
    directory)."""
    from carlang.mcp_serve import serve

    if root is not None and not root.is_dir():
        what = "a file; name the folder that holds it" if root.exists() else "no such folder"
        fail_usage(f"--root {root}: {what}")
    serve(root)


def register(app: typer.Typer) -> None:
    """Add `mcp import|proxy|serve` to the CLI."""
    mcp = typer.Typer(
        help="MCP: import a server's tools, proxy servers under a program's policies, serve"
        " carlang's checks.",
        no_args_is_help=True,
    )
    mcp.command("import")(import_command)
    mcp.command("proxy")(proxy_command)
    mcp.command("serve")(serve_command)
    app.add_typer(mcp, name="mcp")
