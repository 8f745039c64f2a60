"""The `carlang` command's entry point. `carlang --version` is answered here, before the CLI
(typer, rich, pydantic, every command module) is imported: a version check, the first thing
scripts and editors run, costs the interpreter's start-up and little else."""

from __future__ import annotations

import sys

__all__ = ["main"]


def main() -> None:
    """Run the command line (`carlang ...`)."""
    if sys.argv[1:] == ["--version"]:
        from carlang import __version__

        print(f"carlang {__version__}")
        return
    from carlang.cli import main as cli_main

    cli_main()
