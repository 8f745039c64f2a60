"""A command builds only its own module's commands: `COMMAND_MODULES` names, for every
top-level command, the module that registers it; `carlang check` imports no command module,
nor typer, nor anything else it does not use, and a second check compiles none of the big
lexer regexes (they come from the regex cache). Each guards a part of the check's start-up
time (issue 18), which the cold-start benchmark measures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import typer.main

from carlang.cli import _MODULES, COMMAND_MODULES, build_app
from carlang.entry import _watched


def _names(app: typer.Typer) -> set[str]:
    group = typer.main.get_command(app)
    return set(getattr(group, "commands", {}))


def test_the_table_names_the_module_of_every_command() -> None:
    assert set(COMMAND_MODULES) == _names(build_app())
    for module in _MODULES:
        registered = _names(build_app((module,)))
        assert registered == {c for c, m in COMMAND_MODULES.items() if m == module}, module


#: What `carlang check` has no use for, on a program with tools, state, a CEL policy and a
#: proposal: typer and the typer app (and click, rich), the runtime's engine and asyncio (run),
#: lark and cel-python (the parser tables are checked in), pydantic's validators (lowering
#: constructs the models; building a first validator looks for plugins with
#: importlib.metadata), difflib (only a misspelt name needs it), msgspec (JSON text in), and
#: every package of other commands: planner, agents, MCP, replay, experiments, decision logs,
#: fmt, tests, the language server.
_UNNEEDED_BY_CHECK = {
    "typer",
    "click",
    "rich",
    "carlang.cli.typer_app",
    "carlang.cli.common",
    "asyncio",
    "concurrent.futures",
    "subprocess",
    "socket",
    "ssl",
    "logging",
    "carlang_runtime.engine",
    "carlang_runtime.planner",
    "carlang_runtime.agents",
    "carlang_runtime.mcp",
    "carlang_runtime.replay",
    "carlang_runtime.experiments",
    "carlang_runtime.decisionlog",
    "carlang.fmt",
    "carlang.testcases",
    "carlang.testrun",
    "carlang.lsp",
    "lark",
    "celpy",
    "jsonschema",
    "importlib.metadata",
    "difflib",
    "msgspec",
}

_PROGRAM = """\
tool fetch(url: string) -> object { idempotent }
state { done: bool = false }
policy https_only: deny fetch when !params.url.startsWith("https://")
  message "only https"
proposal p {
  a = fetch(url: "https://example.org") { effects { done = true } }
  b = assert done == true after a
}
"""


def _fresh_check(
    path: Path,
    head: str = "",
    body: str = "from carlang.entry import run\nrun()\n",
    cache: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `head`, then `body` with `carlang check PATH` as the command line (by default the
    `carlang` command itself, `entry.run`), in a new interpreter."""
    script = head + f"import sys\nsys.argv = ['carlang', 'check', {str(path)!r}]\n" + body
    env = dict(os.environ)
    if cache is not None:
        env["CARLANG_CACHE_DIR"] = str(cache)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)


def _check_in_fresh_process(
    path: Path, tail: str, head: str = "", cache: Path | None = None
) -> str:
    """Run `head`, `carlang check PATH` (`entry.main`, which gives control back) and `tail` in
    a new interpreter; its stdout."""
    body = (
        "from carlang.entry import main\n"
        "try:\n    main()\nexcept SystemExit as exit:\n    assert not exit.code, exit.code\n" + tail
    )
    done = _fresh_check(path, head, body, cache)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_check_imports_only_what_it_needs(tmp_path: Path) -> None:
    (tmp_path / "p.car").write_text(_PROGRAM)
    out = _check_in_fresh_process(
        tmp_path / "p.car",
        f"UNNEEDED = {sorted(_UNNEEDED_BY_CHECK)!r}\n"
        "loaded = [m for m in sys.modules if m in UNNEEDED or m.endswith('_commands')]\n"
        "print('LOADED', loaded)\n",
    )
    assert "0 errors" in out, out
    assert "LOADED []" in out, out


def test_verify_imports_only_what_it_needs(tmp_path: Path) -> None:
    # An agent's gateway runs `carlang verify` once per proposal: typer, the compiler and
    # the engine are not needed for it.
    proposal = {"id": "p", "actions": [{"id": "a", "type": "tool_call", "tool": "t"}]}
    (tmp_path / "p.json").write_text(json.dumps(proposal))
    # (msgspec decodes the proposal; pydantic's plugin loader and importlib.metadata are not
    # loaded: a plain proposal's header is built without building a validator)
    needed = {"msgspec"}
    unneeded = sorted(
        (_UNNEEDED_BY_CHECK - needed)
        | {"lark", "carlang.compiler", "pydantic.plugin._loader", "importlib.metadata"}
    )
    script = (
        "import sys\n"
        f"sys.argv = ['carlang', 'verify', {str(tmp_path / 'p.json')!r}, '--tools', 't']\n"
        "from carlang.entry import main\n"
        "try:\n    main()\nexcept SystemExit as exit:\n    assert not exit.code, exit.code\n"
        f"loaded = [m for m in sys.modules if m in {unneeded!r} or m.endswith('_commands')]\n"
        "print('LOADED', loaded)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("VALID") and "LOADED []" in done.stdout, done.stdout


def test_a_test_run_imports_no_typer(tmp_path: Path) -> None:
    # Policy CI runs `carlang test` once per build: plain arguments take the lean path.
    (tmp_path / "p.car").write_text(
        "tool t(x: int)\npolicy no_big: deny t when params.x > 10\n"
        'test "small" {\n  action t(x: 1)\n  expect allow\n}\n'
    )
    script = (
        "import sys\n"
        f"sys.argv = ['carlang', 'test', {str(tmp_path / 'p.car')!r}]\n"
        "from carlang.entry import main\n"
        "try:\n    main()\nexcept SystemExit as exit:\n    assert not exit.code, exit.code\n"
        "loaded = [m for m in sys.modules if m in ('typer', 'click', 'rich')"
        " or m.endswith('_commands')]\n"
        "print('LOADED', loaded)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "1 passed" in done.stdout and "LOADED []" in done.stdout, done.stdout


def test_a_second_check_takes_its_regexes_from_the_cache(tmp_path: Path) -> None:
    # The parse engines' lexer regexes are thousands of characters long: compiling them was
    # ~10 ms of every check's start-up, the ~60 patterns of the modules it imports ~6 ms. The
    # first process keeps them, the next compiles none of the lexers and few others.
    (tmp_path / "p.car").write_text(_PROGRAM)
    count_big_compiles = (
        "from re import _compiler\n"
        "compiled = []\n"
        "original = _compiler.compile\n"
        "def recording(pattern, flags=0):\n"
        "    compiled.append(len(pattern) if isinstance(pattern, str) else 0)\n"
        "    return original(pattern, flags)\n"
        "_compiler.compile = recording\n"
    )
    tail = "print('BIG', sum(1 for n in compiled if n > 1000), 'ALL', len(compiled))\n"
    cache = tmp_path / "cache"

    def compiles() -> tuple[int, int]:
        out = _check_in_fresh_process(tmp_path / "p.car", tail, count_big_compiles, cache)
        return int(out.split("BIG ")[1].split()[0]), int(out.split("ALL ")[1].split()[0])

    big, every = compiles()
    assert big > 0
    big_again, every_again = compiles()
    assert big_again == 0
    # The other patterns the modules compile at import come from the cache too, but for the
    # few compiled before the `carlang` command sets it up (and bytes patterns).
    assert every_again <= every // 3
    assert list((cache / "regex").glob("*.bin"))


def test_checking_a_program_with_tests_compiles_no_tokenizer(tmp_path: Path) -> None:
    # pydantic's `model_construct` reads a default factory's signature (for `list`, parsed
    # from text with the tokenizer, whose regexes cost ~5 ms to compile): the compiler builds
    # its actions with every field given instead.
    test_block = 'test "https passes" {\n  action fetch(url: "https://a.b")\n  expect allow\n}\n'
    (tmp_path / "p.car").write_text(_PROGRAM + test_block)
    out = _check_in_fresh_process(
        tmp_path / "p.car",
        "import tokenize\nprint('TOKENIZER', tokenize._compile.cache_info().currsize)\n",
    )
    assert "0 errors" in out, out
    assert "TOKENIZER 0" in out, out


def test_a_check_with_the_code_cache_says_what_it_says_without(tmp_path: Path) -> None:
    # The methods of every dataclass come from the code cache after the first run (~30-40 ms
    # of compiling): the findings, and the exit code, are the same as without it.
    (tmp_path / "p.car").write_text(_PROGRAM + "tool unused(x: int)\n")
    tail = (
        "import dataclasses\n"
        "cache = getattr(dataclasses, 'exec', None)\n"
        "print('COMPILED', None if cache is None else len(cache.cache.new))\n"
    )
    without = _check_in_fresh_process(tmp_path / "p.car", tail)
    first = _check_in_fresh_process(tmp_path / "p.car", tail, cache=tmp_path / "cache")
    second = _check_in_fresh_process(tmp_path / "p.car", tail, cache=tmp_path / "cache")
    findings = without.split("COMPILED")[0]
    assert "warning" in findings and "COMPILED None" in without
    assert first.split("COMPILED")[0] == findings and second.split("COMPILED")[0] == findings
    assert int(first.split("COMPILED ")[1]) > 100  # every dataclass the check defines
    assert "COMPILED 0" in second


#: Prints when the interpreter's teardown frees it (a check ended by `run` never does).
_TEARDOWN = (
    "class Teardown:\n    def __del__(self):\n        print('TORN DOWN')\nkept = Teardown()\n"
)


def test_a_check_ends_without_teardown_but_loses_nothing(tmp_path: Path) -> None:
    # `end_process`: the exit functions run, every line reaches stdout, the exit code is the
    # check's, and the interpreter's teardown (which would run `__del__` here) is skipped.
    (tmp_path / "bad.car").write_text(_PROGRAM + "proposal q { a = nosuch() }\n")
    head = "import atexit\natexit.register(print, 'EXIT FUNCTION RAN')\n" + _TEARDOWN
    done = _fresh_check(tmp_path / "bad.car", head)
    assert done.returncode == 1, done.stderr
    assert "error[" in done.stdout and "1 error" in done.stdout
    assert done.stdout.rstrip().endswith("EXIT FUNCTION RAN")
    assert "TORN DOWN" not in done.stdout


def test_a_check_waits_for_a_running_thread(tmp_path: Path) -> None:
    # Another thread still running: the process ends as Python ends it, after the thread.
    (tmp_path / "p.car").write_text(_PROGRAM)
    head = (
        "import threading, time\n"
        "threading.Thread(target=lambda: (time.sleep(0.3), print('THREAD DONE'))).start()\n"
    )
    done = _fresh_check(tmp_path / "p.car", head)
    assert done.returncode == 0, done.stderr
    assert "0 errors" in done.stdout and "THREAD DONE" in done.stdout


def test_a_watched_check_ends_as_python_ends(tmp_path: Path) -> None:
    # coverage.py (or a profiler, or a tracer) writes its data after the program returns: the
    # process then ends as Python ends it, teardown included.
    (tmp_path / "p.car").write_text(_PROGRAM)
    watched = "import sys, types\nsys.modules['coverage'] = types.ModuleType('coverage')\n"
    done = _fresh_check(tmp_path / "p.car", _TEARDOWN + watched)
    assert done.returncode == 0, done.stderr
    assert "0 errors" in done.stdout and "TORN DOWN" in done.stdout


def test_a_profiler_or_a_tracer_watches() -> None:
    # (Not watched: see the test above, where a check ends without teardown.)
    for hook in (sys.setprofile, sys.settrace):
        hook(lambda *args: None)
        try:
            assert _watched()
        finally:
            hook(None)


def test_main_returns_control_to_its_caller(tmp_path: Path) -> None:
    # `main` raises SystemExit, as a command does, so it can be called in-process; only the
    # `carlang` command itself (`run`) ends the process early.
    (tmp_path / "bad.car").write_text(_PROGRAM + "proposal q { a = nosuch() }\n")
    body = (
        "from carlang.entry import main\n"
        "try:\n    main()\nexcept SystemExit as exit:\n    print('EXIT CODE', exit.code)\n"
        "print('BACK IN THE CALLER')\n"
    )
    done = _fresh_check(tmp_path / "bad.car", body=body)
    assert done.returncode == 0, done.stderr
    assert "EXIT CODE 1" in done.stdout and done.stdout.rstrip().endswith("BACK IN THE CALLER")


def test_the_threads_a_teardown_waits_for_are_told_from_daemons() -> None:
    """After a Ctrl-C exit a second Ctrl-C is ignored unless a thread the interpreter's
    teardown waits for still runs (then it ends the process at once): daemons do not count."""
    import threading

    from carlang.entry import _other_threads

    before = _other_threads(daemons=False)  # (a thread another test left running)
    release = threading.Event()
    daemon = threading.Thread(target=release.wait, daemon=True)
    daemon.start()
    try:
        assert _other_threads() and _other_threads(daemons=False) == before
        waited = threading.Thread(target=release.wait)
        waited.start()
        assert _other_threads(daemons=False)
    finally:
        release.set()
    waited.join()
    daemon.join()
