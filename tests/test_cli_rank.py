"""`carlang rank`: ranking a plan, explaining it, exporting it, sweeping its settings."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import os
import sys
from pathlib import Path

import pytest
from carlang_runtime.engine import EventLog, JsonlSink, Runtime
from typer.testing import CliRunner

from carlang.cli import app
from tests.golden_files import check_golden

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "planning" / "deploy_plans.car"
GOLDEN = Path(__file__).parent / "golden" / "rank"

PROGRAM = """\
tool fetch(url: string)
tool deploy(env: "staging" | "prod")
tool flaky()

policy https_only: deny fetch when !params.url.startsWith("https://")
  message "fetch over https only"
policy prod: require_approval deploy when params.env == "prod"

proposal careful { get = fetch(url: "https://ci/build")  ship = deploy(env: "staging") after get }
proposal bold { ship = deploy(env: "prod") }
proposal sloppy { get = fetch(url: "http://ci/build") }
proposal lucky { f = flaky() }

plan release {
  candidates careful, bold, sloppy
  cost_weight 0.2
}
plan gamble { candidates careful, lucky }
"""


def rank(tmp_path: Path, *args: str, program: str = PROGRAM) -> tuple[int, str, str]:
    path = tmp_path / "p.car"
    path.write_text(program)
    result = runner.invoke(app, ["rank", str(path), *args])
    return result.exit_code, result.stdout, result.stderr


def table_cells(out: str) -> list[list[str]]:
    """The header and the rows of the table `rank` draws, as lists of cells."""
    return [
        [cell.strip() for cell in line[1:-1].replace("┃", "│").split("│")]
        for line in out.splitlines()
        if line[:1] in ("┃", "│")
    ]


def test_the_example_ranks_and_explains(update_goldens: bool) -> None:
    result = runner.invoke(app, ["rank", str(EXAMPLE), "--explain"])
    assert result.exit_code == 0, result.output
    check_golden(GOLDEN / "deploy_plans.txt", result.stdout, update_goldens)


def test_a_table_with_every_feature(tmp_path: Path) -> None:
    code, out, _ = rank(tmp_path, "--plan", "release")
    assert code == 0
    header, *rows = table_cells(out)
    for column in ("score", "validity", "cost", "policy", "revers.", "monte carlo", "tokens"):
        assert column in header
    assert [row[1] for row in rows] == ["careful", "bold", "sloppy"]
    assert rows[2][3] == "no"  # sloppy is denied by https_only: invalid


def test_explain_names_the_feature_the_action_and_the_policy(tmp_path: Path) -> None:
    code, out, _ = rank(tmp_path, "--plan", "release", "--explain")
    assert code == 0
    assert "release: careful wins with score" in out
    assert "bold lost" in out and "ship (p.car:10:17) will need approval by prod" in out
    assert "sloppy is invalid:" in out
    assert "get (p.car:11:19) will be denied by https_only: fetch over https only" in out


def test_json_and_csv(tmp_path: Path) -> None:
    code, out, _ = rank(tmp_path, "--plan", "release", "--format", "json", "--explain")
    document = json.loads(out)
    assert code == 0 and document["plan"] == "release"
    assert document["config"]["cost_weight"] == 0.2
    assert [s["proposal_id"] for s in document["ranking"]] == ["careful", "bold", "sloppy"]
    assert document["explanation"][0].startswith("release: careful wins")
    code, out, _ = rank(tmp_path, "--plan", "release", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["candidate"] for r in rows] == ["careful", "bold", "sloppy"]
    assert rows[1]["approvals"] == "1" and rows[2]["valid"] == "False"


def test_json_findings_carry_the_codes_check_gives_the_same_verdicts() -> None:
    """A policy finding has the code `carlang check` gives the plan's action (a certain deny
    CL0520, an approval CL0521), so that a client acts on it without reading the message."""
    from carlang_runtime.policy import POLICY_ASKS, POLICY_DENIES, POLICY_MAY_DENY

    from carlang.codes import all_codes

    known = {c.code: c.name for c in all_codes()}
    names = {code: known[code] for code in (POLICY_DENIES, POLICY_ASKS, POLICY_MAY_DENY)}
    assert names == {
        "CL0520": "policy-denies-action",
        "CL0521": "policy-requires-approval",
        "CL0522": "policy-may-deny",
    }


def test_each_finding_of_the_json_ranking_has_its_code(tmp_path: Path) -> None:
    code, out, _ = rank(tmp_path, "--plan", "release", "--format", "json")
    assert code == 0
    by_id = {s["proposal_id"]: s for s in json.loads(out)["ranking"]}
    policy = {
        s: [(f["code"], f["action_id"]) for f in by_id[s]["findings"] if f["feature"] == "policy"]
        for s in by_id
    }
    assert policy == {"careful": [], "bold": [("CL0521", "ship")], "sloppy": [("CL0520", "get")]}


def test_set_overrides_the_plan(tmp_path: Path) -> None:
    _, out, _ = rank(tmp_path, "--plan", "release", "--format", "json", "--set", "cost_weight=0.9")
    assert json.loads(out)["config"]["cost_weight"] == 0.9
    code, _, err = rank(tmp_path, "--plan", "release", "--set", "cost_wieght=0.9")
    assert code == 2 and "did you mean 'cost_weight'" in err
    code, _, err = rank(tmp_path, "--plan", "release", "--set", "cost_weight")
    assert code == 2 and "NAME=VALUE" in err
    code, _, err = rank(tmp_path, "--plan", "release", "--set", "cost_weight=2")
    assert code == 2 and "cost_weight" in err


def test_a_sweep_writes_csv_and_summarises_winner_changes(tmp_path: Path) -> None:
    code, out, err = rank(tmp_path, "--plan", "release", "--sweep", "approval_penalty=0:4:1")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 5 * 3 and set(rows[0]) >= {"approval_penalty", "rank", "candidate"}
    assert [r["approval_penalty"] for r in rows[::3]] == ["0.0", "1.0", "2.0", "3.0", "4.0"]
    assert err.splitlines()[-1].startswith("the winner")
    code, out, _ = rank(tmp_path, "--plan", "release", "--sweep", "seed=1,2", "--format", "json")
    assert '"seed": 1\n' in out and '"seed": 1.0' not in out  # an integer setting: an int
    assert [p["settings"] for p in json.loads(out)] == [{"seed": 1}, {"seed": 2}]
    # a swept seed is one column (the table's own `seed` column is the same value)
    args = ("--sweep", "seed=1,2", "--sweep", "monte_carlo_trials=100,200")
    code, out, _ = rank(tmp_path, "--plan", "release", *args, "--format", "csv")
    header, *rows = list(csv.reader(io.StringIO(out)))
    assert code == 0 and header.count("seed") == 1 and header[:2] == ["seed", "monte_carlo_trials"]
    assert [row[:2] for row in rows[::3]] == [
        ["1", "100"],
        ["1", "200"],
        ["2", "100"],
        ["2", "200"],
    ]
    code, _, err = rank(tmp_path, "--plan", "release", "--sweep", "x=1", "--format", "table")
    assert code == 2 and "csv or json" in err


def test_a_setting_swept_twice_or_also_set_is_a_usage_error(tmp_path: Path) -> None:
    code, out, err = rank(
        tmp_path,
        "--plan",
        "release",
        "--sweep",
        "cost_weight=0:1:0.5",
        "--sweep",
        "cost_weight=0,1",
    )
    assert (code, out) == (2, "")
    assert err == (
        "error: --sweep cost_weight is given twice: sweep a setting once"
        " (list every value in one --sweep cost_weight=V1,V2,...)\n"
    )
    code, out, err = rank(
        tmp_path, "--plan", "release", "--sweep", "cost_weight=0,1", "--set", "cost_weight=0.2"
    )
    assert (code, out) == (2, "")
    assert err.startswith("error: --set cost_weight and --sweep cost_weight: the sweep sets")
    code, _, _ = rank(
        tmp_path, "--plan", "release", "--sweep", "cost_weight=0,1", "--set", "seed=3"
    )
    assert code == 0


def test_plot_with_two_sweeps_is_refused_before_anything_runs(tmp_path: Path) -> None:
    args = ["--plan", "release", "--sweep", "cost_weight=0,1", "--sweep", "seed=1,2"]
    code, out, err = rank(tmp_path, *args, "--plot", str(tmp_path / "s.svg"))
    assert (code, out) == (2, "")  # no csv: refused before the sweep
    assert err == "error: --plot draws a sweep over one setting (give one --sweep)\n"


def test_feedback_from_an_event_log_changes_the_ranking(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    rt = Runtime(events=EventLog([JsonlSink(log)]))
    rt.register_tool("flaky", lambda: 1 / 0)
    rt.execute({"id": "past", "actions": [{"id": "f", "type": "tool_call", "tool": "flaky"}]})
    rt.close()
    _, before, _ = rank(tmp_path, "--plan", "gamble", "--format", "json")
    assert json.loads(before)["ranking"][0]["proposal_id"] == "lucky"  # one action: cheaper
    code, after, err = rank(
        tmp_path, "--plan", "gamble", "--format", "json", "--feedback", str(log)
    )
    assert "warning" not in err  # it knows `flaky`
    ranking = json.loads(after)["ranking"]
    assert code == 0 and ranking[0]["proposal_id"] == "careful"
    lucky = ranking[1]
    assert lucky["monte_carlo_success"] == 0.0 and lucky["historical_confidence"] == 0.0
    code, _, err = rank(tmp_path, "--plan", "gamble", "--feedback", str(tmp_path / "no.db"))
    assert code == 2 and "no such file" in err


def test_feedback_that_knows_none_of_the_tools_is_warned_about(tmp_path: Path) -> None:
    log = tmp_path / "other_agent.jsonl"
    rt = Runtime(events=EventLog([JsonlSink(log)]))
    rt.register_tool("send_mail", lambda: None)
    rt.execute({"id": "past", "actions": [{"id": "m", "type": "tool_call", "tool": "send_mail"}]})
    rt.close()
    code, out, err = rank(tmp_path, "--plan", "gamble", "--feedback", str(log))
    assert code == 0 and "lucky" in out
    assert f"warning: --feedback {log} has no history of any tool these plans call" in err
    assert "(fetch, flaky)" not in err and "(deploy, fetch, flaky)" in err
    assert "(it knows send_mail): they are taken as unknown, each call succeeding at" in err
    assert "unknown_tool_confidence (0.5 unless set, as CAR does)" in err
    assert "learns nothing" not in err  # it does: every call at 0.5 lowers the scores
    _, plain, _ = rank(tmp_path, "--plan", "gamble", "--format", "json")
    _, with_log, _ = rank(tmp_path, "--plan", "gamble", "--format", "json", "--feedback", str(log))
    scores = [json.loads(doc)["ranking"][0]["score"] for doc in (plain, with_log)]
    assert scores[1] < scores[0]


@pytest.mark.parametrize(
    ("args", "program", "code", "message"),
    [
        (("--plan", "nope"), PROGRAM, 2, "no plan `nope`"),
        ((), "tool t()\n", 2, "no plans and no proposals"),
        ((), "tool t(\n", 1, "error"),
    ],
)
def test_problems(
    tmp_path: Path, args: tuple[str, ...], program: str, code: int, message: str
) -> None:
    got, _, err = rank(tmp_path, *args, program=program)
    assert got == code and message in err


def test_without_plans_every_proposal_is_a_candidate(tmp_path: Path) -> None:
    program = "tool t()\nproposal one { a = t() }\nproposal two { a = t()  b = t() after a }\n"
    code, out, _ = rank(tmp_path, program=program)
    assert code == 0 and [row[1] for row in table_cells(out)[1:]] == ["one", "two"]


def test_no_valid_candidate_exits_1(tmp_path: Path) -> None:
    program = PROGRAM.replace("candidates careful, bold, sloppy", "candidates sloppy")
    code, out, _ = rank(tmp_path, "--plan", "release", program=program)
    assert code == 1 and "sloppy" in out


def test_the_table_says_why_each_invalid_candidate_is_so(tmp_path: Path) -> None:
    """Without --explain an invalid candidate showed `no` and nothing more, so a tool's typo
    went unseen; and two invalid candidates of equal score had a tie-break line saying one
    'wins' (a trial)."""
    code, out, _ = rank(tmp_path, "--plan", "release")
    assert code == 0
    assert out.splitlines()[-1] == (
        "sloppy is invalid: get (p.car:11:19) will be denied by https_only: fetch over https only"
    )
    typo = PROGRAM.replace("proposal lucky { f = flaky() }", "proposal lucky { f = flakey() }")
    typo = typo.replace("candidates careful, bold, sloppy", "candidates lucky, sloppy")
    code, out, _ = rank(tmp_path, "--plan", "release", program=typo)
    assert code == 1
    assert "tie-break" not in out
    assert out.splitlines()[-2:] == [
        "lucky is invalid: f (p.car:12:18) error: tool 'flakey' is not registered",
        "sloppy is invalid: get (p.car:11:19) will be denied by https_only: fetch over https only",
    ]


@pytest.mark.slow
@pytest.mark.parametrize("columns", [220, 100])
def test_at_a_terminal_no_value_is_cut(tmp_path: Path, columns: int) -> None:
    """At 220 columns the table has its natural width; at 100 (narrower than the narrowest
    it can be) headers wrap at their spaces, but names and numbers stay whole."""
    pexpect = pytest.importorskip("pexpect", reason="pexpect is not installed")
    (tmp_path / "p.car").write_text(PROGRAM)
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'runtime'}", "TERM": "xterm"}
    env["NO_COLOR"] = "1"
    argv = f"{sys.executable} -m carlang rank {tmp_path / 'p.car'} --plan release"
    shown = pexpect.run(argv, env=env, encoding="utf-8", timeout=30, dimensions=(40, columns))
    rows = [line for line in shown.replace("\r", "").splitlines() if line.startswith("│")]
    cells = [[cell.strip() for cell in row[1:-1].split("│")] for row in rows]
    assert [row[1] for row in cells] == ["careful", "bold", "sloppy"]  # one line each
    assert all(len(row[2]) == len("0.0000") for row in cells)  # each score whole
    assert ("monte carlo" in shown) == (columns == 220)  # the header wraps only when narrow


def test_a_program_without_policies_has_no_policy_factor(tmp_path: Path) -> None:
    bare = "tool a(x: int)\nproposal p1 { s = a(x: 1) }\nproposal p2 { s = a(x: 2) }\n"
    bare += "plan t { candidates p1, p2 }\n"
    code, out, _ = rank(tmp_path, "--format", "json", program=bare)
    assert code == 0, out
    assert all("policy" not in scored["factors"] for scored in json.loads(out)["ranking"])
    code, out, _ = rank(tmp_path, program=bare)
    header, *rows = table_cells(out)
    assert {row[header.index("policy")] for row in rows} == {"-"}


def test_plot_without_matplotlib_is_a_usage_error_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rank --sweep printed the whole sweep, then exited 2; planner search searched, said
    "no plot" and exited 0. Both now stop first, saying how to install it."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` fails
    said = "error: --plot needs matplotlib: pip install 'carlang[plot]'\n"
    args = ("--plan", "release", "--sweep", "cost_weight=0,1", "--format", "csv")
    code, out, err = rank(tmp_path, *args, "--plot", str(tmp_path / "x.png"))
    assert (code, out, err) == (2, "", said)
    outcomes = tmp_path / "o.csv"
    outcomes.write_text("task,candidate,success\nrelease,careful,1\nrelease,bold,0\n")
    (tmp_path / "space.toml").write_text("cost_weight = [0, 1]\n")
    search = ["planner", "search", str(tmp_path / "p.car"), "--outcomes", str(outcomes)]
    search += ["--space", str(tmp_path / "space.toml"), "--workers", "1"]
    result = runner.invoke(app, [*search, "--plot", str(tmp_path / "s.png")])
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", said)
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "s.png").exists()


@pytest.mark.skipif(
    importlib.util.find_spec("matplotlib") is None, reason="needs matplotlib (the plot extra)"
)
def test_a_plot_format_matplotlib_cannot_draw_is_a_usage_error_before_any_work(
    tmp_path: Path,
) -> None:
    """`--plot x.txt` was refused only after the work: a sweep's CSV printed, a search's
    `-o` written, then exit 2. The suffix is now checked first, as matplotlib is."""
    args = ("--plan", "release", "--sweep", "cost_weight=0,1", "--format", "csv")
    code, out, err = rank(tmp_path, *args, "--plot", str(tmp_path / "x.txt"))
    assert (code, out) == (2, "")
    assert err.startswith(f"error: --plot {tmp_path / 'x.txt'}: matplotlib cannot draw a .txt")
    assert "end the name with .png, .svg or .pdf, or " in err
    code, out, err = rank(tmp_path, *args, "--plot", str(tmp_path / "x"))
    assert code == 2 and "cannot draw a file without a suffix" in err
    outcomes = tmp_path / "o.csv"
    outcomes.write_text("task,candidate,success\nrelease,careful,1\nrelease,bold,0\n")
    (tmp_path / "space.toml").write_text("cost_weight = [0, 1]\n")
    search = ["planner", "search", str(tmp_path / "p.car"), "--outcomes", str(outcomes)]
    search += ["--space", str(tmp_path / "space.toml"), "--workers", "1"]
    best = tmp_path / "best.json"
    result = runner.invoke(app, [*search, "-o", str(best), "--plot", str(tmp_path / "s.txt")])
    assert (result.exit_code, result.stdout) == (2, "") and not best.exists()
    assert "matplotlib cannot draw a .txt file" in result.stderr
    code, out, _ = rank(tmp_path, *args, "--plot", str(tmp_path / "s.PDF"))
    assert code == 0 and (tmp_path / "s.PDF").read_bytes()[:4] == b"%PDF"


def test_a_program_with_errors_shows_the_warnings_check_shows(tmp_path: Path) -> None:
    """Ranking a program with errors printed every warning, those a `# carlang: allow`
    pragma accepts too, which `carlang check` leaves out."""
    program = PROGRAM.replace(
        'proposal bold { ship = deploy(env: "prod") }',
        'proposal bold {\n  ship = deploy(env: "prod")  # carlang: allow CL0521\n}',
    ).replace("candidates careful, bold, sloppy", "candidates careful, bold, sloppy, nobody")
    code, out, err = rank(tmp_path, "--plan", "release", program=program)
    assert code == 1 and out == ""
    assert "error[CL0202]: no proposal is called `nobody`" in err
    check = runner.invoke(app, ["check", str(tmp_path / "p.car")])
    assert "CL0521" not in check.stdout
    assert "CL0521" not in err


def test_a_sweep_without_a_valid_candidate_exits_1_and_explain_is_refused(
    tmp_path: Path,
) -> None:
    """A sweep where no candidate was valid exited 0 (rank exits 1); `--explain` with
    `--sweep` was quietly ignored (as with csv, it is now a usage error)."""
    code, out, err = rank(tmp_path, "--plan", "release", "--sweep", "cost_weight=0,1")
    assert code == 0 and "cost_weight=0: careful" in err
    denied = PROGRAM.replace("candidates careful, bold, sloppy", "candidates sloppy")
    code, out, err = rank(
        tmp_path, "--plan", "release", "--sweep", "cost_weight=0,1", program=denied
    )
    assert code == 1 and "no valid candidate" in err and out.startswith("cost_weight,task")
    code, out, err = rank(tmp_path, "--plan", "release", "--sweep", "cost_weight=0,1", "--explain")
    assert (code, out) == (2, "")
    assert err.startswith("error: --explain explains one ranking, and a sweep ranks at every")
    search_help = runner.invoke(app, ["planner", "search", "--help"]).stdout
    assert "bootstrap" not in search_help and "Seed of the split" in " ".join(search_help.split())


def test_json_candidates_are_judged_against_the_program_given(tmp_path: Path) -> None:
    """A trial: an agent's JSON candidate naming the capability it runs under could not be
    ranked at all (`which is not given`); with --program, the program's tools, policies,
    capabilities and budgets judge it, as verify --program does."""
    program = tmp_path / "gate.car"
    program.write_text(
        "tool fetch(url: string)\ntool shell(cmd: string)\n"
        "capability agent { tools allow fetch }\n"
        'policy https_only: deny fetch when !params.url.startsWith("https://")\n'
        '  message "fetch over https only"\n'
    )

    def candidate(name: str, tool: str, **params: str) -> dict[str, object]:
        action = {"id": "a", "type": "tool_call", "tool": tool, "parameters": params}
        return {"id": name, "source": "model", "actions": [action], "capability": "agent"}

    group = {
        "id": "turn",
        "candidates": [
            candidate("plain", "fetch", url="http://x"),
            candidate("secure", "fetch", url="https://x"),
            candidate("shell", "shell", cmd="ls"),
        ],
    }
    groups = tmp_path / "turns.jsonl"
    groups.write_text(json.dumps(group) + "\n")
    alone = runner.invoke(app, ["rank", str(groups), "--format", "json"])
    assert "which is not given" in alone.output
    judged = runner.invoke(
        app, ["rank", str(groups), "--program", str(program), "--format", "json"]
    )
    assert judged.exit_code == 0, judged.output
    rows = json.loads(judged.stdout)["rows"]
    ranked = [(row["candidate"], row["valid"]) for row in rows]
    assert ranked[0] == ("secure", True)
    assert dict(ranked) == {"secure": True, "plain": False, "shell": False}
    usage = runner.invoke(app, ["rank", str(groups), "--program", str(groups)])
    assert usage.exit_code == 2 and "name a .car program" in usage.output
