"""`carlang replay` on logs produced by real runs: exactly the changed decisions, every change
category, trace rules (history), tenants and sessions, unjudgeable runs, every format."""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from contextlib import closing
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from carlang_runtime import ir
from carlang_runtime.engine import AutoApprove, EventLog, JsonlSink, Runtime, SqliteSink
from carlang_runtime.replay import read_runs
from typer.testing import CliRunner

from carlang.cli import app
from tests.conftest import ROOT
from tests.helpers import budget_skipped_log, compile_diagnostics

FINANCE = ROOT / "examples" / "finance" / "finance.car"
TOOLS = str(ROOT / "tests" / "replay" / "finance_tools.py") + ":TOOLS"
SARIF_SCHEMA = ROOT / "tests" / "data" / "schemas" / "sarif-2.1.0-subset.schema.json"


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def finance_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two real runs of the finance example: books open (pay_b asks approval, approved), and
    books closed (every action denied by require_state)."""
    folder = tmp_path_factory.mktemp("finance")
    log = folder / "runs.jsonl"
    closed = folder / "closed.json"
    closed.write_text('{"books_open": false}')
    code, out = cli("run", str(FINANCE), "--tools", TOOLS, "--events", str(log), "--auto-approve")
    assert code == 0, out
    code, out = cli(
        "run",
        str(FINANCE),
        "--tools",
        TOOLS,
        "--events",
        str(log),
        "--state",
        str(closed),
        "--force",
    )
    assert code == 1, out
    return log


def candidate(tmp_path: Path, old: str, new: str) -> Path:
    text = FINANCE.read_text()
    assert old in text
    path = tmp_path / "finance.car"
    path.write_text(text.replace(old, new))
    return path


def changes(
    log: Path, program: Path, *extra: str
) -> tuple[int, set[tuple[str, str]], dict[str, Any]]:
    args = ["replay", str(log), "--program", str(program), "--format", "json", *extra]
    result = CliRunner().invoke(app, args)
    code = result.exit_code
    assert code in (0, 1), result.output
    report = json.loads(result.stdout)  # (a warning goes to stderr)
    found = set()
    for category in report["categories"]:
        assert category["count"] == len(category["examples"]) or category["count"] > 5
        for example in category["examples"]:
            found.add((example["action_id"], category["category"]))
    return code, found, report


def test_the_unchanged_program_changes_nothing(finance_log: Path) -> None:
    code, found, report = changes(finance_log, FINANCE)
    assert code == 0 and found == set()
    # Books open: 5 decided; books closed: check_a denied, the rest skipped by its abort.
    assert report["judged_runs"] == 2
    assert report["decisions"] == 6
    assert report["decisions"] == report["unchanged"] > 0


def test_a_tighter_deny_gives_allow_to_deny_and_approval_to_deny(
    finance_log: Path, tmp_path: Path
) -> None:
    program = candidate(
        tmp_path,
        'deny pay when params.currency != "EUR" && params.amount_cents > 100000',
        "deny pay when params.amount_cents > 100000",
    )
    code, found, report = changes(finance_log, program)
    assert code == 1
    assert found == {("pay_a", "allow -> deny"), ("pay_b", "require_approval -> deny")}
    (deny,) = [c for c in report["categories"] if c["category"] == "allow -> deny"]
    assert deny["by_policy"] == {"currency_match": 1} and deny["by_tool"] == {"pay": 1}
    after = deny["examples"][0]["after"]
    assert after["loc"]["line"] == 38 and after["loc"]["file"].endswith("finance.car")
    assert after["explanation"] == "params.amount_cents > 100000 -> true"


def test_a_lower_approval_threshold_gives_allow_to_require_approval(
    finance_log: Path, tmp_path: Path
) -> None:
    program = candidate(tmp_path, "params.amount_cents > 500000", "params.amount_cents > 100000")
    code, found, _ = changes(finance_log, program, "--fail-on", "deny")
    assert found == {("pay_a", "allow -> require_approval")}
    assert code == 0  # --fail-on deny: a new approval is not a failure
    code, _, _ = changes(finance_log, program, "--fail-on", "approval")
    assert code == 1


def test_dropping_a_rule_gives_deny_to_allow_at_the_recorded_policy(
    finance_log: Path, tmp_path: Path
) -> None:
    program = candidate(
        tmp_path,
        'require_state books_open == true message "payments only while the books are open"',
        "",
    )
    code, found, report = changes(finance_log, program)
    assert code == 1
    # The closed-books run: check_a was denied (and its abort skipped the rest).
    assert found == {("check_a", "deny -> allow")}
    (relaxed,) = report["categories"]
    assert relaxed["by_policy"] == {"require_state:books_open": relaxed["count"]}


def test_baseline_compares_two_programs_on_the_same_log(finance_log: Path, tmp_path: Path) -> None:
    program = candidate(tmp_path, "params.amount_cents > 500000", "params.amount_cents > 100000")
    code, out = cli(
        "replay",
        str(finance_log),
        "--program",
        str(FINANCE),
        "--baseline",
        str(program),
        "--format",
        "json",
    )
    report = json.loads(out)
    assert report["baseline"] == "finance.car"
    found = {(e["action_id"], c["category"]) for c in report["categories"] for e in c["examples"]}
    assert found == {("pay_a", "require_approval -> allow")}
    assert code == 1


def test_every_format(finance_log: Path, tmp_path: Path) -> None:
    program = candidate(tmp_path, "params.amount_cents > 500000", "params.amount_cents > 100000")
    code, text = cli("replay", str(finance_log), "--program", str(program))
    assert code == 1
    assert "allow -> require_approval: 1 of" in text
    assert "by large_payment at" in text and "because params.amount_cents > 100000 -> true" in text
    _, sarif = cli("replay", str(finance_log), "--program", str(program), "--format", "sarif")
    document = json.loads(sarif)
    jsonschema.validate(document, json.loads(SARIF_SCHEMA.read_text()))
    (result,) = document["runs"][0]["results"]
    assert result["locations"][0]["physicalLocation"]["region"]["startLine"] == 36
    # (of the calls of the tool it changes: "1 of 6 recorded calls" counted every tool's)
    assert result["message"]["text"].startswith(
        "policy large_payment would have asked approval for 1 of 2 recorded calls of pay"
    ), result["message"]["text"]
    _, junit = cli("replay", str(finance_log), "--program", str(program), "--format", "junit")
    valid_junit(junit)
    suite = ET.fromstring(junit).find("testsuite")
    assert suite is not None and suite.get("failures") == "1"
    # a test case per tool judged, as the docs say, not only per tool with changes
    assert [(c.get("name"), c.find("failure") is not None) for c in suite] == [
        ("decisions of (no tool) unchanged", False),
        ("decisions of lookup_invoice unchanged", False),
        ("decisions of pay unchanged", True),
    ]
    _, table = cli("replay", str(finance_log), "--program", str(program), "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(table)))
    assert [(r["action_id"], r["before"], r["after"], r["policy"]) for r in rows] == [
        ("pay_a", "allow", "require_approval", "large_payment")
    ]


def valid_junit(text: str) -> None:
    """Check JUnit XML with the validators `carlang test --format junit`'s tests use: Jenkins'
    junit-10.xsd, and (when no case is skipped, which its layout leaves out) the JSON schema
    of the layout CI servers read."""
    from tests.test_cli_test import SCHEMAS, _as_data, junit_validator

    junit_validator().validate(text)
    tree = ET.fromstring(text)
    if tree.find(".//skipped") is None:
        schema = json.loads((SCHEMAS / "junit.schema.json").read_text())
        jsonschema.validate(_as_data(tree), schema)


def test_filters(finance_log: Path, tmp_path: Path) -> None:
    program = candidate(tmp_path, "params.amount_cents > 500000", "params.amount_cents > 100000")
    _, found, _ = changes(finance_log, program, "--tool", "lookup_invoice")
    assert found == set()
    _, found, _ = changes(finance_log, program, "--since", "2999-01-01T00:00:00Z")
    assert found == set()
    _, found, _ = changes(finance_log, program, "--until", "2999-01-01T00:00:00Z")
    assert found == {("pay_a", "allow -> require_approval")}
    code, out = cli("replay", str(finance_log), "--program", str(program), "--run", "nope")
    assert code == 2 and "no run nope" in out and "(the runs: " in out
    recorded = read_runs([finance_log])[0].run_id
    typo = recorded[:-1] + ("0" if recorded[-1] != "0" else "1")
    code, out = cli(
        "replay", str(finance_log), "--program", str(program), "--run", recorded, "--run", typo
    )
    assert code == 2 and f"no run {typo} in" in out and f"did you mean {recorded}?" in out
    # a unique prefix names its run, as `carlang events --run` takes it
    _, _, by_prefix = changes(finance_log, program, "--run", recorded[:6])
    assert by_prefix["runs"] == 1
    # a typo'd tool would filter every decision out: refused, with a did-you-mean
    code, out = cli("replay", str(finance_log), "--program", str(program), "--tool", "pya")
    assert code == 2 and "--tool pya: no recorded action calls it" in out
    assert "did you mean `pay`?" in out


def test_runs_it_cannot_judge_are_reported_never_a_crash(finance_log: Path, tmp_path: Path) -> None:
    program = tmp_path / "other.car"
    program.write_text("tool lookup_invoice(invoice_id: string)\n")
    code, out = cli("replay", str(finance_log), "--program", str(program))
    assert code == 1, out  # a CI gate that could judge none of the runs does not pass
    assert "2 runs could not be judged" in out
    assert "other.car does not declare tool 'pay'" in out or "does not declare capability" in out
    assert "warning: no decision was judged (2 runs read; 0 of them could be judged)" in out
    damaged = tmp_path / "damaged.jsonl"
    damaged.write_text(finance_log.read_text() + '{"seq": 1, "kind": "action_vali')
    code, out = cli("replay", str(damaged), "--program", str(FINANCE))
    assert code == 2 and "the last line is cut short" in out
    # cut anywhere in the last line, even past the header the fast path reads alone
    whole = finance_log.read_text()
    start = whole.rstrip("\n").rfind("\n") + 1
    for cut in (start + 60, start + 200, len(whole) - 3):
        damaged.write_text(whole[:cut])
        code, out = cli("replay", str(damaged), "--program", str(FINANCE))
        assert code == 2 and "the last line is cut short" in out, (cut, out)
    no_proposal = tmp_path / "bare.jsonl"
    lines = [x for x in finance_log.read_text().splitlines() if '"proposal_received"' not in x]
    no_proposal.write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(
        app, ["replay", str(no_proposal), "--program", str(FINANCE), "--format", "json"]
    )
    assert result.exit_code == 1
    assert {u["reason"] for u in json.loads(result.stdout)["unjudged"]} == {
        "the log holds no proposal for it (was it written by a runtime without a sink?)"
    }


# -- trace rules, tenants, sessions, state -------------------------------------------------------

SERVICE = """\
tool read_secret(name: string)
tool fetch(url: string)
tool note(text: string)
state { mode: string = "normal" }
"""


def _service_log(tmp_path: Path, suffix: str) -> Path:
    program = compile_diagnostics(SERVICE).program
    assert program is not None
    log = tmp_path / f"service{suffix}"
    rt = Runtime.from_program(program, approval=AutoApprove())
    rt.events.sinks.append(JsonlSink(log) if suffix == ".jsonl" else SqliteSink(log))
    rt.register_tool("read_secret", lambda name: "s3cr3t")
    rt.register_tool("fetch", lambda url: "page")
    rt.register_tool("note", lambda text: text)
    session = rt.open_session()

    def calls(*actions: tuple[str, str, dict[str, Any]]) -> ir.ActionProposal:
        return ir.ActionProposal(
            id="p",
            actions=[
                ir.Action(id=i, type="tool_call", tool=t, parameters=p, failure_behavior="skip")
                for i, t, p in actions
            ],
        )

    # acme, in a session: a fetch before, then a secret read, then (next run) fetches after it.
    rt.execute(
        calls(("f0", "fetch", {"url": "a"}), ("r", "read_secret", {"name": "db"})),
        session=session,
        scope={"tenant": "acme"},
    )
    rt.execute(calls(("f1", "fetch", {"url": "b"})), session=session, scope={"tenant": "acme"})
    # globex, no session: a fetch in a run that never read a secret.
    rt.execute(calls(("g1", "fetch", {"url": "c"})), scope={"tenant": "globex"})
    # a state write, then a fetch that sees it.
    rt.execute(
        ir.ActionProposal(
            id="w",
            actions=[
                ir.Action(
                    id="set", type="state_write", parameters={"key": "mode", "value": "locked"}
                ),
                ir.Action(
                    id="f2",
                    type="tool_call",
                    tool="fetch",
                    parameters={"url": "d"},
                    depends_on=["set"],
                ),
            ],
        ),
        scope={"tenant": "initech"},
    )
    rt.close()
    return log


@pytest.mark.parametrize("suffix", [".jsonl", ".db"])
def test_trace_rules_tenants_and_state_are_replayed(tmp_path: Path, suffix: str) -> None:
    log = _service_log(tmp_path, suffix)
    program = tmp_path / "new.car"
    program.write_text(
        SERVICE
        + 'policy no_exfiltration: deny fetch when history.exists(h, h.tool == "read_secret")\n'
        + 'policy globex_review: require_approval fetch when scope.tenant == "globex"\n'
        + 'policy locked: deny fetch when "mode" in state && state.mode == "locked"\n'
    )
    code, found, report = changes(log, program)
    assert code == 1
    # f0 ran before the secret read; f1 after it, in the session's next run; g1 is globex;
    # f2 saw the state its run's first action wrote.
    assert found == {
        ("f1", "allow -> deny"),
        ("g1", "allow -> require_approval"),
        ("f2", "allow -> deny"),
    }
    tenants = {e["action_id"]: e["tenant"] for c in report["categories"] for e in c["examples"]}
    assert tenants == {"f1": "acme", "g1": "globex", "f2": "initech"}
    by_policy = {p for c in report["categories"] for p in c["by_policy"]}
    assert by_policy == {"no_exfiltration", "globex_review", "locked"}


def test_replay_shows_what_a_shadow_policy_would_do(tmp_path: Path) -> None:
    log = _service_log(tmp_path, ".jsonl")
    program = tmp_path / "new.car"
    program.write_text(SERVICE + 'policy watch: shadow deny fetch when params.url == "a"\n')
    code, out = cli("replay", str(log), "--program", str(program))
    assert code == 0, out
    assert "watch would decide 1 call of fetch" in out
    code, out = cli(
        "replay", str(log), "--program", str(program), "--since", "2999-01-01T00:00:00Z"
    )
    assert code == 0 and "no decision was judged (" in out
    assert "; --tool, --since or --until left none)" in out


def test_the_summary_counts_in_words(finance_log: Path) -> None:
    code, out = cli(
        "replay", str(finance_log), "--program", str(FINANCE), "--run", _first_run(finance_log)
    )
    assert code == 0, out
    assert out.startswith("replayed ") and " of 1 run (against recorded): 0 changes," in out


def _first_run(log: Path) -> str:
    for line in log.read_text().splitlines():
        record = json.loads(line)
        if record.get("kind") == "run_started":
            return str(record["trace_id"])
    raise AssertionError("no run in the log")


def test_a_parameter_the_candidate_adds_with_a_default_is_judged_with_it(tmp_path: Path) -> None:
    """v2 adds `limit: int = 10` and a policy on it: the recorded call (from v1, without
    `limit`) runs under v2 with limit 10, allowed; replay says so, not 'no such key'."""
    log = tmp_path / "run.jsonl"
    rt = Runtime(events=EventLog([JsonlSink(log)]))
    rt.register_tool("f", lambda n: n)
    call = ir.Action(id="a", type="tool_call", tool="f", parameters={"n": 1})
    rt.execute(ir.ActionProposal(id="p", actions=[call]))
    rt.close()
    program = tmp_path / "v2.car"
    program.write_text(
        "tool f(n: int, limit: int = 10)\npolicy big: deny f when params.limit > 100\n"
    )
    code, out = cli("replay", str(log), "--program", str(program))
    assert code == 0 and "0 changes, 1 unchanged" in out, out
    program.write_text(
        "tool f(n: int, limit: int = 500)\npolicy big: deny f when params.limit > 100\n"
    )
    code, out = cli("replay", str(log), "--program", str(program))
    assert code == 1 and "1 change" in out and "no such key" not in out, out


def test_a_policy_reading_a_redacted_parameter_is_flagged_not_silently_judged(
    tmp_path: Path,
) -> None:
    """The log keeps `[REDACTED]` for a secret parameter: a candidate policy on the card
    number cannot be judged from it, and replay says which policy and parameter, rather than
    reporting the decision unchanged with nothing more."""
    tools = tmp_path / "pay_tools.py"
    tools.write_text("TOOLS = {'pay': lambda card, amount: 'ok'}\n")
    recorded = tmp_path / "v1.car"
    recorded.write_text(
        "tool pay(card: string secret, amount: int)\n"
        "policy big: deny pay when params.amount > 100\n"
        'proposal p { a = pay(card: "4111111111111111", amount: 5) }\n'
    )
    log = tmp_path / "run.jsonl"
    code, out = cli("run", str(recorded), "--tools", f"{tools}:TOOLS", "--events", str(log))
    assert code == 0, out
    assert "4111111111111111" not in log.read_text()
    v2 = tmp_path / "v2.car"
    v2.write_text(
        recorded.read_text().replace(
            "policy big:", 'policy visa: deny pay when params.card.startsWith("4")\npolicy big:'
        )
    )
    code, _, report = changes(log, v2)
    assert code == 0 and report["unchanged"] == 1
    notes = report["not_reconstructed"]
    flagged = [note for note in notes if "`visa` reads parameter `card`" in note]
    assert len(flagged) == 1 and notes[flagged[0]] == 1
    assert not any("`big`" in note for note in notes)  # it reads `amount`, which the log has
    # the same policy in shadow: what it "would decide" is as unknown
    shadowed = tmp_path / "v3.car"
    shadowed.write_text(v2.read_text().replace("visa: deny", "visa: shadow deny"))
    _, _, report = changes(log, shadowed)
    assert any("`visa` reads parameter `card`" in note for note in report["not_reconstructed"])
    # the unchanged program: its policies read nothing the log redacted
    _, _, report = changes(log, recorded)
    assert not any("reads parameter" in note for note in report["not_reconstructed"])


def test_a_keyword_rule_that_fired_is_no_change_when_replayed_on_its_own_log(
    tmp_path: Path,
) -> None:
    """The log redacts what a keyword rule caught, so the replayed rule sees `[REDACTED]`
    and no keyword: replaying the program on its own log reported `deny -> allow` and failed
    the gate. A changed decision made on a redacted parameter is not counted as a change."""
    tools = tmp_path / "echo_tools.py"
    tools.write_text("TOOLS = {'echo': lambda text: text}\n")
    program = tmp_path / "p.car"
    program.write_text(
        'tool echo(text: string) -> string\ndeny_keyword ["DROP TABLE"]\n'
        'proposal p { a = echo(text: "x DROP TABLE y") }\n'
    )
    log = tmp_path / "run.jsonl"
    cli("run", str(program), "--tools", f"{tools}:TOOLS", "--events", str(log), "--force")
    assert "DROP TABLE" not in log.read_text()
    code, _, report = changes(log, program)
    assert code == 0 and report["changes"] == 0 and report["unchanged"] == 0, report
    notes = report["not_reconstructed"]
    assert (
        notes[
            "decisions deny -> allow not counted as changes: a policy read a parameter the log"
            " redacted"
        ]
        == 1
    ), notes
    # a change another policy makes is counted, though one that reads the redacted
    # parameter is there too (the candidate drops `big`: deny -> allow by it)
    big = "policy big: deny echo when params.n > 100\n"
    program.write_text(
        'tool echo(text: string, n: int = 500) -> string\ndeny_keyword ["DROP TABLE"]\n'
        + big
        + 'proposal p { a = echo(text: "x DROP TABLE y") }\n'
    )
    log.unlink()
    cli("run", str(program), "--tools", f"{tools}:TOOLS", "--events", str(log), "--force")
    program.write_text(program.read_text().replace(big, ""))
    code, _, report = changes(log, program)
    assert code == 1 and report["changes"] == 1, report


def test_calls_refused_before_any_policy_are_counted_not_judged(tmp_path: Path) -> None:
    """The assistant loop and the MCP proxy refuse a call once the session's budget is
    spent, before any policy sees it: replay cannot re-decide that (the budget is the
    session's, not the proposal's), and says how many it left out."""
    log = tmp_path / "run.jsonl"
    rt = Runtime(events=EventLog([JsonlSink(log)]))
    rt.register_tool("f", lambda n: n)
    for n in range(3):
        call = ir.Action(id=f"a{n}", type="tool_call", tool="f", parameters={"n": n})
        spent = "budget 'small' is spent: 1 tool calls per session" if n else None
        rt.execute(ir.ActionProposal(id=f"p{n}", actions=[call]), refused=spent)
    rt.close()
    program = tmp_path / "p.car"
    program.write_text("tool f(n: int)\npolicy big: deny f when params.n > 100\n")
    code, _, report = changes(log, program)
    assert code == 0 and report["decisions"] == 1 and report["judged_runs"] == 3
    rejected = "actions rejected before any policy decided"
    (note,) = [text for text in report["not_reconstructed"] if text.startswith(rejected)]
    assert report["not_reconstructed"][note] == 2


def _session_log(
    tmp_path: Path,
    calls: list[tuple[str, str | None]],
    *,
    per_session: bool = True,
    program: str = "tool f(n: int)\n",
) -> Path:
    """A log of one MCP client session's calls, each a proposal of its own as the proxy runs
    them (budget `per_session`, the session's when `per_session`, as the proxy marks it),
    some refused before any policy; a person says no to any approval asked."""
    from carlang_runtime.engine import DenyApprovals
    from carlang_runtime.engine.limits import session_budget_context

    from carlang.compiler import compile_text

    log = tmp_path / "run.jsonl"
    compiled = compile_text(program + "budget per_session { max_tool_calls 9 }\n")
    assert compiled.program is not None
    rt = Runtime.from_program(
        compiled.program, events=EventLog([JsonlSink(log)]), approval=DenyApprovals()
    )
    rt.register_tool("f", lambda n: n)
    session = rt.open_session()
    for n, (tool, refused) in enumerate(calls):
        call = ir.Action(id=f"call_{n}", type="tool_call", tool=tool, parameters={"n": n})
        proposal = ir.ActionProposal(
            id=f"mcp_{n}",
            source="mcp-proxy",
            actions=[call],
            budget="per_session",
            context=session_budget_context() if per_session else {},
        )
        rt.execute(proposal, session=session, refused=refused)
    rt.close()
    return log


def test_a_tighter_session_budget_denies_the_calls_past_it(tmp_path: Path) -> None:
    """The proxy's and the loop's budget is the session's: replay counts the calls the
    candidate lets run across the session's proposals (it judged each on its own, and a budget
    cut from 5 to 1 calls passed the gate)."""
    log = _session_log(tmp_path, [("f", None)] * 3)
    program = tmp_path / "p.car"
    program.write_text("tool f(n: int)\nbudget per_session { max_tool_calls 5 }\n")
    code, _, report = changes(log, program)
    assert code == 0 and report["changes"] == 0, report
    program.write_text("tool f(n: int)\nbudget per_session { max_tool_calls 1 }\n")
    code, out = cli("replay", str(log), "--program", str(program))
    assert code == 1, out
    assert "allow -> deny: 2 of 3" in out and "policy budget:per_session: 2" in out
    assert "budget 'per_session' is spent: 1 tool calls per session" in out


def test_a_budget_a_session_does_not_spend_is_counted_per_proposal(tmp_path: Path) -> None:
    """A host's own session running proposals with a budget (not the proxy's or the loop's,
    whose proposals say their budget is the session's) spends it per proposal, as before."""
    log = _session_log(tmp_path, [("f", None)] * 3, per_session=False)
    program = tmp_path / "p.car"
    program.write_text("tool f(n: int)\nbudget per_session { max_tool_calls 1 }\n")
    code, _, report = changes(log, program)
    assert code == 0 and report["changes"] == 0, report


def test_a_call_a_person_refused_spends_no_session_budget(tmp_path: Path) -> None:
    """The proxy counts the calls that ran: one asked about and refused spends nothing."""
    ask = "tool f(n: int)\npolicy big: require_approval f when params.n == 0\n"
    log = _session_log(tmp_path, [("f", None)] * 3, program=ask)
    program = tmp_path / "p.car"
    program.write_text(ask + "budget per_session { max_tool_calls 2 }\n")
    code, _, report = changes(log, program)
    assert code == 0 and report["changes"] == 0, report


def test_a_call_of_a_tool_no_program_declares_is_not_a_dropped_run(tmp_path: Path) -> None:
    """An MCP client calling a tool that does not exist (a typo) is refused before any policy;
    replaying the unchanged program is no failure (it said the candidate dropped the tool)."""
    log = _session_log(tmp_path, [("f", None), ("f_typo", "unknown tool 'f_typo'")])
    program = tmp_path / "p.car"
    program.write_text("tool f(n: int)\nbudget per_session { max_tool_calls 5 }\n")
    code, out = cli("replay", str(log), "--program", str(program))
    assert code == 0, out
    assert "could not be judged" not in out and "1 action rejected before any policy" in out


def test_the_order_the_logs_are_named_in_changes_nothing(tmp_path: Path) -> None:
    """Runs are judged in the order they started: a rate limit's clock ran backwards from one
    log to the next, and `replay new.db old.db` found changes `replay old.db new.db` did not."""
    logs = []
    for name in ("older", "newer"):
        log = tmp_path / f"{name}.jsonl"
        rt = Runtime(events=EventLog([JsonlSink(log)]))
        rt.register_tool("deploy", lambda env: env)
        for n in range(2):
            call = ir.Action(id=f"d{n}", type="tool_call", tool="deploy", parameters={"env": "x"})
            rt.execute(ir.ActionProposal(id=f"{name}{n}", actions=[call]))
        rt.close()
        logs.append(log)
    program = tmp_path / "limited.car"
    program.write_text("tool deploy(env: string)\nrate_limit_tool deploy 2 per 1m\n")
    _, forward, first = changes(logs[0], program, str(logs[1]))
    _, backward, second = changes(logs[1], program, str(logs[0]))
    assert first["categories"] == second["categories"] and forward == backward
    assert first["changes"] == 2  # the newer log's two deploys, past the limit


def _fetch_and_deploy_log(tmp_path: Path) -> Path:
    """A log (run.jsonl) of two runs, one calling `fetch`, the other `deploy`."""
    log = tmp_path / "run.jsonl"
    rt = Runtime(events=EventLog([JsonlSink(log)]))
    rt.register_tool("fetch", lambda url: url)
    rt.register_tool("deploy", lambda env: env)
    for tool, params in (("fetch", {"url": "https://x"}), ("deploy", {"env": "prod"})):
        call = ir.Action(id="a", type="tool_call", tool=tool, parameters=params)
        rt.execute(ir.ActionProposal(id=tool, actions=[call]))
    rt.close()
    return log


def test_a_candidate_that_drops_a_tool_production_calls_fails_the_gate(tmp_path: Path) -> None:
    """Renaming or removing a tool makes its calls refused: a deny, for a gate. It passed as
    long as some other run could still be judged."""
    log = _fetch_and_deploy_log(tmp_path)
    program = tmp_path / "renamed.car"
    program.write_text("tool fetch(url: string)\ntool ship(env: string)\n")
    code, out = cli("replay", str(log), "--program", str(program))
    assert code == 1, out
    assert "1 run could not be judged" in out and "does not declare tool 'deploy'" in out
    assert "fails --fail-on any: 1 run the candidate cannot run (it dropped what they use)" in out
    code, out = cli("replay", str(log), "--program", str(program), "--fail-on", "allow")
    assert code == 0, out  # a gate on new allows only: dropping a tool allows nothing new
    _, _, report = changes(log, program)
    assert report["gate"] == ["1 run the candidate cannot run (it dropped what they use)"]
    # SARIF and JUnit show the failure too (they showed none: no result, failures="0")
    for fail_on, level, failures in (("any", "error", "1"), ("allow", "note", "0")):
        _, sarif = cli(*_args(log, program, "sarif", fail_on))
        document = json.loads(sarif)
        jsonschema.validate(document, json.loads(SARIF_SCHEMA.read_text()))
        (result,) = document["runs"][0]["results"]
        assert (result["ruleId"], result["level"]) == ("replay/dropped", level)
        assert result["message"]["text"] == (
            "1 recorded run cannot be judged: renamed.car does not declare tool 'deploy'"
            " (their calls would now be refused)"
        )
        where = result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        assert where.endswith("renamed.car")
        _, junit = cli(*_args(log, program, "junit", fail_on))
        valid_junit(junit)
        suite = ET.fromstring(junit).find("testsuite")
        assert suite is not None and suite.get("failures") == failures
        (case,) = [c for c in suite if c.get("name", "").startswith("run ")]
        assert case[0].tag == ("failure" if failures == "1" else "skipped")
        assert "does not declare tool 'deploy' (action a)" in (case[0].get("message") or "")


def _args(log: Path, program: Path, output: str, fail_on: str = "any") -> list[str]:
    return ["replay", str(log), "--program", str(program), "--format", output, "--fail-on", fail_on]


# Three pays with no order between them (`on_failure skip`: the level runs them alongside each
# other): the runtime admits them one after the other, each admitted one in `history` as
# "running" until it ends, so `once` lets the first pay and denies the two others.
PAY_ONCE = """\
tool pay(n: int)
policy once: deny pay when history.exists(h, h.tool == "pay")
proposal p {
  a = pay(n: 1) { on_failure skip }
  b = pay(n: 2) { on_failure skip }
  c = pay(n: 3) { on_failure skip }
}
"""


def _pay_log(tmp_path: Path, suffix: str, program: str = PAY_ONCE) -> tuple[Path, Path]:
    """A real run of `program` (`carlang run --force --events`): the program and its log."""
    source = tmp_path / "h.car"
    source.write_text(program)
    tools = tmp_path / "pay_tools.py"
    tools.write_text("TOOLS = {'pay': lambda n: n}\n")
    log = tmp_path / f"x{suffix}"
    code, out = cli(
        "run", str(source), "--tools", f"{tools}:TOOLS", "--force", "--events", str(log)
    )
    assert code in (0, 1), out
    return source, log


@pytest.mark.parametrize("suffix", [".jsonl", ".db"])
def test_a_history_rule_on_unordered_siblings_is_replayed_unchanged(
    tmp_path: Path, suffix: str
) -> None:
    """Replay rebuilt `history` from the actions that had ended only: the second pay, decided
    while the first was admitted and not ended, was judged on an empty history, and the
    unchanged program reported `deny -> allow`, failing a CI gate."""
    source, log = _pay_log(tmp_path, suffix)
    (run,) = read_runs([log])
    assert {i: d.decision for i, d in run.decisions.items()} == {
        "a": "allow",
        "b": "deny",
        "c": "deny",
    }
    code, found, report = changes(log, source)
    assert code == 0 and found == set(), report
    assert report["decisions"] == report["unchanged"] == 3
    code, out = cli("replay", "--program", str(source), str(log))
    assert code == 0 and "0 changes, 3 unchanged" in out, out


@pytest.mark.parametrize("suffix", [".jsonl", ".db"])
def test_a_rule_that_no_longer_sees_running_siblings_is_a_change(
    tmp_path: Path, suffix: str
) -> None:
    """The entry of an admitted action says "running" until it ends: a candidate counting only
    successes does not see the first pay when the others are decided, and the change is
    reported; one counting running pays too decides as the recorded run did."""
    source, log = _pay_log(tmp_path, suffix)
    old = 'h.tool == "pay")'
    successes = tmp_path / "successes.car"
    successes.write_text(PAY_ONCE.replace(old, 'h.tool == "pay" && h.status == "succeeded")'))
    code, found, report = changes(log, successes)
    assert code == 1
    assert found == {("b", "deny -> allow"), ("c", "deny -> allow")}
    assert report["unchanged"] == 1  # a: allowed either way
    running = tmp_path / "running.car"
    running.write_text(
        PAY_ONCE.replace(old, 'h.tool == "pay" && h.status in ["succeeded", "running"])')
    )
    code, found, report = changes(log, running)
    assert code == 0 and found == set() and report["unchanged"] == 3


@pytest.mark.parametrize("suffix", [".jsonl", ".db"])
def test_a_tool_call_budget_counts_siblings_started_and_not_ended(
    tmp_path: Path, suffix: str
) -> None:
    """A tool call holds its place in `max_tool_calls` from its start to its end: under a
    budget of 2, the third of three unordered pays is refused although none had ended."""
    recorded = PAY_ONCE.replace(
        "policy once:", "budget calls { max_tool_calls 3 }\npolicy once:"
    ).replace("proposal p {", "proposal p under calls {")
    recorded = recorded.replace('h.tool == "pay")', 'h.tool == "never")')  # all three pay
    source, log = _pay_log(tmp_path, suffix, recorded)
    code, found, _ = changes(log, source)
    assert code == 0 and found == set()
    tighter = tmp_path / "tighter.car"
    tighter.write_text(recorded.replace("max_tool_calls 3", "max_tool_calls 2"))
    code, found, _ = changes(log, tighter)
    assert code == 1 and found == {("c", "allow -> deny")}


@pytest.mark.parametrize("suffix", [".jsonl", ".db"])
def test_remembered_outputs_do_not_count_as_tool_calls(tmp_path: Path, suffix: str) -> None:
    """An idempotent action answered from the idempotency cache and a cacheable tool's cached
    output call no tool, and the runtime does not count them in `max_tool_calls`: replay
    counted both, so the unchanged program's last call went `allow -> deny`."""
    program = """\
tool pay(n: int) { idempotent }
tool look(n: int) { cache 10m }
budget calls { max_tool_calls 3 }
proposal p under calls {
  a = pay(n: 1)
  b = pay(n: 1) after a
  c = look(n: 1) after b
  d = look(n: 1) after c
  e = pay(n: 2) after d
}
"""
    source = tmp_path / "h.car"
    source.write_text(program)
    tools = tmp_path / "pay_tools.py"
    tools.write_text("TOOLS = {'pay': lambda n: n, 'look': lambda n: n}\n")
    log = tmp_path / f"x{suffix}"
    # (verify counts five calls: which outputs will be remembered is known only when it runs)
    code, out = cli(
        "run", str(source), "--tools", f"{tools}:TOOLS", "--events", str(log), "--force"
    )
    assert code == 0, out
    (run,) = read_runs([log])
    called = {step[1]: step[4] for step in run.steps if step[0] == "end"}
    assert called == {"a": True, "b": False, "c": True, "d": False, "e": True}
    code, found, report = changes(log, source)
    assert code == 0 and found == set() and report["unchanged"] == 5
    tighter = tmp_path / "tighter.car"
    tighter.write_text(program.replace("max_tool_calls 3", "max_tool_calls 2"))
    code, found, _ = changes(log, tighter)
    # d is decided before anyone knows its output is cached: the budget is spent by then
    assert code == 1 and found == {("d", "allow -> deny"), ("e", "allow -> deny")}


REFUNDS = """\
tool pay(n: int, note: string = "")
tool refund(n: int, reason: string = "undo")
tool fail()
policy after_refund: deny pay when history.exists(h, h.tool == "refund" && h.params.reason == "undo")
"""


@pytest.mark.parametrize("suffix", [".jsonl", ".db"])
def test_undo_steps_are_in_the_replayed_history(tmp_path: Path, suffix: str) -> None:
    """A compensation that ran is in `history` (with its tool's defaults filled in, as the
    runtime ran it), so a rule reading it decides the session's next run as it did: replay
    left undo steps out, and the unchanged program's denied pay came back `deny -> allow`."""
    program = compile_diagnostics(REFUNDS).program
    assert program is not None
    log = tmp_path / f"refunds{suffix}"
    rt = Runtime.from_program(program)
    rt.events.sinks.append(JsonlSink(log) if suffix == ".jsonl" else SqliteSink(log))
    rt.register_tool("pay", lambda n, note: n)
    rt.register_tool("refund", lambda n, reason: n)

    def broken() -> None:
        raise RuntimeError("down")

    rt.register_tool("fail", broken)
    session = rt.open_session()
    paid = ir.Action(
        id="a",
        type="tool_call",
        tool="pay",
        parameters={"n": 1},
        compensation={"type": "tool", "tool": "refund", "parameters": {"n": 1}},
    )
    failing = ir.Action(id="b", type="tool_call", tool="fail", depends_on=["a"])
    first = rt.execute(ir.ActionProposal(id="p1", actions=[paid, failing]), session=session)
    assert [c.status.value for c in first.compensations] == ["succeeded"]
    again = ir.Action(id="c", type="tool_call", tool="pay", parameters={"n": 2})
    second = rt.execute(ir.ActionProposal(id="p2", actions=[again]), session=session)
    assert second.results[0].status.value == "rejected"
    rt.close()
    source = tmp_path / "refunds.car"
    source.write_text(REFUNDS)
    code, found, report = changes(log, source)
    assert code == 0 and found == set() and report["unchanged"] == 3, report
    # a rule on a parameter the undo step left out sees its default, as the runtime did
    relaxed = tmp_path / "relaxed.car"
    relaxed.write_text(REFUNDS.replace('h.params.reason == "undo"', 'h.params.reason == "x"'))
    code, found, _ = changes(log, relaxed)
    assert code == 1 and found == {("c", "deny -> allow")}


@pytest.mark.parametrize("suffix", [".jsonl", ".db"])
def test_a_retry_takes_its_place_in_a_replayed_rate_limit(tmp_path: Path, suffix: str) -> None:
    """A retry calls the tool again and takes a place in `rate_limit_tool`'s window at run
    time; replay counted none, so the unchanged program's refused `b` came back allowed, and
    explaining the example spent a second place (`deny -> deny`)."""
    program = """\
tool flaky(n: int)
rate_limit_tool flaky 2 per 1h
proposal p {
  a = flaky(n: 1) { retry 1 }
  b = flaky(n: 2) after a { on_failure skip }
}
"""
    source = tmp_path / "r.car"
    source.write_text(program)
    tools = tmp_path / "flaky_tools.py"
    tools.write_text(
        "calls = []\n"
        "def flaky(n):\n"
        "    calls.append(n)\n"
        "    if len(calls) == 1:\n"
        "        raise RuntimeError('first try fails')\n"
        "    return n\n"
        "TOOLS = {'flaky': flaky}\n"
    )
    log = tmp_path / f"x{suffix}"
    code, out = cli("run", str(source), "--tools", f"{tools}:TOOLS", "--events", str(log))
    assert code == 1 and "1 succeeded, 1 rejected; 1 successful tool call, 1 retry" in out, out
    (run,) = read_runs([log])
    assert run.decisions["b"].decision == "deny"
    code, found, report = changes(log, source)
    assert code == 0 and found == set() and report["unchanged"] == 2, report
    looser = tmp_path / "looser.car"
    looser.write_text(program.replace("2 per 1h", "3 per 1h"))
    code, found, _ = changes(log, looser)
    assert code == 1 and found == {("b", "deny -> allow")}


def test_a_log_that_holds_no_run_fails_the_gate(tmp_path: Path) -> None:
    """An empty log (or one whose events belong to no run) passed the gate, exit 0: a CI
    gate that read nothing passed nothing."""
    program = tmp_path / "p.car"
    program.write_text("tool t()\n")
    log = tmp_path / "empty.jsonl"
    log.write_text("")
    code, out = cli("replay", str(log), "--program", str(program))
    assert code == 1 and "the logs hold no run" in out, out
    # SARIF and JUnit fail too (stdout: the warning that nothing was judged is on stderr)
    sarif = CliRunner().invoke(app, _args(log, program, "sarif")).stdout
    (result,) = json.loads(sarif)["runs"][0]["results"]
    assert result["level"] == "error" and "the logs hold no run" in result["message"]["text"]
    junit = CliRunner().invoke(app, _args(log, program, "junit")).stdout
    valid_junit(junit)
    (case,) = ET.fromstring(junit).iter("testcase")
    assert case.get("name") == "replay gate" and case[0].tag == "failure"


@pytest.mark.parametrize(
    ("old", "new", "code"),
    [
        ("deny pay when", "deny pya when", "CL0502"),  # a tool no declaration has
        ("params.amount_cents > 100000", "params.amount_cent > 100000", "CL0506"),
    ],
)
def test_a_candidate_with_errors_is_refused_as_run_refuses_it(
    finance_log: Path, tmp_path: Path, old: str, new: str, code: str
) -> None:
    """Only parse errors were refused: a policy naming no declared tool, or reading a field
    that does not exist, decides nothing, and the gate passed on a program `check` fails."""
    program = candidate(tmp_path, old, new)
    status, out = cli("replay", str(finance_log), "--program", str(program))
    assert status == 2, out
    assert f"error[{code}]" in out and "the program has errors; fix them" in out
    status, out = cli(
        "replay", str(finance_log), "--program", str(FINANCE), "--baseline", str(program)
    )
    assert status == 2 and f"error[{code}]" in out, out


def test_run_judges_one_run_with_the_history_and_budget_of_its_session(tmp_path: Path) -> None:
    """`--run` dropped the session's other runs before replaying: the run was judged on an
    empty history and an unspent budget, and 0 changes passed the gate where the whole log
    showed `allow -> deny`. It narrows what is judged, as `--tool` and `--since` do."""
    log = _service_log(tmp_path, ".jsonl")
    second = read_runs([log])[1]  # acme's second run: f1, after the session read a secret
    assert second.steps[0][1] == "f1"
    program = tmp_path / "new.car"
    program.write_text(
        SERVICE
        + 'policy no_exfiltration: deny fetch when history.exists(h, h.tool == "read_secret")\n'
    )
    code, found, report = changes(log, program, "--run", second.run_id)
    assert code == 1 and found == {("f1", "allow -> deny")}, report
    assert (report["runs"], report["judged_runs"], report["decisions"]) == (1, 1, 1)
    # a session's budget, spent by the session's earlier runs
    budgeted = _session_log(tmp_path, [("f", None)] * 3)
    third = read_runs([budgeted])[2].run_id
    program.write_text("tool f(n: int)\nbudget per_session { max_tool_calls 2 }\n")
    code, found, report = changes(budgeted, program, "--run", third)
    assert code == 1 and found == {("call_2", "allow -> deny")}, report
    assert report["categories"][0]["by_policy"] == {"budget:per_session": 1}


def _read_back(log: Path) -> list[tuple[Any, ...]]:
    """What replay reads of each run of `log` (its source and the raw text aside)."""
    return [
        (
            run.run_id,
            run.proposal_id,
            run.scope,
            run.session,
            run.started,
            run.document,
            run.redacted,
            run.tenant,
            run.state,
            # (no state change: None read by the header alone, {} when parsed)
            [(*s[:3], s[3] or None, *s[4:]) if s[0] == "end" else s for s in run.steps],
            {i: (d.decision, d.policies, d.locs) for i, d in run.decisions.items()},
        )
        for run in read_runs([log])
    ]


@pytest.mark.parametrize(
    "rewrite",
    [
        lambda line: line + "\r",  # CRLF
        lambda line: line + "  \t",
        lambda line: line[:-1] + ', "host": "web-1"}',  # a field added to every event
        lambda line: line[:-1] + ', "meta": {"host": "web-1", "cached": true}}',
    ],
    ids=["crlf", "trailing-space", "extra-field", "extra-object"],
)
def test_a_log_written_otherwise_is_read_as_the_runtime_wrote_it(
    finance_log: Path, tmp_path: Path, rewrite: Any
) -> None:
    """The fast path took `data` to be the last field and `}` the last character: a log
    with CRLF line ends, trailing spaces or one more field on each event was refused as
    "malformed JSON: extra data" (or misread), though `carlang events` read it."""
    original = _read_back(finance_log)
    assert any(loc for run in original for *_, locs in run[-1].values() for loc in locs)
    log = tmp_path / "other.jsonl"
    log.write_text("".join(rewrite(line) + "\n" for line in finance_log.read_text().splitlines()))
    assert _read_back(log) == original
    code, out = cli("replay", str(log), "--program", str(FINANCE))
    assert code == 0 and "0 changes, 6 unchanged" in out, out


@pytest.mark.parametrize(
    ("kind", "field", "value"),
    [
        ("run_started", "scope", "x"),
        ("run_started", "scope", [1, 2]),
        ("run_started", "session", {"id": 1}),
        ("approval_recorded", "policies", 5),
        ("approval_recorded", "policies", [{"name": "x"}]),
        ("state_snapshot", "tenant", 5),
        ("proposal_received", "proposal", "p"),
        ("action_succeeded", "state_changes", [1]),
    ],
)
def test_a_field_of_the_wrong_type_is_an_error_at_its_line(
    finance_log: Path, tmp_path: Path, kind: str, field: str, value: Any
) -> None:
    """Replay used these fields as they were: a `scope` that is a string, a `session` that is
    an object, `policies` that is a number were internal errors (exit 101)."""
    lines = finance_log.read_text().splitlines()
    number = next(n for n, line in enumerate(lines) if f'"kind": "{kind}"' in line)
    record = json.loads(lines[number])
    record["data"][field] = value
    lines[number] = json.dumps(record)
    log = tmp_path / "edited.jsonl"
    log.write_text("\n".join(lines) + "\n")
    code, out = cli("replay", str(log), "--program", str(FINANCE))
    assert code == 2, out
    assert out.startswith(f"{log}:{number + 1}:")
    assert f"not a valid {kind} event: data.{field} must be" in out and "internal" not in out


def test_positions_of_the_wrong_type_are_left_out(finance_log: Path, tmp_path: Path) -> None:
    """A refusal's `policy_decision` is read only for its policies' positions: `policies`
    of another type crashed replay when it showed the recorded policy; now its position is
    not known, as when the log has none."""
    lines = finance_log.read_text().splitlines()
    for number, line in enumerate(lines):
        record = json.loads(line)
        if record["kind"] == "policy_decision" and record["data"]["decision"] != "allow":
            record["data"]["policies"] = 5
            lines[number] = json.dumps(record)
    log = tmp_path / "edited.jsonl"
    log.write_text("\n".join(lines) + "\n")
    program = candidate(
        tmp_path,
        'require_state books_open == true message "payments only while the books are open"',
        "",
    )
    code, found, _ = changes(log, program)
    assert code == 1 and found == {("check_a", "deny -> allow")}


def test_a_journal_row_of_the_wrong_type_is_an_error_naming_the_event(tmp_path: Path) -> None:
    """SQLite keeps whatever a column is given: a text timestamp crashed replay and
    `carlang events` alike, and a wrongly-typed data field crashed replay."""
    import sqlite3

    program = tmp_path / "service.car"
    program.write_text(SERVICE)
    log = _service_log(tmp_path, ".db")
    with closing(sqlite3.connect(log)) as db, db:
        db.execute("UPDATE events SET data = json_set(data, '$.scope', 'x') WHERE id = 1")
    code, out = cli("replay", str(log), "--program", str(program))
    assert code == 2 and f"{log}: event 1: not a valid run_started event: data.scope" in out, out
    with closing(sqlite3.connect(log)) as db, db:
        db.execute("UPDATE events SET timestamp = 'abc' WHERE id = 3")
    for command in (["replay", str(log), "--program", str(program)], ["events", str(log)]):
        code, out = cli(*command)
        assert code == 2 and f"{log}: event 3 is damaged (its timestamp is 'abc'" in out, out


def test_a_log_given_twice_counts_each_run_once(tmp_path: Path) -> None:
    """The same log given twice (or copies that overlap) was judged twice: a session budget
    saw each call twice, and the program that recorded the log failed its own gate."""
    log = _session_log(tmp_path, [("f", None)] * 3)
    copy = tmp_path / "copy.jsonl"
    copy.write_text(log.read_text())
    program = tmp_path / "p.car"
    program.write_text("tool f(n: int)\nbudget per_session { max_tool_calls 3 }\n")
    args = ["replay", str(log), str(copy), str(log), "--program", str(program)]
    result = CliRunner().invoke(app, [*args, "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["runs"], report["decisions"], report["changes"]) == (3, 3, 0)
    assert result.stderr.splitlines() == [
        f"note: {copy} repeats 3 runs of {log} (the same events): judged once",
        f"note: {log} is given twice: its runs are judged once",
    ]
    # a copy taken while a run was going on holds other events of it: which is right?
    lines = log.read_text().splitlines(keepends=True)
    copy.write_text("".join(lines[:-3]))
    code, out = cli("replay", str(log), str(copy), "--program", str(program))
    assert code == 2, out
    assert f"{copy}: run " in out and f" is in {log} too, with other events" in out


def test_a_change_a_budget_makes_is_located_at_the_budget(
    finance_log: Path, tmp_path: Path
) -> None:
    """SARIF results point at the policy that changes decisions; one a budget caused had no
    location at all (and a CI annotation had nowhere to go)."""
    log = _session_log(tmp_path, [("f", None)] * 3)
    program = tmp_path / "p.car"
    program.write_text("tool f(n: int)\n\nbudget per_session { max_tool_calls 1 }\n")
    code, out = cli("replay", str(log), "--program", str(program), "--format", "sarif")
    assert code == 1, out
    document = json.loads(out)
    jsonschema.validate(document, json.loads(SARIF_SCHEMA.read_text()))
    (result,) = document["runs"][0]["results"]
    assert result["message"]["text"].startswith("budget per_session would have denied 2 of 3")
    (location,) = result["locations"]
    assert location["physicalLocation"]["region"] == {"startLine": 3, "startColumn": 1}
    assert location["physicalLocation"]["artifactLocation"]["uri"].endswith("p.car")
    code, out = cli("replay", str(log), "--program", str(program))
    assert "by budget:per_session at " in out and "p.car:3:1: budget 'per_session'" in out
    # a capability's, at the capability
    program = candidate(tmp_path, "tools allow lookup_invoice, pay, refund", "tools allow pay")
    _, _, report = changes(finance_log, program)
    (category,) = report["categories"]
    assert category["by_policy"] == {"capability:payments_bot": 2}
    assert category["examples"][0]["after"]["loc"]["line"] == 24


def test_a_decision_two_policies_make_counts_under_each(tmp_path: Path) -> None:
    """Two policies denied the same call: only the first was counted in `by_policy` and had a
    SARIF result. The decision itself counts once."""
    two = (
        "tool pay(n: int)\n"
        "policy small: deny pay when params.n < 10\n"
        "policy odd: deny pay when params.n % 2 == 1\n"
        "proposal p { a = pay(n: 3) }\n"
    )
    source, log = _pay_log(tmp_path, ".jsonl", two)
    (run,) = read_runs([log])
    assert run.decisions["a"].policies == ["small", "odd"]
    program = tmp_path / "none.car"
    program.write_text("tool pay(n: int)\n")
    code, _, report = changes(log, program)
    (relaxed,) = report["categories"]
    assert code == 1 and (report["decisions"], report["changes"], relaxed["count"]) == (1, 1, 1)
    assert relaxed["by_policy"] == {"small": 1, "odd": 1}
    code, out = cli("replay", str(log), "--program", str(program))
    assert "by small at h.car:2:1, odd at h.car:3:1" in out, out
    # the candidate's two, each at its line
    code, _, report = changes(log, source, "--baseline", str(program))
    assert report["categories"][0]["by_policy"] == {"small": 1, "odd": 1}
    _, sarif = cli(
        "replay",
        str(log),
        "--program",
        str(source),
        "--baseline",
        str(program),
        "--format",
        "sarif",
    )
    results = json.loads(sarif)["runs"][0]["results"]
    assert [
        (
            r["message"]["text"].split(" would")[0],
            r["locations"][0]["physicalLocation"]["region"]["startLine"],
        )
        for r in results
    ] == [("policy small", 2), ("policy odd", 3)]


def test_another_tools_transcript_is_refused_naming_the_logs_replay_reads(
    tmp_path: Path,
) -> None:
    """A chat transcript (JSON objects without `kind`) was refused as "not an event", with
    nothing said of what replay does read."""
    program = tmp_path / "p.car"
    program.write_text("tool t()\n")
    transcript = tmp_path / "chat.jsonl"
    transcript.write_text('{"role": "user", "content": "hi"}\n')
    code, out = cli("replay", str(transcript), "--program", str(program))
    assert code == 2 and out.startswith(f"{transcript}:1:1: error: not an event"), out
    assert "replay reads the event logs `carlang run`, `carlang agent` and `carlang mcp" in out


ONCE = """
tool pay(n: int)
tool ping()
policy once: deny pay when history.exists(h, h.tool == "pay")
"""


@pytest.mark.parametrize("limit", [None, 3])
def test_a_trimmed_session_history_fails_closed_in_replay_as_it_did(
    tmp_path: Path, limit: int | None
) -> None:
    """Past its history limit a session's history rules fail closed (the runtime refused the
    second payment though the first had left `history`): replay trims the session's history
    with the limit the recording runtime had (`run_started` says it when it is not the
    default) and decides the same, where it would have found `deny -> allow`."""
    program = compile_diagnostics(ONCE).program
    assert program is not None
    log = tmp_path / "once.jsonl"
    kept = limit or 1000
    rt = Runtime.from_program(program, **({"history_limit": limit} if limit else {}))
    rt.events.sinks.append(JsonlSink(log))
    rt.register_tool("pay", lambda n: n)
    rt.register_tool("ping", lambda: "pong")
    session = rt.open_session()

    def run(action: ir.Action) -> str:
        result = rt.execute(ir.ActionProposal(actions=[action]), session=session)
        return result.results[0].status.value

    assert run(ir.Action(id="a", type="tool_call", tool="pay", parameters={"n": 1})) == "succeeded"
    pings = {run(ir.Action(id="p", type="tool_call", tool="ping")) for _ in range(kept)}
    assert pings == {"succeeded"}
    assert run(ir.Action(id="b", type="tool_call", tool="pay", parameters={"n": 2})) == "rejected"
    rt.close()
    source = tmp_path / "once.car"
    source.write_text(ONCE)
    code, found, report = changes(log, source)
    assert code == 0 and found == set(), report


def test_sarif_uris_are_relative_to_the_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replay's SARIF named the policy's file relative to the project and the log as typed,
    with no base: a project whose `carlang.toml` is in `policies/` had URIs no checkout held.
    Now, as `check`'s: relative to the repository, which `originalUriBaseIds` names."""
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "policies").mkdir()
    (repo / "policies" / "carlang.toml").write_text("")
    monkeypatch.chdir(repo)
    log = _session_log(repo, [("f", None)] * 3)
    program = repo / "policies" / "p.car"
    program.write_text("tool f(n: int)\n\nbudget per_session { max_tool_calls 1 }\n")
    code, out = cli("replay", "run.jsonl", "--program", "policies/p.car", "--format", "sarif")
    assert code == 1, out
    (run,) = json.loads(out)["runs"]
    assert run["originalUriBaseIds"] == {"%SRCROOT%": {"uri": repo.resolve().as_uri() + "/"}}
    (result,) = run["results"]
    artifact = result["locations"][0]["physicalLocation"]["artifactLocation"]
    assert artifact == {"uri": "policies/p.car", "uriBaseId": "%SRCROOT%"}
    # a run that cannot be judged is shown at its log, named from the working folder
    (repo / "logs").mkdir()
    bad = repo / "logs" / "run.jsonl"
    lines = log.read_text().splitlines()
    bad.write_text("\n".join(line for line in lines if '"proposal_received"' not in line) + "\n")
    result = CliRunner().invoke(
        app, ["replay", "logs/run.jsonl", "--program", "policies/p.car", "--format", "sarif"]
    )
    out = result.stdout  # (stderr warns that no run could be judged)
    located = [
        r["locations"][0]["physicalLocation"]["artifactLocation"]
        for r in json.loads(out)["runs"][0]["results"]
        if r["ruleId"] == "replay/not-judged"
    ]
    assert located and all(
        a == {"uri": "logs/run.jsonl", "uriBaseId": "%SRCROOT%"} for a in located
    )


def test_calls_a_budget_skipped_are_listed_as_not_re_decided(tmp_path: Path) -> None:
    """A trial: raising the budget that skipped two calls replayed as "0 changes, 2
    unchanged", the skipped calls neither judged nor listed: a budget increase looked like it
    changed nothing. They are listed under what replay does not reconstruct."""
    program, log = budget_skipped_log(tmp_path)
    larger = tmp_path / "larger.car"
    larger.write_text(program.read_text().replace("max_tool_calls 2", "max_tool_calls 3"))
    _, _, report = changes(log, larger)
    assert report["not_reconstructed"] == {
        "actions skipped before any policy decided (a spent budget, an earlier abort): not"
        " re-decided (a candidate with a larger budget may run them)": 2
    }


def test_a_recorded_proposal_with_null_parameters_is_not_judged(tmp_path: Path) -> None:
    """A trial: a log whose recorded action had `parameters: null` (no runtime writes that)
    was judged on no parameters, and the policy's fail-closed deny reported as a change
    `allow -> deny`. The run is one that cannot be judged, saying why."""
    source, log = _pay_log(tmp_path, ".jsonl")
    lines = log.read_text().splitlines()
    damaged = []
    for line in lines:
        event = json.loads(line)
        if event["kind"] == "proposal_received":
            event["data"]["proposal"]["actions"][0]["parameters"] = None
            line = json.dumps(event)
        damaged.append(line)
    log.write_text("\n".join(damaged) + "\n")
    _, _, report = changes(log, source)
    assert report["changes"] == 0, report
    (unjudged,) = report["unjudged"]
    assert "the recorded proposal is not valid: actions.0.parameters" in unjudged["reason"]


def test_a_tool_neither_program_declares_is_not_a_drop(tmp_path: Path) -> None:
    """A trial: with --baseline, runs of a tool neither program declares were "runs the
    candidate cannot run (it dropped what they use)", failing the gate; nothing was dropped
    between the two programs. They are runs that cannot be judged, saying so."""
    log = _fetch_and_deploy_log(tmp_path)
    baseline, candidate = tmp_path / "old.car", tmp_path / "new.car"
    baseline.write_text("tool fetch(url: string)\n")
    candidate.write_text('tool fetch(url: string)\npolicy p: deny fetch when params.url == "y"\n')
    code, _, report = changes(log, candidate, "--baseline", str(baseline))
    assert code == 0, report
    (unjudged,) = report["unjudged"]
    assert unjudged["reason"].endswith("; neither program can run it"), unjudged
    assert report["gate"] == []
    # the candidate alone lacking it (the baseline has it) is a drop, as before
    complete = tmp_path / "all.car"
    complete.write_text("tool fetch(url: string)\ntool deploy(env: string)\n")
    code, _, report = changes(log, baseline, "--baseline", str(complete))
    assert code == 1 and report["gate"], report
    # ... and so when the baseline lacks another thing the run uses (a review: it read
    # "neither program can run it", and the gate missed the candidate's drop)
    both = tmp_path / "both.jsonl"
    rt = Runtime(events=EventLog([JsonlSink(both)]))
    rt.register_tool("fetch", lambda url: url)
    rt.register_tool("deploy", lambda env: env)
    calls = [
        ir.Action(id="a", type="tool_call", tool="fetch", parameters={"url": "https://x"}),
        ir.Action(id="b", type="tool_call", tool="deploy", parameters={"env": "prod"}),
    ]
    rt.execute(ir.ActionProposal(id="p", actions=calls))
    rt.close()
    other = tmp_path / "other.car"
    other.write_text("tool deploy(env: string)\n")
    code, _, report = changes(both, baseline, "--baseline", str(other))
    assert code == 1 and report["gate"], report
    # a run the baseline cannot run is shown at the baseline program in SARIF, not as a log
    _, sarif = cli(*_args(log, candidate, "sarif", "any")[:4], "--baseline", str(baseline),
                   "--format", "sarif")  # fmt: skip
    located = [
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        for r in json.loads(sarif)["runs"][0]["results"]
        if r["ruleId"] == "replay/not-judged"
    ]
    assert located and all(uri.endswith("new.car") for uri in located), located
