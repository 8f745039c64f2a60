"""All diagnostic codes: the runtime's verification codes plus the compiler's own.

One table, so `carlang codes` and `docs/codes.md` list every code a user can meet.
"""

from __future__ import annotations

import re
from pathlib import Path

from carlang_runtime.verify.codes import RUNTIME_CODES, Code

__all__ = [
    "COMPILER_CODES",
    "TEST_PROBLEM",
    "all_codes",
    "codes_markdown",
    "explain_code",
    "examples_from_goldens",
]

#: A `test` block's own problem (an unknown name, a bad expectation, a name used twice): named
#: here, where `carlang check` finds it without importing the test machinery.
TEST_PROBLEM = "CL0701"

COMPILER_CODES: tuple[Code, ...] = (
    # syntax
    Code(
        "CL0101",
        "unexpected-character",
        "syntax",
        "error",
        "a character that cannot start anything here",
        "carlang",
    ),
    Code(
        "CL0102",
        "unexpected-token",
        "syntax",
        "error",
        "a word or symbol that does not fit here",
        "carlang",
    ),
    Code(
        "CL0103",
        "unexpected-end-of-file",
        "syntax",
        "error",
        "the file ends inside a declaration",
        "carlang",
    ),
    Code(
        "CL0104",
        "invalid-literal",
        "syntax",
        "error",
        "a string with a bad escape, or a number JSON cannot hold",
        "carlang",
    ),
    Code("CL0105", "invalid-encoding", "syntax", "error", "the file is not UTF-8 text", "carlang"),
    Code(
        "CL0106",
        "nested-too-deeply",
        "syntax",
        "error",
        "brackets nested more than 128 levels deep (CAR's JSON limit)",
        "carlang",
    ),
    Code(
        "CL0107",
        "invalid-pragma",
        "syntax",
        "warning",
        "a comment that starts like a pragma (`# carlang:`) but is not one carlang reads "
        "(`# carlang: alow CL0207`, `# carlang: allow CL207`), or that names a code there is "
        "not or an error: what it was meant to accept is still reported",
        "carlang",
    ),
    Code(
        "CL0108",
        "text-direction-codepoint",
        "syntax",
        "warning",
        "a Unicode bidirectional control character (U+202A-U+202E, U+2066-U+2069, U+200E, "
        "U+200F, U+061C) written as itself, which can make a line display otherwise than it is "
        'compiled ("Trojan Source", CVE-2021-42574): an error in a policy condition or outside '
        "strings and comments, a warning in a comment or a string (write it as an escape: "
        "`\\u202e`)",
        "carlang",
    ),
    # names and declarations
    Code(
        "CL0201",
        "duplicate-declaration",
        "names",
        "error",
        "two declarations of one kind, or a capability and a budget (`under` names either), "
        "share a name",
        "carlang",
    ),
    Code(
        "CL0202",
        "unknown-reference",
        "names",
        "error",
        "a name that refers to nothing declared (capability, budget, proposal, action)",
        "carlang",
    ),
    Code(
        "CL0203",
        "unknown-parameter",
        "names",
        "error",
        "an argument the tool's signature does not have",
        "carlang",
    ),
    Code("CL0204", "unknown-type", "types", "error", "a type name that is not a type", "carlang"),
    Code(
        "CL0205",
        "value-type",
        "types",
        "error",
        "a value that does not have the type declared for it",
        "carlang",
    ),
    Code(
        "CL0206",
        "undeclared-state-key",
        "names",
        "warning",
        "a state key that no `state` entry declares",
        "carlang",
    ),
    Code(
        "CL0207",
        "unused-declaration",
        "names",
        "warning",
        "a tool, capability or budget that nothing uses",
        "carlang",
    ),
    Code(
        "CL0208",
        "invalid-name",
        "names",
        "error",
        "a name of the wrong shape here (a dotted key or a pattern where a plain name goes)",
        "carlang",
    ),
    Code(
        "CL0209",
        "import-not-found",
        "imports",
        "error",
        "an imported file that cannot be read",
        "carlang",
    ),
    Code(
        "CL0210",
        "import-cycle",
        "imports",
        "error",
        "files that import each other; the whole chain is shown",
        "carlang",
    ),
    Code(
        "CL0211",
        "import-outside-root",
        "imports",
        "error",
        "an import that leaves the project root",
        "carlang",
    ),
    Code(
        "CL0212",
        "duplicate-setting",
        "names",
        "error",
        "a setting given twice in one declaration",
        "carlang",
    ),
    Code(
        "CL0213",
        "invalid-duration",
        "types",
        "error",
        "a duration that is not allowed here (zero, or not whole seconds)",
        "carlang",
    ),
    Code(
        "CL0214",
        "column-outside-test",
        "names",
        "error",
        "a `$column` reference outside a test table",
        "carlang",
    ),
    Code("CL0215", "duplicate-key", "names", "error", "a key or argument written twice", "carlang"),
    Code(
        "CL0216",
        "invalid-under",
        "names",
        "error",
        "the `under` clause names two capabilities or two budgets",
        "carlang",
    ),
    Code(
        "CL0217",
        "invalid-value",
        "types",
        "error",
        "a value outside what the setting allows",
        "carlang",
    ),
    Code(
        "CL0218",
        "unknown-setting",
        "names",
        "error",
        "a plan `set` that names no planner setting",
        "carlang",
    ),
    Code(
        "CL0219",
        "tool-schema",
        "types",
        "error",
        "a tool `schema` that is not a usable object JSON Schema (or cannot be read)",
        "carlang",
    ),
    Code(
        "CL0220",
        "mcp-server",
        "names",
        "error",
        "an `mcp_server` that cannot be started or reached as written (a `url` that is not"
        " local, or that holds `${...}`: a url takes no reference from the environment)",
        "carlang",
    ),
    Code(
        "CL0221",
        "mcp-binding",
        "names",
        "error",
        "`remote` on a tool that is not bound to an MCP server",
        "carlang",
    ),
    Code(
        "CL0222",
        "bad-redaction",
        "names",
        "error",
        "a `redact` path that is not a parameter path (`params.NAME`, `*` for every item)",
        "carlang",
    ),
    Code(
        "CL0223",
        "capability-allows-unknown",
        "names",
        "warning",
        "a capability allows a tool or a state key that nothing declares (a misspelling?)",
        "carlang",
    ),
    Code(
        "CL0224",
        "mcp-tool-twice",
        "names",
        "warning",
        "two tools bound to the same tool of an MCP server: a policy or capability that names one"
        " does not hold for the other's calls",
        "carlang",
    ),
    Code(
        "CL0225",
        "mcp-header",
        "names",
        "error",
        "an `mcp_server` header that cannot be sent as written: `headers` on a server started by"
        " a `command`, a name that is not an HTTP token or that carlang sends itself"
        " (`Content-Type`, `Accept`, `Mcp-Session-Id`, `MCP-Protocol-Version`, ...), a name"
        " given twice (in any case), `Authorization` beside a url's `user:password@`, a value"
        " holding a line break or NUL (header injection)",
        "carlang",
    ),
    Code(
        "CL0226",
        "mcp-header-secret",
        "names",
        "warning",
        "an `mcp_server` header whose value is a credential written out in the program"
        ' (`"Bearer sk-..."`), or a url holding one (`user:password@`, `?api_key=...`): take it'
        ' from the environment in a header, `"Bearer ${TOKEN}"`',
        "carlang",
    ),
    Code(
        "CL0227",
        "schema-default",
        "names",
        "warning",
        "a default in a tool's JSON Schema that its parameter's own schema refuses (an MCP"
        ' server\'s `{"type": "integer", "default": "10"}`): a call that leaves the parameter'
        " out gets the default, and is refused",
        "carlang",
    ),
    Code(
        "CL0228",
        "mcp-reference",
        "names",
        "warning",
        "a `$` in an `mcp_server`'s `headers`, `env` or `url` that looks like a variable of the"
        " environment but is not a reference carlang takes (`$TOKEN`, `${TOKEN`, `${ TOKEN }`,"
        " `${}`): it is sent as written; write `${TOKEN}`. In `command` and `args`, which take"
        " no variable (no shell runs the command), any `${TOKEN}` or `$TOKEN`: pass it in"
        " `env`",
        "carlang",
    ),
    Code(
        "CL0229",
        "mcp-relative-path",
        "names",
        "warning",
        "a relative path in the `command` or `args` of an `mcp_server` without `cwd`"
        ' (`args ["server.py"]`): the server reads it from the directory it starts in, which'
        " is wherever carlang runs (for `carlang mcp proxy`, its client's choice, often `/`);"
        ' add `cwd "."` for the file\'s folder',
        "carlang",
    ),
    Code(
        "CL0230",
        "model-name-clash",
        "names",
        "warning",
        "two tools a model would see under one name (a `.` is sent as `__`: `fs.echo` and"
        " `fs__echo`): its call could not say which it means, and `carlang agent` and"
        " `carlang export tools` refuse the program",
        "carlang",
    ),
    # policies
    Code(
        "CL0501",
        "cel-syntax",
        "policies",
        "error",
        "a policy condition that is not valid CEL",
        "carlang",
    ),
    Code(
        "CL0502",
        "policy-unknown-tool",
        "policies",
        "error",
        "a policy or rule that targets no declared tool or parameter (it could never match)",
        "carlang",
    ),
    Code(
        "CL0503",
        "invalid-regex",
        "policies",
        "error",
        "a regular expression that does not compile (RE2 syntax)",
        "carlang",
    ),
    Code(
        "CL0504",
        "invalid-rule",
        "policies",
        "error",
        "a rule whose target or operands are malformed",
        "carlang",
    ),
    Code(
        "CL0505",
        "cel-unknown-name",
        "policies",
        "error",
        "a condition reads a variable that does not exist (action, params, state, scope, "
        "history, now)",
        "carlang",
    ),
    Code(
        "CL0506",
        "cel-unknown-field",
        "policies",
        "error",
        "a condition reads a field the targeted tools' schemas do not have (`params.ulr`)",
        "carlang",
    ),
    Code(
        "CL0507",
        "cel-partial-field",
        "policies",
        "warning",
        "a field only some targeted tools have (with no tool list: every action, state "
        "writes included), or a scope field (a run may have no tenant), read without a has() "
        "guard or a test of action.tool: the condition fails, and the policy fails closed, "
        "where it is missing",
        "carlang",
    ),
    Code(
        "CL0508",
        "cel-type-mismatch",
        "policies",
        "error",
        "an operation on values of types it does not take (`size(params.port)` for an "
        "integer port: an error at run time), or a comparison that never holds "
        '(`params.port == "80"`: always false, so a `deny` never fires)',
        "carlang",
    ),
    Code(
        "CL0509",
        "cel-unknown-function",
        "policies",
        "error",
        "a function that does not exist, or a call with the wrong number of arguments",
        "carlang",
    ),
    Code(
        "CL0510",
        "cel-constant",
        "policies",
        "warning",
        "a condition, or an operand of && or ||, that is always true or always false (an "
        "error when it always fails); an error too for any part of a condition that reads no "
        'variable and always fails (`now > timestamp("2026-12-32T00:00:00Z")`)',
        "carlang",
    ),
    Code(
        "CL0511",
        "cel-too-expensive",
        "policies",
        "error",
        "a condition whose estimated evaluation cost is above the limit",
        "carlang",
    ),
    # plans against policies
    Code(
        "CL0512",
        "impossible-rule-value",
        "policies",
        "warning",
        "a value `allow_tool_param` lists or `deny_tool_param ... equals` names that the "
        "parameter cannot take (outside its enum, of another type): the entry does nothing (an "
        "error when no listed value is possible: every call of the tool is denied)",
        "carlang",
    ),
    Code(
        "CL0513",
        "invalid-time-zone",
        "policies",
        "error",
        'a time zone a timestamp accessor names (`now.getHours("Europe/Paris")`) that does '
        "not exist: every evaluation of the condition would fail",
        "carlang",
    ),
    Code(
        "CL0520",
        "policy-denies-action",
        "plan_policies",
        "error",
        "an action of a proposal that a policy will deny (decided by the action alone, or a "
        "trace rule the actions before it do not meet)",
        "carlang",
    ),
    Code(
        "CL0521",
        "policy-requires-approval",
        "plan_policies",
        "warning",
        "an action of a proposal that will wait for a human approval",
        "carlang",
    ),
    Code(
        "CL0522",
        "policy-may-deny",
        "plan_policies",
        "warning",
        "an action a policy is predicted to deny from the state the plan declares",
        "carlang",
    ),
    Code(
        "CL0523",
        "policy-shadowed",
        "strict",
        "warning",
        "a policy that never changes a decision: another with the same effect on the same "
        "tools matches whenever it does (`check --strict`)",
        "carlang",
    ),
    Code(
        "CL0524",
        "policy-untested",
        "strict",
        "warning",
        "a policy no test exercises, or whose true or false outcome no test reaches "
        "(`check --strict`)",
        "carlang",
    ),
    Code(
        "CL0525",
        "unused-allowance",
        "strict",
        "warning",
        "a `# carlang: allow CODE` pragma or a `carlang.toml` `accept` entry that no longer "
        "accepts any warning (`check --strict`)",
        "carlang",
    ),
    Code(
        "CL0526",
        "shadow-never-fired",
        "strict",
        "warning",
        "a shadow policy that no test makes fire: promoting it would change nothing the tests "
        "show (`check --strict`)",
        "carlang",
    ),
    # tests
    Code(
        "CL0701",
        "invalid-test",
        "tests",
        "error",
        "a test that names what the program does not have, or lacks a subject or expectation",
        "carlang",
    ),
    Code(
        "CL0702",
        "unused-column",
        "tests",
        "warning",
        "a column of a test's `where` table that no `$column` uses (a column called `name` "
        "names the rows instead)",
        "carlang",
    ),
    Code(
        "CL0703",
        "test-reads-the-clock",
        "tests",
        "warning",
        "an action test without `now` whose action a policy reading `now` judges: it passes "
        "or fails by the time of day the tests run",
        "carlang",
    ),
)


def all_codes() -> list[Code]:
    """Every code, sorted."""
    return sorted((*RUNTIME_CODES, *COMPILER_CODES), key=lambda c: c.code)


def codes_markdown() -> str:
    """The Markdown page documenting every code (docs/codes.md)."""
    lines = [
        "# Diagnostic codes",
        "",
        "Generated by `carlang codes --markdown`; a test keeps this page current.",
        "`origin` says whether car-runtime reports the same finding (`car`) or only carlang does.",
        "",
        "| code | name | check | severity | origin | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for c in all_codes():
        lines.append(
            f"| {c.code} | {c.name} | {c.check} | {c.severity} | {c.origin} | {c.summary} |"
        )
    return "\n".join(lines) + "\n"


#: Where `carlang codes CODE` finds each code's example (regenerated from the golden
#: diagnostics by `python -m carlang.codes`; a test keeps it current).
EXAMPLES_PATH = Path(__file__).resolve().parent / "code_examples.json"


def examples_from_goldens(golden: Path) -> dict[str, str]:
    """For each code, the first rendered diagnostic with it in the golden `.diag` files (of
    `golden`, then of the `strict` folder beside it: what only `check --strict` finds): the
    message, the source line and the caret, as `carlang check` prints them."""
    found: dict[str, str] = {}
    diags = [*sorted(golden.glob("*.diag")), *sorted((golden.parent / "strict").glob("*.diag"))]
    for diag in diags:
        for block in diag.read_text(encoding="utf-8").split("\n\n"):
            match = re.search(r": (?:error|warning|info)\[(CL\d{4})\]", block.split("\n", 1)[0])
            if match is not None and match.group(1) not in found:
                found[match.group(1)] = block.strip("\n")
    return dict(sorted(found.items()))


def explain_code(code: str) -> str | None:
    """The long explanation of one code (`carlang codes CL0521`), or None if there is none."""
    import json

    known = {c.code: c for c in all_codes()}
    entry = known.get(code.upper())
    if entry is None:
        return None
    lines = [
        f"{entry.code} {entry.name} ({entry.severity}, check `{entry.check}`)",
        "",
        f"  {entry.summary}.",
        "",
        "  "
        + (
            "car-runtime's verifier reports it too (same action, severity and wording)."
            if entry.origin == "car"
            else "Only carlang reports it."
        ),
    ]
    if entry.severity == "warning":
        lines += [
            "  A warning fails `carlang check --strict`; where it is expected, accept it with",
            f'  `# carlang: allow {entry.code}` on its line, or `accept = ["{entry.code}"]` in',
            "  carlang.toml.",
        ]
    examples = json.loads(EXAMPLES_PATH.read_text(encoding="utf-8"))
    if entry.code in examples:
        lines += ["", "Example:", "", *(f"  {line}" for line in examples[entry.code].splitlines())]
    else:  # (a file that is not UTF-8; a JSON proposal's own findings, no program's)
        lines += ["", "No example is on record."]
    return "\n".join(lines)


if __name__ == "__main__":
    import json
    import sys

    golden = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("tests/golden/diagnostics")
    EXAMPLES_PATH.write_text(json.dumps(examples_from_goldens(golden), indent=1) + "\n")
    print(f"wrote {EXAMPLES_PATH}")
