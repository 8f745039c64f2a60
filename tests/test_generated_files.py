"""Files generated from code must match it: the IR's JSON Schemas and docs/codes.md."""

from __future__ import annotations

import json

import jsonschema
import pytest
from carlang_runtime.ir.schema import SCHEMA_FILES, json_schema, schema_text, shipped_schema_text

from carlang.codes import all_codes, codes_markdown
from tests.conftest import DATA, ROOT


@pytest.mark.parametrize("name", sorted(SCHEMA_FILES))
def test_shipped_schemas_are_current(name: str) -> None:
    assert shipped_schema_text(name) == schema_text(name), (
        f"regenerate: carlang schema {name} > runtime/carlang_runtime/ir/schemas/{SCHEMA_FILES[name]}"
    )


def test_schemas_are_valid_and_accept_car_documents() -> None:
    for name in SCHEMA_FILES:
        jsonschema.Draft202012Validator.check_schema(json_schema(name))
    validator = jsonschema.Draft202012Validator(json_schema("proposal"))
    for path in sorted((DATA / "car").glob("*.car.json")):
        validator.validate(json.loads(path.read_text()))


def test_codes_page_is_current() -> None:
    assert (ROOT / "docs" / "codes.md").read_text() == codes_markdown(), (
        "regenerate: carlang codes --markdown > docs/codes.md"
    )


def test_codes_are_unique_and_well_formed() -> None:
    codes = all_codes()
    assert len({c.code for c in codes}) == len(codes)
    assert len({c.name for c in codes}) == len(codes)
    for code in codes:
        assert code.code.startswith("CL") and len(code.code) == 6
        assert not code.summary[0].isupper() and not code.summary.endswith(".")


def test_code_examples_are_current() -> None:
    from carlang.codes import EXAMPLES_PATH, examples_from_goldens

    current = examples_from_goldens(ROOT / "tests" / "golden" / "diagnostics")
    assert json.loads(EXAMPLES_PATH.read_text()) == current, "regenerate: python -m carlang.codes"


def test_codes_explains_one_code_with_an_example() -> None:
    from typer.testing import CliRunner

    from carlang.cli import app

    result = CliRunner().invoke(app, ["codes", "CL0521"])
    assert result.exit_code == 0
    assert result.output.startswith("CL0521 policy-requires-approval (warning")
    assert "# carlang: allow CL0521" in result.output
    assert "Example:" in result.output and "warning[CL0521]" in result.output
    result = CliRunner().invoke(app, ["codes", "CL0512x"])
    assert result.exit_code == 2 and "no diagnostic code CL0512x" in result.output
