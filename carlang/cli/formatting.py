"""What `carlang fmt` does, without typer: files rewritten in carlang's canonical layout, or
checked (`--check`, `--diff`), or standard input formatted to standard output (`-`, what
editors call on every save). The typer command (`lang_commands.fmt_command`) and the lean path
(`carlang.cli.lean`, which `carlang fmt` takes when its arguments are plain) both run
`run_fmt`: hooks and editors run it as a fresh process, where start-up is most of the time."""

from __future__ import annotations

from pathlib import Path

from .checking import collect_sources
from .console import (
    EXIT_FAILED,
    EXIT_INTERNAL,
    EXIT_OK,
    echo,
    echo_err,
    fail_usage,
    read_bytes,
    read_text,
    write_out,
)

__all__ = ["run_fmt", "replace_file"]


def run_fmt(paths: list[Path] | None, check: bool = False, diff: bool = False) -> int:
    """`carlang fmt`'s work (see its help), and the exit code: 1 when a file does not parse, or
    with `check` or `diff` when one would change; 101 on an internal error. Every file is read
    and formatted before any is written: when one cannot be (unreadable, not UTF-8, a syntax
    error, a bug), none is rewritten. Each file rewritten is named as it is, so that a write
    that fails part way (a full disk) leaves no doubt which were."""
    paths = paths or [Path(".")]  # (as `check` and `test`: the project the command runs in)
    if [str(p) for p in paths] == ["-"]:
        return _fmt_stdin(check)
    if "-" in map(str, paths):
        fail_usage(
            "-: `carlang fmt -` formats standard input alone, to standard output; give files"
            " and folders without it, or run it on its own"
        )
    check = check or diff
    from carlang.fmt import NotFormattable, format_source
    from carlang.loader import display_name, encoding_error
    from carlang.render import render_text
    from carlang.source import Source

    changed: list[tuple[Path, str, str]] = []
    failed = internal = False
    root = Path.cwd().resolve()
    for path in collect_sources(paths):
        name = display_name(path, root)
        data = read_bytes(path)
        try:
            source = Source(name, data.decode("utf-8"))
        except UnicodeDecodeError:
            echo_err(render_text([encoding_error(name, data)[1]]))
            failed = True
            continue
        try:
            formatted = format_source(source)
        except NotFormattable as exc:
            echo_err(render_text(exc.diagnostics.sorted()))
            failed = True
            continue
        except Exception as exc:  # noqa: BLE001 - FormatError, or a bug: never write then
            echo_err(
                f"internal error: {name}: {type(exc).__name__}: {exc} (the file is unchanged;"
                " this is a bug in carlang, please report it)"
            )
            internal = True
            continue
        if formatted != source.text:
            changed.append((path, name, formatted))
            if diff:
                echo(_unified_diff(source.text, formatted, name).rstrip("\n"))
    if (failed or internal) and changed and not check:
        echo_err(f"nothing rewritten: {_left_unformatted([name for _, name, _ in changed])}")
    elif not diff:
        if not check:
            _refuse_read_only([(path, name) for path, name, _ in changed])
        for path, name, formatted in changed:
            if not check:
                replace_file(path, formatted)
            echo(f"{'would reformat' if check else 'reformatted'} {name}")
    if internal:
        return EXIT_INTERNAL
    if failed or (check and changed):
        return EXIT_FAILED
    return EXIT_OK


#: How many of the files left unformatted are named (a folder may hold hundreds).
_NAMED_FILES = 3


def _refuse_read_only(files: list[tuple[Path, str]]) -> None:
    """A usage error, before any file is rewritten, when one to rewrite is read-only: the
    rewrite replaces the file (a new one takes its name), which a directory's write permission
    allows, and the mode was the owner's way of saying to leave it alone (root writes anyway)."""
    import os

    read_only = [
        name
        for path, name in files
        if not os.access(path, os.W_OK) or not path.stat().st_mode & 0o222
    ]
    if read_only:
        fail_usage(
            f"nothing rewritten: {_needing_format(read_only)}, and"
            f" {'it is' if len(read_only) == 1 else 'they are'} read-only; make"
            f" {'it' if len(read_only) == 1 else 'them'} writable first (chmod u+w)"
        )


def _left_unformatted(names: list[str]) -> str:
    """Which files would have been reformatted but were not (another could not be): named, so
    that with several files given it is clear which ("file was left unformatted" was not)."""
    left = "is left as it is" if len(names) == 1 else "are left as they are"
    return f"{_needing_format(names)}, and {left} until the errors above are fixed"


def _needing_format(names: list[str]) -> str:
    """`a.car needs formatting`, or `5 files need formatting (a.car, b.car, c.car and 2 more)`."""
    if len(names) == 1:
        return f"{names[0]} needs formatting"
    shown = ", ".join(names[:_NAMED_FILES])
    more = f" and {len(names) - _NAMED_FILES} more" if len(names) > _NAMED_FILES else ""
    return f"{len(names)} files need formatting ({shown}{more})"


def replace_file(path: Path, text: str) -> None:
    """Replace `path`'s content with `text` atomically: the whole text goes to a temporary file
    beside it (same directory, so same file system), which then takes the file's place. On any
    failure the original is left exactly as it was, and the temporary file is removed."""
    import os
    import tempfile

    data = text.encode("utf-8")  # fails here, before anything is written, if it cannot
    directory = path.resolve().parent
    temporary: str | None = None
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, path.stat().st_mode & 0o7777)
        os.replace(temporary, path.resolve())
    except BaseException as exc:
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            fail_usage(f"cannot write {path}: {exc.strerror or exc}; the file is unchanged")
        raise


def _unified_diff(before: str, after: str, name: str) -> str:
    """What `--diff` prints for a file: the unified diff from `before` to `after`."""
    import difflib

    lines = difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True), name, name
    )
    # a last line without its newline is marked as `diff` marks it: joined to the next one,
    # the patch would not apply
    return "".join(
        line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines
    )


def _fmt_stdin(check: bool) -> int:
    """`carlang fmt -`: standard input formatted to standard output (what editors call)."""
    from carlang.fmt import NotFormattable, format_source
    from carlang.render import render_text
    from carlang.source import Source

    source = Source("<stdin>", read_text(Path("-"), "standard input"))
    try:
        formatted = format_source(source)
    except NotFormattable as exc:
        echo_err(render_text(exc.diagnostics.sorted()))
        return EXIT_FAILED
    if check:
        return EXIT_FAILED if formatted != source.text else EXIT_OK
    write_out(formatted)
    return EXIT_OK
