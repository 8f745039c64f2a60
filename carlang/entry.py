"""The `carlang` command's entry point. Two command lines are answered here without the typer
app: `carlang --version`, before anything but the interpreter is loaded (a version check is the
first thing scripts and editors run), and `carlang check` with plain arguments
(`carlang.cli.lean`: no typer, only what checking needs). Everything else goes to typer. Every
command but `--version` first sets up the process for a quick start (no pydantic plugin
discovery; compiled dataclass methods and regexes from `carlang_runtime.diskcache`)."""

from __future__ import annotations

import os
import sys

__all__ = ["main"]


def main() -> None:
    """Run the command line (`carlang ...`)."""
    args = sys.argv[1:]
    if args == ["--version"]:
        from carlang import __version__

        print(f"carlang {__version__}")
        return
    # The CLI uses no pydantic plugins; skipping their discovery (a scan of every installed
    # package's entry points) saves ~15 ms of every command's start-up.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    # What Python compiles from text at every start, compiled once per machine instead: the
    # methods `dataclasses` writes for the ~190 dataclasses a command defines (~30-40 ms of a
    # check), and the regexes of the modules it imports (~6 ms). See carlang_runtime.diskcache.
    from carlang_runtime.diskcache import pycode, regexes

    pycode.install()
    regexes.install()
    if args[:1] == ["check"] and "_CARLANG_COMPLETE" not in os.environ:
        from carlang.cli.lean import check_main

        code = check_main(args[1:])
        if code is not None:
            raise SystemExit(code)
    from carlang.cli import main as cli_main

    cli_main()
