"""The `carlang` command's entry point. Five command lines are answered here without the typer app:
`carlang --version`, before anything but the interpreter is loaded (a version check is the first
thing scripts and editors run), and `carlang check`, `fmt`, `test` and `verify` with plain arguments
(`carlang.cli.lean`: no typer, only what the command needs). Everything else goes to typer. Every
command but `--version` first sets up the process for a quick start (no pydantic plugin discovery;
compiled dataclass methods and regexes from `carlang_runtime.diskcache`; the cyclic collector run
less often while modules load). Run as the `carlang` command (`run`), a lean command then ends the
process without tearing the interpreter down (`end_process`); `main` is the same command line for a
caller in the same process, ending with `SystemExit`."""

from __future__ import annotations

import gc
import os
import sys
from typing import NoReturn

__all__ = ["main", "run", "end_process"]

#: The collector's first threshold while a command starts: importing pydantic and carlang
#: allocates ~300,000 objects that live as long as the process, and at the default (700) the
#: collector scans them again and again (~8 ms of a check). It still runs, 60 times less often.
_STARTUP_THRESHOLD = 50_000
#: The exit status of a command stopped by Ctrl-C (128 + SIGINT).
_INTERRUPTED = 130


def main() -> None:
    """Run the command line (`carlang ...`); raises `SystemExit` with the exit code, as a
    command does (callable in-process)."""
    code = _dispatch(sys.argv[1:])
    if code is not None:
        raise SystemExit(code)


def run() -> None:
    """The `carlang` command itself (the console script, `python -m carlang`): `main`, except
    that a lean command then ends the process without the interpreter's teardown
    (`end_process`), and that a command stopped by Ctrl-C ignores further ones while the
    interpreter tears down."""
    try:
        code = _dispatch(sys.argv[1:])
    except SystemExit as exc:
        if exc.code == _INTERRUPTED:
            # A terminal sends Ctrl-C to the whole group, and twice is common: one arriving
            # during the interpreter's teardown killed the process by the signal instead of
            # letting it exit 130 as it was doing. It is ignored now; but where the teardown
            # waits for a thread (a tool's call that hangs), another Ctrl-C ends the process
            # at once, with that status, as the way out it has always been.
            import signal

            waits = _other_threads(daemons=False)
            signal.signal(signal.SIGINT, _exit_interrupted if waits else signal.SIG_IGN)
        raise
    if code is not None:
        end_process(code)


def _dispatch(args: list[str]) -> int | None:
    """Run `carlang ARGS`: the exit code of a lean command, or None when the command is done (or
    typer ran it and raised `SystemExit` itself)."""
    if sys.stdin is None or sys.stdout is None or sys.stderr is None:  # (started closed)
        from carlang.cli.console import stand_in_for_closed_streams

        stand_in_for_closed_streams()
    if args == ["--version"]:
        from carlang import __version__

        try:
            print(f"carlang {__version__}", flush=True)
        except Exception as exc:  # noqa: BLE001 - a closed or full stdout, as for any command
            from carlang.cli.console import OutputProblem, exit_code_for

            if isinstance(exc, OSError) and not isinstance(exc, BrokenPipeError):
                exc = OutputProblem(f"cannot write to standard output: {exc.strerror or exc}")
            return exit_code_for(exc)
        return None
    thresholds = gc.get_threshold()
    gc.set_threshold(_STARTUP_THRESHOLD, *thresholds[1:])
    # The CLI uses no pydantic plugins; skipping their discovery (a scan of every installed
    # package's entry points) saves ~15 ms of every command's start-up.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    # What Python compiles from text at every start, compiled once per machine instead: the
    # methods `dataclasses` writes for the ~190 dataclasses a command defines (~30-40 ms of a
    # check), and the regexes of the modules it imports (~6 ms). See carlang_runtime.diskcache.
    from carlang_runtime.diskcache import pycode, regexes

    pycode.install()
    regexes.install()
    if (
        args[:1] in (["check"], ["fmt"], ["test"], ["verify"])
        and "_CARLANG_COMPLETE" not in os.environ
    ):
        # (`lean.LEAN_COMMANDS`, named here: importing it would load both commands' modules)
        from carlang.cli.lean import lean_main

        code = lean_main(args[0], args[1:])
        if code is not None:
            return code
    # Other commands may run for long (a server, a plan, a replay): the collector as usual.
    gc.set_threshold(*thresholds)
    from carlang.cli import main as cli_main
    from carlang.cli.console import UsageProblem, exit_code_for

    try:
        cli_main()
    except UsageProblem as exc:  # outside any command body: help to a closed stdout
        return exit_code_for(exc)
    return None


def _exit_interrupted(signum: int, frame: object) -> None:
    """A Ctrl-C during the teardown of a command Ctrl-C stopped: flush, and exit 130 now."""
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(_INTERRUPTED)


def end_process(code: int) -> NoReturn:
    """End the process with exit code `code` once a command is done, skipping the interpreter's
    teardown: freeing every module and object one by one costs ~25 ms of a check (a sixth of
    it), for memory the system takes back anyway. What teardown would do that matters is done
    first: the `atexit` functions run and stdout and stderr are flushed. Falls back to an
    ordinary exit (`SystemExit`) when another thread still runs, when a tracer, a profiler or
    coverage watches the process (they write their data after the program returns), when this
    Python has no way to run the `atexit` functions early, or when flushing fails (a closed
    pipe: Python then reports it as it always has)."""
    import atexit

    run_exit_functions = getattr(atexit, "_run_exitfuncs", None)
    if run_exit_functions is None or _watched() or _other_threads():
        raise SystemExit(code)
    run_exit_functions()  # (they run once: Python forgets them after running them)
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except (OSError, ValueError):
        raise SystemExit(code) from None
    os._exit(code)


def _other_threads(daemons: bool = True) -> bool:
    """Whether a thread of Python's besides this one still runs (`daemons` False: one the
    interpreter's teardown waits for)."""
    threading = sys.modules.get("threading")  # (not loaded: no thread of Python's was started)
    if threading is None:
        return False
    if daemons:
        return bool(threading.active_count() > 1)
    main = threading.main_thread()
    return any(t is not main and not t.daemon and t.is_alive() for t in threading.enumerate())


def _watched() -> bool:
    """Whether a tracer, a profiler or coverage.py watches this process."""
    if sys.gettrace() is not None or sys.getprofile() is not None or "coverage" in sys.modules:
        return True
    monitoring = getattr(sys, "monitoring", None)  # Python 3.12+: tools without a trace hook
    return monitoring is not None and any(
        monitoring.get_tool(tool) is not None
        for tool in range(6)  # its tool ids: 0-5
    )
