"""Golden files: every example's IR, and the exact text of the diagnostics for each case in
tests/golden/diagnostics. Update with `pytest --update-goldens` and review the diff."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from carlang.compiler import compile_file
from carlang.render import render_text
from tests.conftest import ROOT
from tests.golden_files import check_golden

EXAMPLES = sorted((ROOT / "examples").rglob("*.car"))
DIAGNOSTIC_CASES = sorted((ROOT / "tests" / "golden" / "diagnostics").glob("*.car"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(ROOT / "examples")))
def test_example_ir(path: Path, update_goldens: bool) -> None:
    # unused declarations are judged across all examples (`carlang check examples`, tested in
    # test_cli_lang), not per file: a shared library file uses nothing itself
    result = compile_file(path, ROOT, report_unused=False)
    # an example may show a step that waits for approval (a plan-vs-policy warning)
    shown = [d for d in result.diagnostics.items if d.code not in ("CL0521", "CL0522")]
    assert not shown, render_text(result.diagnostics.sorted())
    assert result.program is not None
    ir_json = json.dumps(result.program.model_dump(mode="json"), indent=2) + "\n"
    name = str(path.relative_to(ROOT / "examples")).replace("/", "__").removesuffix(".car")
    check_golden(
        ROOT / "tests" / "golden" / "examples" / f"{name}.ir.json", ir_json, update_goldens
    )


@pytest.mark.parametrize("path", DIAGNOSTIC_CASES, ids=lambda p: p.stem)
def test_diagnostics_text(path: Path, update_goldens: bool) -> None:
    result = compile_file(path, path.parent)
    text = render_text(result.diagnostics.sorted()) + "\n"
    check_golden(path.with_suffix(".diag"), text, update_goldens)


STRICT_CASES = sorted((ROOT / "tests" / "golden" / "strict").glob("*.car"))


@pytest.mark.parametrize("path", STRICT_CASES, ids=lambda p: p.stem)
def test_strict_diagnostics_text(path: Path, update_goldens: bool) -> None:
    """The findings only `check --strict` makes (CL0523-CL0526), and a pragma's own (CL0107,
    found where pragmas are read), as `check --strict` prints them."""
    from typer.testing import CliRunner

    from carlang.cli import app

    args = ["check", "--strict", "--root", str(path.parent), str(path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    check_golden(path.with_suffix(".diag"), result.stdout, update_goldens)


def test_every_compiler_code_has_a_case() -> None:
    from carlang.codes import COMPILER_CODES

    seen = set()
    for path in [*DIAGNOSTIC_CASES, *STRICT_CASES]:
        diag = path.with_suffix(".diag")
        if diag.exists():
            seen |= {
                line.split("[", 1)[1].split("]", 1)[0]
                for line in diag.read_text().splitlines()
                if ": error[" in line or ": warning[" in line
            }
    untested = (
        {c.code for c in COMPILER_CODES} - seen - {"CL0105"}
    )  # (a file that is not UTF-8: tested in test_cli_lang)
    assert not untested, f"codes without a golden case: {sorted(untested)}"


def test_the_codes_without_an_example_are_these_and_say_so() -> None:
    """`carlang codes CODE` shows an example from the goldens; the few codes no program can
    show (a file that is not UTF-8, a JSON proposal's own findings) say that there is none."""
    import json

    from carlang.codes import EXAMPLES_PATH, all_codes, explain_code

    examples = json.loads(EXAMPLES_PATH.read_text(encoding="utf-8"))
    without = {c.code for c in all_codes() if c.code not in examples}
    assert without == {"CL0105", "CL0304", "CL0305", "CL0315"}
    assert all((explain_code(code) or "").endswith("No example is on record.") for code in without)
