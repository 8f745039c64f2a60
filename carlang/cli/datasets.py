"""Datasets on the command line: programs, folders, CAR JSON proposals and JSONL groups as
ranking tasks, and planner configs read from files (`--config`)."""

from __future__ import annotations

import json
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from .common import echo_err, fail_usage
from .lang_commands import compile_program

if TYPE_CHECKING:
    from carlang_runtime.experiments import Task
    from carlang_runtime.planner import PlannerConfig, ToolFeedback

__all__ = [
    "load_dataset",
    "load_config",
    "load_feedback",
    "warn_idle_settings",
    "DATASET_SUFFIXES",
]

#: The files a folder contributes, in this order within the folder (sorted by path).
DATASET_SUFFIXES = (".car", ".json", ".jsonl")

#: Files by their suffix that are no program, with where the planner takes them: given to
#: `rank`, they were parsed as programs (`unexpected cost_weight`).
_OTHER_KINDS = {
    ".toml": "a TOML file (planner settings go to --config; a search space to planner"
    " search --space)",
    ".csv": "a CSV file (recorded outcomes go to planner eval --outcomes)",
    ".db": "a SQLite file (an event log goes to --feedback, or to planner eval --outcomes)",
    ".yaml": "a YAML file",
    ".yml": "a YAML file",
}
#: What `rank` and the planner's commands read as tasks, said when a file is none.
_DATASETS_ARE = "tasks are .car programs, CAR JSON proposals (.json) and JSONL groups (.jsonl)"


def _files(inputs: list[Path]) -> list[Path]:
    """The files of the inputs: each file given, and the dataset files of each folder (those
    recognisably another kind of file, an event log or a feedback file, skipped with a note;
    given by name, they are an error saying which option takes them)."""
    from carlang_runtime.experiments.dataset import not_a_dataset

    from carlang.project import files_under

    files: list[Path] = []
    for path in inputs:
        if str(path) == "-":  # standard input, as `verify -` reads it
            if path in files:
                fail_usage("- (standard input) is given twice: it can be read once")
            files.append(path)
        elif path.is_file() and path.suffix.lower() in _OTHER_KINDS:
            kind = _OTHER_KINDS[path.suffix.lower()]
            fail_usage(f"{path}: {kind}, not a dataset of tasks to rank ({_DATASETS_ARE})")
        elif path.is_dir():
            found = files_under(path, DATASET_SUFFIXES)  # (not node_modules, .git, venv, ...)
            if not found:
                fail_usage(f"{path}: no .car, .json or .jsonl file in this folder")
            for file in found:
                other = not_a_dataset(file) if file.suffix != ".car" else None
                if other is None:
                    files.append(file)
                else:
                    echo_err(f"note: skipped {file}: {other}, not a dataset")
        elif not path.exists():
            fail_usage(f"{path}: no such file or folder")
        else:
            other = not_a_dataset(path) if path.suffix in (".json", ".jsonl") else None
            if other is not None:
                fail_usage(f"{path}: {other}, not a dataset of tasks to rank")
            files.append(path)
    return _once(files)


def _warn_lone_candidates(file: Path, tasks: list[Task]) -> None:
    """Warn when every line of a JSONL file is a task of one candidate: likely proposals
    written one per line to be ranked against each other, which ranks each alone (a trial:
    `a wins ... (the only candidate)`, then `b wins ...`, exit 0)."""
    if len(tasks) > 1 and all(len(task.candidates) == 1 for task in tasks):
        where = str(file) if str(file) != "-" else "standard input"
        echo_err(
            f"warning: each of the {len(tasks)} lines of {where} is a task of one candidate,"
            " ranked alone: to rank proposals against each other, give them as the candidates"
            ' of one group, {"id": "t1", "candidates": [...]} on one line, or as a JSON array'
            " in a .json file"
        )


def _once(files: list[Path]) -> list[Path]:
    """`files`, each file once (one given by name and again in a folder given, `rank .
    p.car`: its tasks were refused as two of one name, the first being itself), with a note."""
    seen: dict[Path, Path] = {}
    for file in files:
        key = file if str(file) == "-" else file.resolve()
        if key in seen:
            echo_err(f"note: {file} is given more than once: its tasks are read once")
        else:
            seen[key] = file
    return list(seen.values())


def judged_against(tasks: list[Task], file: Path, root: Path | None) -> list[Task]:
    """`tasks` with those read from JSON or JSONL (a program's plans keep their own program)
    judged against the program in `file`: its tools where a group gives none, its state under
    a group's own, its policies before a group's, and its capabilities and budgets, which
    the candidates name (`"capability": "agent"`)."""
    from carlang_runtime.planner import Governance
    from carlang_runtime.policy import PolicySet

    from .lang_commands import compile_program

    if file.suffix != ".car":
        fail_usage(f"--program {file}: name a .car program")
    _, program = compile_program(file, root, proposal_errors_ok=True)
    policies = [PolicySet(program.policies, tools=program.tools)] if program.policies else []
    governance = Governance.from_program(program)
    return [
        task
        if task.plan is not None  # (a program's plan, or its proposals: its own program's)
        else replace(
            task,
            tools=task.tools if task.tools is not None else program.tools,
            state={**program.initial_state, **task.state},
            policies=[*policies, *task.policies],
            governance=governance,
        )
        for task in tasks
    ]


def load_dataset(inputs: list[Path], plan: str | None, root: Path | None) -> list[Task]:
    """Every task of the inputs: each program's plans (all proposals of a program without
    plans), each CAR JSON file, each line of a JSONL file of groups. With several files, a
    plan's task id is `file:plan`. `plan` keeps only the plans of that name and the JSON and
    JSONL tasks of that id; a usage error (with a did-you-mean) when none has it."""
    from carlang_runtime.experiments import load_groups, load_proposals, tasks_from_program
    from carlang_runtime.experiments.dataset import check_unique, load_stdin, task_from_plan

    files = _files(inputs)
    several = len(files) > 1
    tasks: list[Task] = []
    empty: list[Path] = []  # JSONL files of blank lines
    names: list[str] = []  # what `plan` could have named: plans and task ids
    for file in files:
        if file.suffix in (".jsonl", ".json") or str(file) == "-":
            if str(file) == "-":
                found = load_stdin(file)
            else:
                found = load_groups(file) if file.suffix == ".jsonl" else [load_proposals(file)]
            if not found:
                empty.append(file)
            _warn_lone_candidates(file, found)
            names.extend(task.id for task in found)
            tasks.extend(task for task in found if plan is None or task.id == plan)
            continue
        _, program = compile_program(file, root, proposal_errors_ok=True)
        prefix = f"{file.stem}:" if several else ""
        if plan is not None:
            names.extend(p.name for p in program.plans)
            chosen = program.plan(plan)
            if chosen is not None:
                tasks.append(task_from_plan(program, chosen, prefix + chosen.name))
            elif not several:
                _no_plan(plan, f"in {file}", [p.name for p in program.plans], "plans")
            continue
        if not program.plans and not program.proposals:
            fail_usage(f"{file} has no plans and no proposals to rank")
        tasks.extend(
            replace(t, origin=t.origin or str(file)) for t in tasks_from_program(program, prefix)
        )
    if not tasks and empty and plan is None:
        fail_usage(
            f"{empty[0]}: the file holds no task (it is empty or blank): a JSONL dataset holds"
            ' one candidate group per line, like {"id": "t1", "candidates": [...]}'
        )
    if not tasks:
        assert plan is not None
        _no_plan(plan, "in any input", names, "plans and tasks")
    return check_unique(tasks)


def _refuse_other_kind(path: Path, option: str, wanted: str) -> None:
    """A usage error when `path`, given to `option`, is recognisably another kind of file:
    a program, a dataset, a CSV, or another of carlang's JSON files (`not_a_dataset`), each
    named with the option that takes it (they were read as `wanted`, and refused for what
    that reading met: `no planner setting is called 'format'`, `malformed JSON`)."""
    from carlang_runtime.experiments.dataset import not_a_dataset

    suffix = path.suffix.lower()
    if suffix == ".car":
        kind = "a carlang program (ranked as given, without an option)"
    elif suffix in (".csv", ".yaml", ".yml") or (suffix == ".toml" and option != "--config"):
        kind = _OTHER_KINDS[suffix]
    elif suffix in (".json", ".jsonl") and path.is_file():
        kind = not_a_dataset(path) or ""
        if f"for {option}" in kind or f", or {option}" in kind:  # (an event log: --feedback)
            return
        if not kind and option == "--feedback" and suffix == ".json":
            return  # (its loader says what is wrong with it as a feedback file)
    else:
        return
    if kind:
        fail_usage(f"{option} {path}: {kind}, not {wanted}")


def _no_plan(plan: str, where: str, names: list[str], kinds: str) -> NoReturn:
    """The usage error for a `--plan` that names no plan or task: the closest name, or the
    first few there are."""
    from carlang_runtime.suggest import did_you_mean

    known = list(dict.fromkeys(names))
    shown = ", ".join(known[:8]) + (f" and {len(known) - 8} more" if len(known) > 8 else "")
    hint = did_you_mean(plan, known, "`") or f"{kinds}: {shown or 'none'}"
    fail_usage(f"no plan `{plan}` {where} ({hint})")


def load_config(path: Path | None) -> PlannerConfig:
    """The planner config of a file: `carlang planner search -o`'s JSON (its `config`), or a
    JSON or TOML table of settings. Without a file, the defaults."""
    from carlang_runtime.jsontext import loads, malformed
    from carlang_runtime.planner import PlannerConfig
    from carlang_runtime.planner.config import SettingError, setting_position, toml_problem
    from carlang_runtime.textfile import read_input

    if path is None:
        return PlannerConfig()
    _refuse_other_kind(path, "--config", "a planner config")
    text = read_input(path)
    document: Any
    try:
        document = tomllib.loads(text) if path.suffix.lower() == ".toml" else loads(text)
    except json.JSONDecodeError as exc:
        fail_usage(f"{path}:{exc.lineno}:{exc.colno}: not a config (JSON): {malformed(exc)}")
    except tomllib.TOMLDecodeError as exc:
        fail_usage(toml_problem(path, text, exc, "not a config (TOML)"))
    within = []
    if isinstance(document, dict) and isinstance(document.get("config"), dict):
        document, within = document["config"], ["config"]
    if not isinstance(document, dict):
        fail_usage(f'{path}: a config is a table of settings, like {{"cost_weight": 0.3}}')
    if document and all(isinstance(value, (dict, list)) for value in document.values()):
        fail_usage(
            f"{path}: a table of ranges and lists of values, as a search space is (planner"
            " search --space), not a planner config: a config is a table of settings, like"
            ' {"cost_weight": 0.3}'
        )
    try:
        return PlannerConfig().with_settings(document, strict=True)
    except SettingError as exc:
        toml = path.suffix.lower() == ".toml"
        at = setting_position(text, exc.setting, toml, within) if exc.setting else None
        fail_usage(f"{path}:{at}: {exc}" if at else f"{path}: {exc}")


def load_feedback(path: Path | None, tasks: list[Task]) -> ToolFeedback | None:
    """`--feedback`'s tool history, or None without one. A history that knows none of the
    tools the tasks call is loaded but warned about: every call is then scored at the unknown
    tool's rate (`unknown_tool_confidence`), and the likely cause is the wrong file (another
    agent's log, or tools renamed since)."""
    if path is None:
        return None
    from carlang_runtime.planner import ToolFeedback

    _refuse_other_kind(path, "--feedback", "tool history")
    history = ToolFeedback.load(path)
    called = {
        action.tool
        for task in tasks
        for candidate in task.candidates
        for action in candidate.actions
        if action.tool is not None
    }
    known = set(history.success_rates())
    if called and not called & known:
        knows = ", ".join(sorted(known)[:5]) + (", ..." if len(known) > 5 else "")
        echo_err(
            f"warning: --feedback {path} has no history of any tool these plans call "
            f"({', '.join(sorted(called)[:5])}{', ...' if len(called) > 5 else ''})"
            + (f" (it knows {knows})" if known else " (it knows no tool)")
            + ": they are taken as unknown, each call succeeding at unknown_tool_confidence"
            " (0.5 unless set, as CAR does), which lowers every score's history and Monte"
            " Carlo factors; check the file, or rank without --feedback"
        )
    return history


def warn_idle_settings(names: list[str], feedback: ToolFeedback | None, doing: str) -> None:
    """Warn about the settings of `names` (searched or swept: `doing`) that cannot change a
    score with this feedback: every value would score the same, and nothing said why."""
    from carlang_runtime.planner.config import idle_settings

    idle = idle_settings(names, feedback)
    if not idle:
        return
    if feedback is None:
        why = (
            "without --feedback: they act only on what feedback gives (tool history, the Monte"
            " Carlo estimate, durations); give --feedback, an event log or `planner learn`'s file"
        )
    else:
        why = "with this --feedback: the duration term needs durations, and it has none"
    echo_err(f"warning: {doing} {', '.join(idle)}: every value scores the same {why}")
