"""`carlang rank` on datasets: several programs, folders, CAR JSON proposals, JSONL groups;
one tidy table; tie-breaks reported."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from carlang_runtime.experiments.table import TABLE_COLUMNS
from typer.testing import CliRunner

from carlang.cli import app

runner = CliRunner()

PROGRAM = """\
tool fetch(url: string)
tool deploy(env: "staging" | "prod")

proposal one { get = fetch(url: "https://a") }
proposal two { get = fetch(url: "https://b") }
proposal both { get = fetch(url: "https://a")  ship = deploy(env: "staging") after get }

plan first { candidates both, one }
plan second { candidates two, one }
"""


def call(tool: str, **params: str) -> dict[str, object]:
    return {"id": "a", "type": "tool_call", "tool": tool, "parameters": params}


def proposal(name: str, *actions: dict[str, object]) -> dict[str, object]:
    return {"id": name, "actions": list(actions), "timestamp": "2026-01-01T00:00:00Z"}


def test_every_plan_of_several_programs_and_json_in_one_table(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "a.car").write_text(PROGRAM)
    (folder / "b.car").write_text(PROGRAM.replace("plan second", "plan third"))
    (folder / "pair.json").write_text(json.dumps([proposal("x", call("t")), proposal("y")]))
    group = {"id": "g1", "candidates": [proposal("p", call("t")), proposal("q", call("t"))]}
    (folder / "groups.jsonl").write_text(json.dumps(group) + "\n")
    result = runner.invoke(app, ["rank", str(folder), "--format", "csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert tuple(rows[0]) == TABLE_COLUMNS
    assert sorted({r["task"] for r in rows}) == [
        "a:first",
        "a:second",
        "b:first",
        "b:third",
        "g1",
        "pair",
    ]
    assert len({r["config_hash"] for r in rows}) == 1 and rows[0]["carlang_version"]
    by_task = {}
    for row in rows:
        by_task.setdefault(row["task"], []).append(row)
    # p and q are identical: q loses by input order, reported on p's row
    assert [(r["candidate"], r["tie_break"]) for r in by_task["g1"]] == [
        ("p", "input order"),
        ("q", ""),
    ]
    # y has no action: it scores differently, no tie
    assert [r["tie_break"] for r in by_task["pair"]] == ["", ""]


def test_the_table_says_when_a_tie_break_decided(tmp_path: Path) -> None:
    group = {"id": "g", "candidates": [proposal("p", call("t")), proposal("q", call("t"))]}
    path = tmp_path / "g.jsonl"
    path.write_text(json.dumps(group) + "\n")
    result = runner.invoke(app, ["rank", str(path)])
    assert result.exit_code == 0, result.output
    assert "tie-break: p and q score the same" in result.stdout
    assert "p wins by input order" in result.stdout


def test_several_plans_of_one_program_are_all_ranked(tmp_path: Path) -> None:
    path = tmp_path / "p.car"
    path.write_text(PROGRAM)
    result = runner.invoke(app, ["rank", str(path)])
    assert result.exit_code == 0, result.output
    assert "== first" in result.stdout and "== second" in result.stdout
    result = runner.invoke(app, ["rank", str(path), "--format", "json"])
    document = json.loads(result.stdout)
    assert {r["task"] for r in document["rows"]} == {"first", "second"}
    assert "plan" not in document  # several tasks: only the table


def test_bad_datasets_say_where(tmp_path: Path) -> None:
    path = tmp_path / "g.jsonl"
    path.write_text('{"id": "g", "candidates": [' + json.dumps(proposal("p")) + "]}\n{oops\n")
    result = runner.invoke(app, ["rank", str(path)])
    assert result.exit_code == 2 and f"{path}:2:2: error: malformed JSON: " in result.stderr
    path.write_text('{"id": "g", "candidates": []}\n')
    result = runner.invoke(app, ["rank", str(path)])
    assert result.exit_code == 2 and "non-empty array of proposals" in result.stderr
    # what verify refuses, rank refuses: NaN (which a lenient decoder reads), a lone surrogate
    # (which reached the ranking and failed there, an internal error)
    write = {"id": "a", "type": "state_write", "parameters": {"key": "k", "value": 1}}
    text = json.dumps({"id": "x", "actions": [write]})
    for suffix, bad, said in [
        (".json", text.replace("1}", "NaN}"), "the constant NaN is not JSON"),
        (".jsonl", text.replace("1}", "NaN}"), "the constant NaN is not JSON"),
        (".json", text.replace('"a"', '"\\ud83d"'), "lone surrogate"),
    ]:
        bad_path = tmp_path / f"bad{suffix}"
        bad_path.write_text(bad + "\n")
        result = runner.invoke(app, ["rank", str(bad_path)])
        assert result.exit_code == 2, result.output
        assert f"{bad_path}:1:" in result.stderr and said in result.stderr
    twice = json.dumps({"id": "g", "candidates": [proposal("p")]}) + "\n"
    path.write_text(twice * 2)
    result = runner.invoke(app, ["rank", str(path)])
    assert result.exit_code == 2 and "two tasks are called 'g'" in result.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(app, ["rank", str(empty)])
    assert result.exit_code == 2 and "no .car, .json or .jsonl file" in result.stderr
    result = runner.invoke(app, ["rank", str(tmp_path / "nope.car")])
    assert result.exit_code == 2 and "no such file" in result.stderr


def test_json_keeps_every_tasks_config_and_explanation_csv_refuses_explain(
    tmp_path: Path,
) -> None:
    groups = [
        {"id": "g1", "candidates": [proposal("p"), proposal("q", call("t"))]},
        {"id": "g2", "candidates": [proposal("r", call("t"))]},
    ]
    path = tmp_path / "two.jsonl"
    path.write_text("".join(json.dumps(g) + "\n" for g in groups))
    result = runner.invoke(app, ["rank", str(path), "--format", "json", "--explain"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert [t["plan"] for t in document["tasks"]] == ["g1", "g2"]
    for task in document["tasks"]:
        assert {"config", "config_hash", "ranking", "explanation"} <= set(task)
    assert document["tasks"][0]["explanation"][0] == "g1: p wins with score 0.9697"
    assert len(document["rows"]) == 3
    result = runner.invoke(app, ["rank", str(path), "--format", "csv", "--explain"])
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        "error: --explain has no place in csv: use --format table or json with it\n"
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"tools": "fetch"}, "g.jsonl:1: a group's tools must be an array of tool names"),
        ({"tools": [{"name": 5}]}, "g.jsonl:1: invalid tools: invalid tool list: [0].name"),
        (
            {"policies": [{"rule": "nope", "name": "x"}]},
            "g.jsonl:1: invalid policy 1 (`x`): its `rule` must be one of allow_tool_param, cel,",
        ),
        (
            {"policies": [{"rule": "cel", "name": "p", "effect": "maybe"}]},
            "g.jsonl:1: invalid policy 1 (`p`): effect: Input should be 'deny'",
        ),
        (
            {"candidates": [proposal("p"), proposal("p")]},
            "g.jsonl:1: candidates 1 and 2 have the id `p`: a task's candidate ids must be unique",
        ),
        # a misspelt key is no part of the task: the policies or tools it holds would be lost
        (
            {"polices": [{"rule": "cel", "name": "p", "effect": "deny", "when": "true"}]},
            "g.jsonl:1: a group has no key `polices` (did you mean `policies`?)",
        ),
        ({"tols": ["t"]}, "g.jsonl:1: a group has no key `tols` (did you mean `tools`?)"),
        (
            {"bogus": 1},
            "g.jsonl:1: a group has no key `bogus` (it takes `id`, `candidates`, `tools`,"
            " `state`, `policies`)",
        ),
    ],
)
def test_a_group_part_that_cannot_be_used_is_named_with_its_line(
    tmp_path: Path, extra: dict[str, object], message: str
) -> None:
    path = tmp_path / "g.jsonl"
    path.write_text(json.dumps({"id": "g", "candidates": [proposal("p")], **extra}) + "\n")
    result = runner.invoke(app, ["rank", str(path)])
    assert result.exit_code == 2 and message in result.stderr, result.stderr


def test_a_jsonl_file_of_no_task_says_so(tmp_path: Path) -> None:
    for text in ("", "\n  \n\n"):
        path = tmp_path / "empty.jsonl"
        path.write_text(text)
        result = runner.invoke(app, ["rank", str(path)])
        assert (result.exit_code, result.stdout) == (2, "")
        assert result.stderr.startswith(f"error: {path}: the file holds no task (it is empty")
        assert "None" not in result.stderr


def test_plan_chooses_a_task_of_json_and_jsonl_by_its_id(tmp_path: Path) -> None:
    groups = [
        {"id": "g1", "candidates": [proposal("p"), proposal("q", call("t"))]},
        {"id": "g2", "candidates": [proposal("r", call("t")), proposal("s")]},
    ]
    path = tmp_path / "two.jsonl"
    path.write_text("".join(json.dumps(g) + "\n" for g in groups))
    (tmp_path / "one.json").write_text(json.dumps(groups[0] | {"id": "solo"}))
    result = runner.invoke(app, ["rank", str(path), "--plan", "g2", "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert {row["task"] for row in csv.DictReader(io.StringIO(result.stdout))} == {"g2"}
    result = runner.invoke(app, ["rank", str(tmp_path), "--plan", "solo", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["plan"] == "solo"
    # one task chosen: a sweep has its one plan
    swept = ["rank", str(path), "--plan", "g1", "--sweep", "cost_weight=0,1"]
    result = runner.invoke(app, swept)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("cost_weight,task,")
    # an id no task has: a usage error, with the closest id
    result = runner.invoke(app, ["rank", str(path), "--plan", "g22"])
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == "error: no plan `g22` in any input (did you mean `g2`?)\n"
    result = runner.invoke(app, ["rank", str(path), "--plan", "zzz"])
    assert "(plans and tasks: g1, g2)" in result.stderr
    outcomes = tmp_path / "o.csv"
    outcomes.write_text("task,candidate,success\ng1,p,1\n")
    result = runner.invoke(
        app, ["planner", "eval", str(path), "--outcomes", str(outcomes), "--plan", "nope"]
    )
    assert result.exit_code == 2 and "no plan `nope` in any input" in result.stderr


def test_plan_of_a_program_is_suggested_when_misspelt(tmp_path: Path) -> None:
    path = tmp_path / "p.car"
    path.write_text(PROGRAM)
    result = runner.invoke(app, ["rank", str(path), "--plan", "frist"])
    assert result.exit_code == 2
    assert result.stderr == f"error: no plan `frist` in {path} (did you mean `first`?)\n"


def test_a_folder_skips_the_files_that_are_no_dataset_and_says_so(tmp_path: Path) -> None:
    group = {"id": "g", "candidates": [proposal("p", call("t")), proposal("q")]}
    (tmp_path / "tasks.jsonl").write_text(json.dumps(group) + "\n")
    event = {"seq": 1, "kind": "run_started", "trace_id": "r1", "data": {"scope": {}}}
    (tmp_path / "runs.jsonl").write_text(json.dumps(event) + "\n")
    (tmp_path / "feedback.json").write_text(json.dumps({"format": 1, "tool_success_rates": {}}))
    search = {"objective": "top1", "best": {}, "tried": [], "config": {"cost_weight": 0.5}}
    (tmp_path / "best.json").write_text(json.dumps(search))
    (tmp_path / "config.json").write_text(json.dumps({"cost_weight": 0.3}))
    result = runner.invoke(app, ["rank", str(tmp_path), "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert {row["task"] for row in csv.DictReader(io.StringIO(result.stdout))} == {"g"}
    assert result.stderr.splitlines() == [
        f"note: skipped {tmp_path / 'best.json'}: a search's output (`planner search -o`'s,"
        " for --config), not a dataset",
        f"note: skipped {tmp_path / 'config.json'}: a planner config (for --config), not a dataset",
        f"note: skipped {tmp_path / 'feedback.json'}: a feedback file (`planner learn`'s, for"
        " --feedback), not a dataset",
        f"note: skipped {tmp_path / 'runs.jsonl'}: an event log of recorded runs (for"
        " --outcomes, or --feedback), not a dataset",
    ]
    # given by name: an error saying what it is and which option takes it
    log = tmp_path / "runs.jsonl"
    result = runner.invoke(app, ["rank", str(log)])
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        f"error: {log}: an event log of recorded runs (for --outcomes, or --feedback), not a"
        " dataset of tasks to rank\n"
    )


def test_a_file_of_another_kind_is_named_with_the_option_that_takes_it(tmp_path: Path) -> None:
    """A trial: `rank space.toml` (or outcomes.csv) was parsed as a program (`unexpected
    cost_weight`); `--config feedback.json` said `no planner setting is called 'format'`,
    `--config space.toml` that a range is not a number; `--feedback p.car` or a CSV said
    `malformed JSON`, `--feedback best.json` only that it is no feedback file."""
    program = tmp_path / "p.car"
    program.write_text(PROGRAM)
    space = tmp_path / "space.toml"
    space.write_text("cost_weight = { min = 0.0, max = 0.5, step = 0.1 }\nseed = [1, 2]\n")
    outcomes = tmp_path / "outcomes.csv"
    outcomes.write_text("task,candidate,success\nfirst,one,1\n")
    feedback = tmp_path / "feedback.json"
    feedback.write_text(
        json.dumps({"format": "carlang-feedback/1", "tool_success_rates": {"fetch": 0.9}})
    )
    search = {"objective": "top1", "best": {}, "tried": [], "config": {"cost_weight": 0.5}}
    (tmp_path / "best.json").write_text(json.dumps(search))
    tasks = "tasks are .car programs, CAR JSON proposals (.json) and JSONL groups (.jsonl)"
    expected = {
        (str(space),): f"error: {space}: a TOML file (planner settings go to --config; a search"
        f" space to planner search --space), not a dataset of tasks to rank ({tasks})",
        (str(outcomes),): f"error: {outcomes}: a CSV file (recorded outcomes go to planner eval"
        f" --outcomes), not a dataset of tasks to rank ({tasks})",
        ("--config", str(feedback)): f"error: --config {feedback}: a feedback file (`planner"
        " learn`'s, for --feedback), not a planner config",
        ("--config", str(space)): f"error: {space}: a table of ranges and lists of values, as a"
        " search space is (planner search --space), not a planner config: a config is a table"
        ' of settings, like {"cost_weight": 0.3}',
        ("--feedback", str(program)): f"error: --feedback {program}: a carlang program (ranked"
        " as given, without an option), not tool history",
        ("--feedback", str(outcomes)): f"error: --feedback {outcomes}: a CSV file (recorded"
        " outcomes go to planner eval --outcomes), not tool history",
        ("--feedback", str(tmp_path / "best.json")): f"error: --feedback {tmp_path / 'best.json'}:"
        " a search's output (`planner search -o`'s, for --config), not tool history",
    }
    for args, said in expected.items():
        options = args if args[0].startswith("--") else ()
        inputs = args if not options else (str(program),)
        result = runner.invoke(app, ["rank", *inputs, *options])
        assert (result.exit_code, result.stdout) == (2, ""), (args, result.output)
        assert result.stderr == said + "\n", args
    log = tmp_path / "runs.jsonl"
    log.write_text(json.dumps({"seq": 1, "kind": "run_started", "trace_id": "r"}) + "\n")
    result = runner.invoke(app, ["rank", str(program), "--config", str(log)])
    assert (result.exit_code, result.stderr) == (
        2,
        f"error: --config {log}: an event log of recorded runs (for --outcomes, or"
        " --feedback), not a planner config\n",
    ), result.output
    # and what each is for still takes it
    ranked = runner.invoke(app, ["rank", str(program), "--feedback", str(feedback)])
    assert ranked.exit_code == 0, ranked.output


def test_a_jsonl_file_of_lone_proposals_is_warned_about(tmp_path: Path) -> None:
    """Proposals one per line rank each alone (`a wins ... (the only candidate)`, exit 0): a
    trial wrote them so to rank them against each other."""
    deploy = {**call("deploy", env="staging"), "id": "b"}
    lines = [proposal("snap", call("fetch")), proposal("dump", call("fetch"), deploy)]
    file = tmp_path / "two.jsonl"
    file.write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = runner.invoke(app, ["rank", str(file), "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith(
        f"warning: each of the 2 lines of {file} is a task of one candidate, ranked alone: to"
        " rank proposals against each other, give them as the candidates of one group"
    )
    grouped = {"id": "t1", "candidates": lines}
    file.write_text(json.dumps(grouped) + "\n" + json.dumps({**grouped, "id": "t2"}) + "\n")
    result = runner.invoke(app, ["rank", str(file), "--format", "csv"])
    assert result.exit_code == 0 and result.stderr == "", result.output


def test_a_file_given_twice_is_read_once(tmp_path: Path) -> None:
    """`rank . p.car` refused p.car's tasks as two of one name, the first being itself."""
    (tmp_path / "p.car").write_text(PROGRAM)
    result = runner.invoke(app, ["rank", str(tmp_path), str(tmp_path / "p.car"), "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert len(list(csv.DictReader(io.StringIO(result.stdout)))) == 4
    assert (
        result.stderr == f"note: {tmp_path / 'p.car'} is given more than once: its tasks are"
        " read once\n"
    )


def test_a_folder_passes_over_installed_and_hidden_folders(tmp_path: Path) -> None:
    """`rank DIR` read every .json under node_modules or a virtual environment (a package's
    `package.json` failed the whole ranking), as check and test no longer do."""
    group = {"id": "g", "candidates": [proposal("p", call("t")), proposal("q")]}
    (tmp_path / "tasks.jsonl").write_text(json.dumps(group) + "\n")
    for folder in ("node_modules/left-pad", ".venv/lib", "venv", "__pycache__", ".git"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "package.json").write_text('{"name": "left-pad"}')
    (tmp_path / ".draft.json").write_text("{")
    result = runner.invoke(app, ["rank", str(tmp_path), "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert {row["task"] for row in csv.DictReader(io.StringIO(result.stdout))} == {"g"}
    assert result.stderr == ""


def test_carlangs_own_json_outputs_in_a_folder_are_skipped(tmp_path: Path) -> None:
    """`rank DIR` over a folder holding `rank --format json`'s output failed: "candidate 1:
    invalid proposal: actions: field required". Outputs of rank, a sweep and eval are now
    skipped with a note, as search outputs are; a group without candidates says so."""
    group = {"id": "g", "candidates": [proposal("p", call("t")), proposal("q")]}
    dataset = tmp_path / "tasks.jsonl"
    dataset.write_text(json.dumps(group) + "\n")
    outputs = {
        "rank_out.json": ["rank", str(dataset), "--format", "json"],
        "sweep.json": ["rank", str(dataset), "--sweep", "cost_weight=0,1", "--format", "json"],
    }
    for name, args in outputs.items():
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        (tmp_path / name).write_text(result.stdout)
    evaluation = {"tasks": 1, "runs": 2, "unjoined": [], "single": [], "rankers": []}
    (tmp_path / "eval.json").write_text(json.dumps(evaluation))
    result = runner.invoke(app, ["rank", str(tmp_path), "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert {row["task"] for row in csv.DictReader(io.StringIO(result.stdout))} == {"g"}
    assert result.stderr.splitlines() == [
        f"note: skipped {tmp_path / 'eval.json'}: an evaluation's output (`planner eval"
        " --json`'s), not a dataset",
        f"note: skipped {tmp_path / 'rank_out.json'}: a ranking's output (`carlang rank"
        " --format json`'s), not a dataset",
        f"note: skipped {tmp_path / 'sweep.json'}: a sweep's output (`carlang rank --sweep"
        " --format json`'s), not a dataset",
    ]
    dataset.write_text('{"id": "g1"}\n')
    result = runner.invoke(app, ["rank", str(dataset)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {dataset}:1: no `candidates`: a task is a group")


def test_a_bad_candidate_and_a_repeated_task_id_say_file_line_and_column(tmp_path: Path) -> None:
    """A pretty-printed group's `"max_retries": -1` was reported at no line (verify gives
    line:col for the same proposal), and two files with one task id named neither file."""
    bad = proposal("p", call("t"))
    bad["actions"][0]["max_retries"] = -1  # type: ignore[index]
    pretty = tmp_path / "pretty.json"
    pretty.write_text(json.dumps({"id": "g", "candidates": [proposal("q"), bad]}, indent=2))
    result = runner.invoke(app, ["rank", str(pretty)])
    line = pretty.read_text().splitlines().index('          "max_retries": -1') + 1
    assert result.exit_code == 2
    assert result.stderr.startswith(
        f"{pretty}:{line}:26: error: candidate 2: invalid proposal: actions[0].max_retries:"
    )
    group = {"id": "t0", "candidates": [proposal("p", call("t"))]}
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    first.write_text(json.dumps(group) + "\n")
    second.write_text("\n" + json.dumps(group) + "\n")
    result = runner.invoke(app, ["rank", str(first), str(second)])
    assert result.exit_code == 2
    assert result.stderr == (
        f"{second}:2:8: error: two tasks are called 't0' (the first at {first}:1:8): task ids"
        " must be unique (rename one: a group's `id`, a plan's name)\n"
    )


def test_rank_reads_standard_input_as_verify_does(tmp_path: Path) -> None:
    """`carlang rank -` said "-: no such file or folder"; `carlang verify -` reads stdin."""
    groups = [
        {"id": "a", "candidates": [proposal("p", call("t")), proposal("q")]},
        {"id": "b", "candidates": [proposal("r", call("t"))]},
    ]
    jsonl = "".join(json.dumps(group) + "\n" for group in groups)
    result = runner.invoke(app, ["rank", "-", "--format", "csv"], input=jsonl)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(row["task"], row["candidate"]) for row in rows] == [("a", "q"), ("a", "p"), ("b", "r")]
    pretty = json.dumps(proposal("p", call("t")), indent=2)  # one document: a task `stdin`
    result = runner.invoke(app, ["rank", "-", "--format", "csv"], input=pretty)
    assert result.exit_code == 0, result.output
    assert [row["task"] for row in csv.DictReader(io.StringIO(result.stdout))] == ["stdin"]
    result = runner.invoke(app, ["rank", "-"], input='{\n  "id": \n')
    assert result.exit_code == 2 and result.stderr.startswith("-:3:1: error: malformed JSON")


def test_an_array_of_proposals_with_one_id_twice_is_refused_as_a_group_is(tmp_path: Path) -> None:
    """A group with two candidates called `hold` was refused, the same candidates as a plain
    array (what an agent emits) ranked as "hold and hold score the same", and `planner eval`
    joined both to the same outcomes."""
    path = tmp_path / "dup.json"
    path.write_text(json.dumps([proposal("hold"), proposal("other"), proposal("hold")]))
    result = runner.invoke(app, ["rank", str(path)])
    assert result.exit_code == 2
    assert f"{path}: candidates 1 and 3 have the id `hold`" in result.stderr
