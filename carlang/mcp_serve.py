"""`carlang mcp serve`: carlang's checks as MCP tools, for an agent to check its own plan
before proposing it. Nothing here runs a tool.

check         a .car program (source text or a path) -> its diagnostics
verify        a CAR proposal (against a program's tools, capability, budget) -> the verdict
simulate      a proposal's declared effects on a state
optimize      a proposal without phantom dependencies
equivalent    whether two proposals leave the same state
explain       every policy's verdict on one action, with the values that decided it
rank          candidate proposals scored and ranked, best first
policy_check  allow / deny / require_approval for one action, with the deciding policies
"""

from __future__ import annotations

import json
import os
import re
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from carlang_runtime import ir
from carlang_runtime.paramcheck import filled_parameters
from carlang_runtime.textfile import file_kind, not_a_file

__all__ = ["build_server", "served_methods", "serve_stdio"]

#: The project root of the server answering the current call: a `path` must name a .car
#: file under it, and imports may not leave it (unset: the working directory).
_ROOT: ContextVar[Path | None] = ContextVar("carlang_mcp_serve_root", default=None)


class ProgramProblem(Exception):
    """A program that does not compile: the message lists its errors."""


def _root() -> Path:
    return (_ROOT.get() or Path.cwd()).resolve()


def _program_file(path: str, root: Path) -> Path:
    """The .car file `path` names (relative to `root`), symlinks and `..` resolved; a
    `ProgramProblem` unless it is under `root`. (Where it points is checked before whether
    it exists: nothing is said about files outside the root.)"""
    shown = _shown_path(path)
    outside = (
        f"{shown} is outside the project root {root}: `carlang mcp serve` reads only .car"
        " files under it (start it with --root to choose another)"
    )
    if "\0" in path:
        raise ProgramProblem(f"{shown!r}: a path cannot hold a NUL character")
    try:
        file = (root / path).resolve()
    except (OSError, RuntimeError):  # a symlink loop, a name too long
        raise ProgramProblem(outside) from None
    if not file.is_relative_to(root):
        raise ProgramProblem(outside)
    if file.suffix != ".car":
        raise ProgramProblem(f"{shown} is not a .car file: `carlang mcp serve` reads only those")
    problem = not_a_file(file)
    if problem is not None:
        raise ProgramProblem(f"{shown}: {problem}")
    if file_kind(file) is None:  # nothing there, or a path the system cannot look at
        try:
            os.stat(file)
        except (FileNotFoundError, NotADirectoryError):
            pass
        except OSError as exc:  # a name too long, a directory it may not enter
            reason = (exc.strerror or str(exc)).lower()
            raise ProgramProblem(f"{shown}: cannot read it ({reason})") from None
        raise ProgramProblem(f"no file {shown} (in the project root {root})")
    return file


def _shown_path(path: str) -> str:
    """A path as messages show it: whole up to 200 characters, else its start, its end and
    its length (a 5,000-character path is not worth printing)."""
    if len(path) <= 200:
        return path
    return f"{path[:60]}...{path[-40:]} ({len(path)} characters)"


def _compile(program: str | None, path: str | None) -> tuple[ir.Program | None, list[Any]]:
    from .compiler import compile_file, compile_text

    if program is None and path is None:
        raise ProgramProblem("give the program: `program` (.car source text) or `path` (a file)")
    if program is not None and path is not None:
        raise ProgramProblem("give the program as `program` or as `path`, not both")
    root = _root()
    if path is not None:
        result = compile_file(_program_file(path, root), root)
    else:
        assert program is not None
        refused = _schema_files_refused(program)
        if refused:
            return None, refused
        result = compile_text(program, root=root)
    # imports stay under the root, and only regular .car files are read (the loader sees to
    # both): nothing of another file (its first word in a parse error) can be shown. Schema
    # files are read only for the project's own .car files, and never quoted.
    return result.program, [_unquoted(d) for d in result.diagnostics.sorted()]


#: What an inline program that names a schema file is told (whether the file exists or not).
_SCHEMA_FROM_REFUSED = (
    "`schema from` reads a file: a program given inline to `carlang mcp serve` may not use it"
)


def _schema_files_refused(program: str) -> list[Any]:
    """An error for each `schema from "file.json"` in a program given inline, before anything
    is read: the client chose the file, and what the compiler says of it (its type, a key it
    lacks) would give it away. A .car file of the project may name one (`path`, or imported):
    the project chose it."""
    if "from" not in program:  # (the keyword is written as it is, or not at all)
        return []
    from . import ast
    from .diagnostics import Diagnostic, Label
    from .parse import parse
    from .source import Source

    source = Source("input.car", program)  # (the name compile_text gives it)
    module = parse(source).module
    if module is None:
        return []
    return [
        Diagnostic(
            "CL0219",
            "error",
            _SCHEMA_FROM_REFUSED,
            (Label(source, item.reference.span),),
            help="write the schema out (`schema { ... }`), or give the program by `path`: a .car"
            " file under the project root",
        )
        for decl in module.declarations
        if isinstance(decl, ast.ToolDecl)
        for item in decl.items
        if isinstance(item, ast.ToolSchemaFrom)
    ]


#: What the compiler says of a schema file that is safe to show: where it is, whether it can
#: be read, what a pointer into it lacks (all of it written in the project's .car file).
_SAFE_SCHEMA_FILE = re.compile(
    r"schema document `[^`]*` leaves the project root|cannot read schema document `[^`]*`: .*"
    r"|`#[^`]*` in `[^`]*` is not a JSON pointer .*|`[^`]*` has nothing at `#[^`]*` \(no `.*`\)",
    re.DOTALL,
)


def _unquoted(diagnostic: Any) -> Any:
    """A diagnostic about a schema file (`schema from "cfg.json"`: the primary label is the
    file's name) without what it quotes of the file: `its type is 'sk-live-...'` is cut, and
    so is what Python's json says of text that is not JSON."""
    label = diagnostic.primary
    if (
        diagnostic.code != "CL0219"
        or label is None
        or not label.source.text[label.span.start : label.span.start + 1] == '"'
        or _SAFE_SCHEMA_FILE.fullmatch(diagnostic.message)
    ):
        return diagnostic
    import dataclasses

    head = diagnostic.message.split(": ", 1)[0]
    if head.startswith("the schema of tool"):
        head += (
            " (what is wrong is not shown: `carlang mcp serve` quotes nothing of a schema file;"
            " `carlang check` says)"
        )
    return dataclasses.replace(diagnostic, message=head)


def _diagnostics(items: list[Any]) -> list[dict[str, Any]]:
    from .render import render_json

    document: dict[str, Any] = json.loads(render_json(items))
    return list(document["diagnostics"])


def _program_or_error(program: str | None, path: str | None) -> ir.Program:
    compiled, diagnostics = _compile(program, path)
    errors = [d for d in diagnostics if d.severity == "error" and d.code.startswith("CL0")]
    if compiled is None or errors:
        from .render import render_text

        raise ProgramProblem("the program has errors:\n" + render_text(errors or diagnostics))
    return compiled


def _action(
    program: ir.Program, tool: str, params: dict[str, Any] | None, path: str | None
) -> ir.Action:
    """The call as the runtime makes it (left-out parameters get their declared defaults);
    a `ProgramProblem` unless the program declares `tool` and `params` fit its parameters,
    as `carlang explain --tool --params` checks: a decision about a call that cannot happen
    misleads (an allow for a tool the program does not know is a false allow)."""
    from .explain import call_problems

    given = params or {}
    declared, problems = call_problems(program, tool, given, path or "the program")
    if declared is None:
        raise ProgramProblem(problems[0])
    if problems:
        raise ProgramProblem("params: " + "; ".join(problems))
    parameters = filled_parameters(given, declared.parameters)
    return ir.Action(id="call", type="tool_call", tool=tool, parameters=parameters)


def check(program: str | None = None, path: str | None = None) -> dict[str, Any]:
    """Check a carlang program (its .car source text, or a path): every diagnostic with its
    line, column, code and message."""
    _, diagnostics = _compile(program, path)
    found = _diagnostics(diagnostics)
    errors = sum(1 for d in diagnostics if d.severity == "error")
    return {"ok": errors == 0, "errors": errors, "diagnostics": found}


def verify(
    proposal: dict[str, Any],
    state: dict[str, Any] | None = None,
    program: str | None = None,
    path: str | None = None,
    capability: str | None = None,
    budget: str | None = None,
) -> dict[str, Any]:
    """Statically verify a CAR proposal: with a program, against its tools, its capability
    and budget (given here, else the ones the proposal names) and its policies, as `carlang
    check` judges a plan: an action a policy will deny is an error, one that will need an
    approval (or that a policy is predicted to deny from the state) a warning. Runs nothing."""
    from carlang_runtime.verify import verify as run_verify

    from .policycheck import judged_verdict

    (loaded,) = _proposals(("proposal", proposal))
    if program is None and path is None:
        for argument, value in (("capability", capability), ("budget", budget)):
            if value is not None:  # (it would be ignored: a verdict that did not check it)
                raise ProgramProblem(
                    f"argument `{argument}` names a program's {argument}: give the program too"
                    " (`program`, its .car source text, or `path`, a file)"
                )
        data: dict[str, Any] = run_verify(loaded, state).model_dump(mode="json")
        return data
    compiled = _program_or_error(program, path)
    cap_name = capability or loaded.capability
    budget_name = budget or loaded.budget
    cap = compiled.capability(cap_name) if cap_name else None
    bud = compiled.budget(budget_name) if budget_name else None
    for kind, given, name, found, names in (
        ("capability", capability, cap_name, cap, [c.name for c in compiled.capabilities]),
        ("budget", budget, budget_name, bud, [b.name for b in compiled.budgets]),
    ):
        if name and found is None:  # (named by the argument, else by the proposal)
            where = "" if given else f"argument `proposal.{kind}`: "
            raise ProgramProblem(where + _no_such(kind, name, names))
    result = run_verify(
        loaded, state, compiled.tools, capability=cap, budget=bud, redact=compiled.redactions
    )
    return judged_verdict(result, compiled, loaded, state)


def _no_such(kind: str, name: str, names: list[str]) -> str:
    """`no capability 'agnet' (did you mean 'agent'?)`, else the names there are (`budgets:
    none`), as carlang's other commands say it."""
    from carlang_runtime.suggest import did_you_mean

    kinds = {"capability": "capabilities", "budget": "budgets"}.get(kind, f"{kind}s")
    hint = did_you_mean(name, names) or f"{kinds}: {', '.join(names) or 'none'}"
    return f"no {kind} '{name}' ({hint})"


def _capability(compiled: ir.Program, name: str) -> ir.Capability:
    found = compiled.capability(name)
    if found is None:
        names = [c.name for c in compiled.capabilities]
        raise ProgramProblem(_no_such("capability", name, names))
    return found


#: How many problems one answer lists (the rest are counted): a proposal of 10,000 broken
#: actions is corrected from its first few.
_PROBLEMS_SHOWN = 20


def _listed(lines: list[str]) -> str:
    """Problems one a line, the first `_PROBLEMS_SHOWN` of them, then how many more."""
    shown = lines[:_PROBLEMS_SHOWN]
    if len(lines) > _PROBLEMS_SHOWN:
        shown.append(f"... and {len(lines) - _PROBLEMS_SHOWN} more")
    return "\n".join(shown)


def _proposals(*given: tuple[str, dict[str, Any]]) -> list[ir.ActionProposal]:
    """Each `(argument, data)` loaded as a proposal; a `ProgramProblem` unless all of them
    are one, a line per problem, each at its place in its argument (``argument
    `proposal.actions[0].type`: ...``, ``argument `candidates[1].id`: ...``)."""
    from carlang_runtime.errors import IRLoadError
    from carlang_runtime.ir import load_proposal

    loaded, problems = [], []
    for argument, data in given:
        try:
            loaded.append(load_proposal(data))
        except IRLoadError as exc:
            for problem in exc.problems:
                place = problem.path
                where = argument + (place if place[:1] in ("", "[") else f".{place}")
                problems.append(f"argument `{where}`: {problem.message}")
    if problems:
        raise ProgramProblem(_listed(problems))
    return loaded


def _unverified(
    proposal: ir.ActionProposal,
    state: dict[str, Any] | None,
    argument: str,
    start: str,
    hint: str | None = None,
) -> str | None:
    """What `verify` (without a program) finds wrong with `proposal` from `state`, as the
    `verify` tool says it (`error[CL0303] a: dependency cycle: a -> b -> a`), or None when
    it verifies. `start`: the state, as the message says it ("from `state`"); `hint`: how to
    give another, said when an error depends on the state (CL04xx: a key read before it is
    written, a precondition or an assertion that fails)."""
    from carlang_runtime.verify import verify as run_verify

    errors = run_verify(proposal, state).errors()
    if not errors:
        return None
    listed = _listed([str(e) + (f" ({e.help})" if e.help else "") for e in errors])
    if hint is not None and any(e.code.startswith("CL04") for e in errors):
        listed += "\n" + hint
    return (
        f"`{argument}` does not verify {start}, so the runtime would not run it; fix these"
        " (the `verify` tool gives the whole verdict):\n" + listed
    )


def _checked(proposal: dict[str, Any], state: dict[str, Any] | None) -> ir.ActionProposal:
    """`proposal` loaded; a `ProgramProblem` unless it verifies from `state` (`simulate` and
    `optimize` answer nothing for a proposal the runtime would not run)."""
    (loaded,) = _proposals(("proposal", proposal))
    if state is None:
        start, hint = "from an empty state", "(no `state` was given: give the state it starts from)"
    else:
        start, hint = "from `state`", None
    problem = _unverified(loaded, state, "proposal", start, hint)
    if problem is not None:
        raise ProgramProblem(problem)
    return loaded


def simulate(proposal: dict[str, Any], state: dict[str, Any] | None = None) -> dict[str, Any]:
    """The state a proposal's declared effects leave from `state` (no tool is called). A
    proposal that does not verify from that state (a cycle, a duplicate id, a key read
    before anything writes it...) is an error listing verify's errors: the runtime would not
    run it."""
    from carlang_runtime.verify import simulate as run_simulate

    return {"state": run_simulate(_checked(proposal, state), state)}


def optimize(proposal: dict[str, Any], state: dict[str, Any] | None = None) -> dict[str, Any]:
    """The proposal without phantom state dependencies (keys no action writes, which only
    narrow parallelism); nothing is reordered or removed. `state`: the state it will run
    from, where those keys are. A proposal that does not verify from that state is an error
    listing verify's errors (a dependency on a key that is nowhere is not phantom: the
    runtime would refuse the action)."""
    from carlang_runtime.verify import optimize as run_optimize

    data: dict[str, Any] = run_optimize(_checked(proposal, state)).model_dump(mode="json")
    return data


def equivalent(
    first: dict[str, Any], second: dict[str, Any], test_states: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Whether two proposals leave the same state from every test state (default: {} and
    {"x": 1, "y": 2}, which only sample). A proposal that does not verify from a test state
    is an error listing verify's errors."""
    from carlang_runtime.verify import equivalent as run_equivalent
    from carlang_runtime.verify.simulate import PROBE_STATES

    if test_states == []:
        raise ProgramProblem(
            "argument `test_states` is empty: give the states to compare from, or leave it"
            " out for the default ones"
        )
    states = PROBE_STATES if test_states is None else test_states
    loaded = _proposals(("first", first), ("second", second))
    problems = []
    hint = None if test_states is not None else "(give `test_states`: the states both start from)"
    for argument, proposal in zip(("first", "second"), loaded, strict=True):
        for index, state in enumerate(states):
            start = (
                f"from `test_states[{index}]`"
                if test_states is not None
                else f"from the default test state {json.dumps(state)}"
            )
            problem = _unverified(proposal, state, argument, start, hint)
            if problem is not None:
                problems.append(problem)
                break
    if problems:
        raise ProgramProblem("\n".join(problems))
    return {"equivalent": run_equivalent(loaded[0], loaded[1], states)}


def _decide(
    tool: str,
    params: dict[str, Any] | None,
    state: dict[str, Any] | None,
    scope: dict[str, Any] | None,
    program: str | None,
    path: str | None,
    capability: str | None = None,
) -> tuple[Any, list[Any], ir.Action, ir.Program, dict[str, str] | None]:
    """The policies' decision on one call, their traces, the call, the program, and (with a
    `capability` that does not allow the tool) the capability's deny, which comes first, as
    at run time: `{"policy": "capability:NAME", "reason": ...}`."""
    from carlang_runtime.capability import CapabilityCheck
    from carlang_runtime.policy import PolicySet, state_problem

    compiled = _program_or_error(program, path)
    action = _action(compiled, tool, params, path)
    problem = state_problem(compiled.state, state or {})
    if problem is not None:
        raise ProgramProblem(f"state: {problem}")
    refused = None
    if capability is not None:
        denied = CapabilityCheck(_capability(compiled, capability)).tool_problem(tool)
        if denied is not None:
            refused = {"policy": f"capability:{capability}", "reason": denied[1]}
    policies = PolicySet(compiled.policies, tools=compiled.tools)
    current = {**compiled.initial_state, **(state or {})}
    decision, traces = policies.trace(action, state=current, scope=scope or {})
    return decision, traces, action, compiled, refused


def explain(
    tool: str,
    params: dict[str, Any] | None = None,
    state: dict[str, Any] | None = None,
    scope: dict[str, Any] | None = None,
    program: str | None = None,
    path: str | None = None,
    capability: str | None = None,
) -> dict[str, Any]:
    """The full policy decision for one call of `tool`: every policy, matched or not, with
    the values that decided its condition (secret parameters and the program's `redact`
    paths shown as [REDACTED]). With a `capability` that does not allow the tool, the
    decision is deny by `capability:NAME` (the policies are still listed)."""
    from .explain import redacted, render_json

    decision, traces, action, compiled, refused = _decide(
        tool, params, state, scope, program, path, capability
    )
    text = redacted(render_json(action, decision, traces), compiled, action)
    document: dict[str, Any] = json.loads(text)
    if refused is not None:
        document["decision"] = "deny"
        document["reasons"] = [refused]
    return document


def policy_check(
    tool: str,
    params: dict[str, Any] | None = None,
    state: dict[str, Any] | None = None,
    scope: dict[str, Any] | None = None,
    program: str | None = None,
    path: str | None = None,
    capability: str | None = None,
) -> dict[str, Any]:
    """allow, deny or require_approval for one call of `tool`, with the deciding policies;
    with a `capability`, a tool it does not allow is a deny by `capability:NAME`."""
    decision, _, _, _, refused = _decide(tool, params, state, scope, program, path, capability)
    if refused is not None:
        return {"decision": "deny", "policies": [refused]}
    return {
        "decision": decision.effect.value,
        "policies": [{"policy": m.policy, "reason": m.reason} for m in decision.deciding],
    }


def rank(
    candidates: list[dict[str, Any]],
    state: dict[str, Any] | None = None,
    program: str | None = None,
    path: str | None = None,
) -> dict[str, Any]:
    """Score candidate proposals without running them and rank them, best first (with a
    program: its tools, policies, and the capabilities and budgets candidates name count;
    without one, those names are not checked, as `verify` does not). Each candidate's
    `findings` say what makes it invalid (verify's errors, a policy's certain deny) and what
    else verify or the policies say of it (warnings, approvals)."""
    from carlang_runtime.planner import Governance
    from carlang_runtime.planner import rank as run_rank

    tools: Any = None
    policies: Any = None
    governance = None
    loaded = _proposals(*((f"candidates[{i}]", c) for i, c in enumerate(candidates)))
    if program is not None or path is not None:
        compiled = _program_or_error(program, path)
        tools, policies = compiled.tools, compiled.policies
        governance = Governance.from_program(compiled)
    else:  # (the planner would find every name unknown: nothing declares it)
        loaded = [
            p.model_copy(update={"capability": None, "budget": None})
            if p.capability is not None or p.budget is not None
            else p
            for p in loaded
        ]
    ranked = run_rank(loaded, tools, state, policies=policies, governance=governance)
    fields = {"index", "proposal_id", "score", "valid", "error_count"}
    fields |= {"action_count", "tool_call_count"}
    return {
        "ranking": [
            {
                **{k: v for k, v in s.model_dump(mode="json").items() if k in fields},
                # (why it is invalid, or what it will meet: the rest explains the score)
                "findings": [f for f in s.findings if f["feature"] in ("validity", "policy")],
            }
            for s in ranked
        ]
    }


TOOLS = (check, verify, simulate, optimize, equivalent, explain, rank, policy_check)


def build_server(root: Path | None = None) -> Any:
    """The SDK's server (`mcp.server.lowlevel.Server`) with carlang's checks as its tools,
    reading programs under `root` (default: the working directory). It says it is carlang
    (carlang's version), declares only the tools capability (all it serves), and answers as
    the MCP specification asks: a call of a tool it does not have is a JSON-RPC -32602 error,
    a call's bad arguments a tool error (`isError`, one line each, for the model to correct),
    a bug in carlang a JSON-RPC -32603 error."""
    import inspect

    import mcp.types as types
    from carlang_runtime.suggest import did_you_mean
    from mcp.server.fastmcp import FastMCP
    from mcp.server.fastmcp.exceptions import ToolError
    from mcp.server.lowlevel import Server
    from mcp.shared.exceptions import McpError
    from pydantic import ValidationError

    from . import __version__

    signatures = {fn.__name__: inspect.signature(fn).parameters for fn in TOOLS}
    arguments_of = {name: list(parameters) for name, parameters in signatures.items()}
    # the arguments that are JSON objects or arrays (the others are strings), by kind
    structured_of = {
        name: {
            argument: "an array" if str(p.annotation).startswith("list") else "an object"
            for argument, p in parameters.items()
            if not str(p.annotation).startswith("str")
        }
        for name, parameters in signatures.items()
    }
    project = (root or Path.cwd()).resolve()

    # FastMCP (public API only) keeps the tools: each one's input schema from its signature,
    # its arguments checked, its result as structured content. It is not what is served:
    # its own server would declare prompts and resources too, and say the SDK's version.
    # (quiet: the SDK logs every request at INFO on standard error)
    tools = FastMCP("carlang", log_level="ERROR")
    for fn in TOOLS:
        tools.add_tool(
            _guard(fn, project),
            name=fn.__name__,
            description=(fn.__doc__ or "").strip(),
            annotations=types.ToolAnnotations(readOnlyHint=True, openWorldHint=False),
        )
    server: Any = Server("carlang", version=__version__)

    @server.list_tools()  # type: ignore[untyped-decorator]
    async def list_tools() -> list[types.Tool]:
        return await tools.list_tools()

    def tool_error(message: str) -> types.ServerResult:
        text = types.TextContent(type="text", text=message)
        return types.ServerResult(types.CallToolResult(content=[text], isError=True))

    async def call_tool(request: types.CallToolRequest) -> types.ServerResult:
        name, arguments = request.params.name, request.params.arguments or {}
        known = arguments_of.get(name)
        if known is None:  # a protocol error (the spec's "unknown tools"), not a tool's
            hint = did_you_mean(name, list(arguments_of), "`")
            message = f"no tool is called `{name}`" + (f" ({hint})" if hint else "")
            raise McpError(types.ErrorData(code=types.INVALID_PARAMS, message=message))
        problems = []
        for argument in arguments:
            if argument not in known:  # (ignored, a misspelt `params` would decide a call
                hint = did_you_mean(argument, known, "`")  # without its parameters)
                problems.append(
                    f"tool `{name}` has no argument `{argument}`"
                    + (f" ({hint})" if hint else f" (its arguments: {', '.join(known)})")
                )
        if problems:
            return tool_error("\n".join(problems))
        arguments, problems = _decoded(arguments, structured_of[name])
        if problems:
            return tool_error("\n".join(problems))
        try:
            result = await tools.call_tool(name, arguments)
        except ToolError as exc:
            cause = exc.__cause__  # (the SDK wraps what the call raised)
            if isinstance(cause, ValidationError):
                return tool_error(_argument_problems(cause))
            if isinstance(cause, ToolError):
                return tool_error(str(cause))
            message = (
                f"internal error: {type(cause or exc).__name__}: {cause or exc} (this is a bug"
                " in carlang; please report it)"
            )
            raise McpError(types.ErrorData(code=types.INTERNAL_ERROR, message=message)) from None
        return types.ServerResult(_call_result(result))

    server.request_handlers[types.CallToolRequest] = call_tool
    return server


def _decoded(
    arguments: dict[str, Any], structured: dict[str, str]
) -> tuple[dict[str, Any], list[str]]:
    """`arguments` with the JSON text given for an object or an array decoded (models often
    send a proposal so), and a line per such text that cannot be read. The SDK would decode
    it with Python's `json`, which reads NaN and Infinity (answered back as text that is not
    JSON) and overflows the stack on deep nesting (an internal error): carlang's reader
    refuses both, and nesting past 128 levels, as `serve_stdio` refuses them in a request.
    (`structured`: the arguments that are objects or arrays, with what each is.)"""
    from carlang_runtime.jsontext import JsonTextError, parse_json

    decoded = dict(arguments)
    problems = []
    for argument, value in arguments.items():
        if argument not in structured or not isinstance(value, str):
            continue
        try:
            parsed = parse_json(value)
        except JsonTextError as exc:
            if value.lstrip()[:1] in ("{", "["):  # (else: "expected an object, got a string")
                problems.append(
                    f"argument `{argument}`: expected {structured[argument]}, got JSON text"
                    f" that cannot be read ({exc})"
                )
            continue
        if isinstance(parsed, dict | list):
            decoded[argument] = parsed
    return decoded, problems


def _call_result(result: Any) -> Any:
    """A `CallToolResult` of what FastMCP's `call_tool` returned: (content, structured
    content) for a tool with an output schema, as every carlang check has; else content."""
    import mcp.types as types

    if isinstance(result, tuple):
        content, structured = result
        return types.CallToolResult(content=list(content), structuredContent=structured)
    if isinstance(result, dict):
        text = types.TextContent(type="text", text=json.dumps(result, indent=2))
        return types.CallToolResult(content=[text], structuredContent=result)
    return types.CallToolResult(content=list(result))


def served_methods(server: Any) -> frozenset[str]:
    """The JSON-RPC request methods `server` (from `build_server`) answers: `initialize`
    (its session answers that) and one per request handler. `serve_stdio` answers any other
    with -32601 itself: the SDK (1.x) answers a method it does not know with -32602 invalid
    params, as if the method existed (modelcontextprotocol/python-sdk#1561)."""
    return frozenset(_request_models(server))


def _request_models(server: Any) -> dict[str, Any]:
    """The request model (`CallToolRequest`...) of each method `server` answers."""
    import typing

    import mcp.types as types

    models: dict[str, Any] = {"initialize": types.InitializeRequest}
    for request in server.request_handlers:
        for method in typing.get_args(request.model_fields["method"].annotation):
            models[method] = request
    return models


def _params_problem(model: Any, method: str, params: Any) -> str | None:
    """What is wrong with a request's `params` for `model` (one of `_request_models`), as
    -32602's message says it (`invalid params for tools/call: ` and "`params.name` is
    missing"; the SDK said only "Invalid request parameters"); None when they are valid."""
    from pydantic import ValidationError

    try:
        model.model_validate({"method": method, "params": params})
    except ValidationError as error:
        lines: list[str] = []
        for item in error.errors(include_url=False):
            location = [part for part in item.get("loc") or () if part != "method"]
            where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in location[1:])
            field = f"`params{where}`"
            kind = item.get("type", "")
            if kind == "missing" or (kind == "model_type" and item.get("input") is None):
                line = f"{field} is missing"
            elif kind in _EXPECTED:
                line = f"{field}: expected {_EXPECTED[kind]}, got {_json_kind(item.get('input'))}"
            else:
                message = str(item.get("msg", "is not valid"))
                line = f"{field}: {message[:1].lower()}{message[1:]}"
            if line not in lines:
                lines.append(line)
        return f"invalid params for {method}: " + "; ".join(lines or ["not valid"])
    return None


def _argument_problems(error: Any) -> str:
    """A pydantic `ValidationError` of a tool's arguments, one line per problem: which
    argument, what is wrong (no pydantic wording, no links)."""
    lines: list[str] = []
    for item in error.errors(include_url=False):
        location = item.get("loc") or ()
        where = "".join(
            f"[{part}]" if isinstance(part, int) else f".{part}" for part in location[1:]
        )
        argument = f"`{location[0]}{where}`" if location else "the arguments"
        kind = item.get("type", "")
        if kind == "missing":
            line = f"argument {argument} is missing"
        elif kind in _EXPECTED:
            got = _json_kind(item.get("input"))
            line = f"argument {argument}: expected {_EXPECTED[kind]}, got {got}"
        else:
            message = str(item.get("msg", "is not valid"))
            line = f"argument {argument}: {message[:1].lower()}{message[1:]}"
        if line not in lines:
            lines.append(line)
    return "\n".join(lines) or "the arguments are not valid"


_EXPECTED = {
    "string_type": "a string",
    "dict_type": "an object",
    "list_type": "an array",
    "model_type": "an object",
    "model_attributes_type": "an object",
}


def _json_kind(value: Any) -> str:
    """What a JSON value is, in JSON's words."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _guard(fn: Any, root: Path) -> Any:
    """`fn` reading programs under `root`; bad input becomes a tool error with carlang's
    message, not a traceback."""
    import functools

    from carlang_runtime.errors import CarlangRuntimeError
    from mcp.server.fastmcp.exceptions import ToolError

    @functools.wraps(fn)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        token = _ROOT.set(root)
        try:
            return fn(*args, **kwargs)
        except (ProgramProblem, CarlangRuntimeError, ValueError) as exc:
            raise ToolError(str(exc)) from exc
        finally:
            _ROOT.reset(token)

    return guarded


def serve(root: Path | None = None) -> None:
    """Serve carlang's checks over standard input and output until the client hangs up."""
    import anyio

    server = build_server(root)
    if not anyio.run(serve_stdio, server):
        from .cli.console import silence_stdout

        silence_stdout()  # (the interpreter's last flush cannot fail again)


async def serve_stdio(server: Any) -> bool:
    """Run `server` (from `build_server`) on standard input and output, a JSON-RPC message a
    line. A line that is not JSON is answered with a -32700 parse error, one that is not a
    JSON-RPC message with -32600 (neither reaches the SDK, which would only log it), and so is
    a request whose id is not a string or an integer (the SDK would take it for a
    notification, and never answer); a request for a method the server does not serve with
    -32601, and one other than `ping` before `initialize` with -32600 (the SDK answers both
    with -32602 invalid params); at the end of input the requests already read are answered,
    then the server ends. False when the client stopped reading the answers (standard output
    closed)."""
    import sys

    import anyio
    from carlang_runtime.jsontext import JsonTextError, parse_json
    from carlang_runtime.mcp.proxy import parse_error, request_id_problem
    from mcp.shared.message import SessionMessage
    from mcp.types import JSONRPCError, JSONRPCMessage, JSONRPCRequest, JSONRPCResponse
    from pydantic import ValidationError

    out = sys.stdout.buffer
    methods = _request_models(server)
    to_server, incoming = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    outgoing, from_server = anyio.create_memory_object_stream[SessionMessage](0)
    pending: dict[str | int, int] = {}  # ids of requests not answered yet (how many)
    answered = anyio.Event()
    reading = True  # (False: the client closed standard output)
    stop = anyio.CancelScope()

    def write(text: str) -> None:
        nonlocal reading
        if not reading:
            return
        try:
            out.write(text.encode("utf-8") + b"\n")
            out.flush()
        except BrokenPipeError:  # the client went away: nothing is left to do
            reading = False
            stop.cancel()

    def refuse(request_id: Any, code: int, message: str) -> None:
        error = {"code": code, "message": message}
        answer = {"jsonrpc": "2.0", "id": request_id, "error": error}
        write(json.dumps(answer, separators=(",", ":")))

    async def read() -> None:
        nonlocal answered
        initialized = False  # (an initialize request was passed on)
        stdin = anyio.wrap_file(sys.stdin.buffer)
        async with to_server:
            async for raw in stdin:
                if not raw.strip():
                    continue
                try:
                    data = parse_json(raw.decode("utf-8"))
                except UnicodeDecodeError:
                    refuse(None, -32700, "parse error: the line is not UTF-8")
                    continue
                except JsonTextError as exc:
                    refuse(*parse_error(raw, exc))
                    continue
                if isinstance(data, dict) and "method" in data and "id" in data:
                    # (the SDK reads a request whose id is no string or integer as a
                    # notification, and answers nothing)
                    bad_id = request_id_problem(data["id"])
                    if bad_id is not None:
                        refuse(None, -32600, bad_id)
                        continue
                try:
                    message = JSONRPCMessage.model_validate(data)
                except ValidationError:
                    given = data.get("id") if isinstance(data, dict) else None
                    valid_id = isinstance(given, str | int) and not isinstance(given, bool)
                    refuse(
                        given if valid_id else None,
                        -32600,
                        "invalid request: not a JSON-RPC 2.0 request, notification or response",
                    )
                    continue
                if isinstance(message.root, JSONRPCRequest):
                    method = message.root.method
                    if method not in methods:
                        refuse(message.root.id, -32601, f"method not found: {method}")
                        continue
                    problem = _params_problem(methods[method], method, message.root.params)
                    if problem is not None:
                        refuse(message.root.id, -32602, problem)
                        continue
                    if not initialized and method not in ("initialize", "ping"):
                        early = f"{method} before initialize: send initialize first (MCP lifecycle)"
                        refuse(message.root.id, -32600, early)
                        continue
                    initialized = initialized or method == "initialize"
                    pending[message.root.id] = pending.get(message.root.id, 0) + 1
                await to_server.send(SessionMessage(message))
            while pending:  # the end of input: answer what was asked, then stop
                answered = anyio.Event()
                await answered.wait()

    async def write_answers() -> None:
        async with from_server:
            async for sent in from_server:
                message = sent.message.root
                write(message.model_dump_json(by_alias=True, exclude_none=True))
                if isinstance(message, JSONRPCResponse | JSONRPCError):
                    left = pending.pop(message.id, 0) - 1
                    if left > 0:
                        pending[message.id] = left
                    answered.set()

    with stop:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(read)
            tasks.start_soon(write_answers)
            await server.run(incoming, outgoing, server.create_initialization_options())
    return reading
