"""A bounded mutation fuzzer over the examples: no input makes `check` or `fmt` fail inside
(an internal error), and `fmt` changes a file only to text it has verified.

Deterministic: a fixed seed and a fixed number of inputs, each an example with one to three
edits (a cut, a paste of the example's own text, a truncation, a swap of lines, a number
replaced by one out of range, or one of the inputs that used to break the compiler inserted:
lone surrogates, 5,000-digit integers, 1e400, deep brackets, unterminated strings, NULs).
"""

from __future__ import annotations

import os
import random
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from carlang.cli import app
from carlang.compiler import compile_file
from carlang.fmt import NotFormattable, format_source
from carlang.source import Source
from tests.conftest import ROOT

SEED = 11
#: ~16 s on this machine; `CARLANG_FUZZ_INPUTS=100000` for a long run.
INPUTS = int(os.environ.get("CARLANG_FUZZ_INPUTS", "2000"))
#: Every how many inputs `carlang fmt` itself runs on a file (the CLI is slower than a call),
#: and formatting the formatted text is checked to change nothing.
CLI_EVERY = 40
IDEMPOTENT_EVERY = 10

_INSERTS = [
    '"\\ud800"',
    '"a\\udc00\\ud800"',
    "1" * 5000,
    "99999999999999999999",
    "4294967296",
    "1e400",
    "-1e400",
    "[" * 200,
    "list[" * 150,
    "{",
    "}",
    "(",
    ")",
    '"',
    "'",
    "\x00",
    "\u2028",
    "\r",
    "#",
    "$x",
    "5sec",
    ",",
    ":",
    "==",
    "after a",
    "reads k",
    "compensate with x",
    'import "nope.car"\n',
    "\n",
]
_NUMBER = re.compile(r"\d+")
_OUT_OF_RANGE = ["4294967296", "18446744073709551616", "99999999999999999999", "1" * 400, "0"]


def _mutate(text: str, rng: random.Random) -> str:
    for _ in range(rng.randint(1, 3)):
        at = rng.randrange(len(text) + 1)
        edit = rng.randrange(6)
        if edit == 0:
            text = text[:at] + text[at + rng.randint(1, 20) :]
        elif edit == 1:
            text = text[:at] + rng.choice(_INSERTS) + text[at:]
        elif edit == 2:
            start = rng.randrange(len(text) + 1)
            text = text[:at] + text[start : start + rng.randint(1, 60)] + text[at:]
        elif edit == 3:
            text = text[:at]
        elif edit == 4:
            numbers = list(_NUMBER.finditer(text))
            if numbers:
                found = rng.choice(numbers)
                text = text[: found.start()] + rng.choice(_OUT_OF_RANGE) + text[found.end() :]
        else:
            lines = text.split("\n")
            i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
            text = "\n".join(lines)
    return text


def _inputs() -> list[tuple[Path, str]]:
    rng = random.Random(SEED)
    examples = [(p, p.read_text()) for p in sorted((ROOT / "examples").rglob("*.car"))]
    out = []
    for _ in range(INPUTS):
        path, text = rng.choice(examples)
        out.append((path, _mutate(text, rng)))
    return out


def _fmt_in_process(name: str, text: str, idempotent: bool) -> None:
    """`format_source` formats or refuses; what it returns it has reparsed and compared
    itself. Every so often, also: formatting its output changes nothing."""
    try:
        formatted = format_source(Source(name, text))
    except NotFormattable:
        return
    if idempotent:
        assert format_source(Source(name, formatted)) == formatted, (name, text)


def _fmt_cli(runner: CliRunner, path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    before = path.read_bytes()
    result = runner.invoke(app, ["fmt", str(path)])
    assert result.exit_code in (0, 1), (result.output, text)
    after = path.read_bytes()
    if result.exit_code == 1:
        assert after == before, text
    elif after != before:
        assert after.decode("utf-8") == format_source(Source(path.name, text))


@pytest.mark.slow  # 11 s: thousands of mutated files through check and fmt
def test_mutated_examples_never_break_check_or_fmt(tmp_path: Path) -> None:
    runner = CliRunner()
    for number, (path, text) in enumerate(_inputs()):
        try:
            result = compile_file(path, ROOT, text=text)
            _fmt_in_process(path.name, text, idempotent=number % IDEMPOTENT_EVERY == 0)
        except Exception as exc:  # the point of the test: report the input, not just the error
            raise AssertionError(f"input {number} from {path.name}: {exc!r}\n{text}") from exc
        assert all(d.code.startswith("CL") for d in result.diagnostics.items)
        if number % CLI_EVERY == 0:
            _fmt_cli(runner, tmp_path / "fuzzed.car", text)
