"""`carlang test` and `carlang check --strict`: the test runner, coverage, report formats, and
the plan-vs-policy checks they rest on."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from carlang_runtime import ir
from carlang_runtime.engine import Runtime
from typer.testing import CliRunner

from carlang.cli import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = Path(__file__).parent / "data" / "schemas"

PROGRAM = """\
tool fetch(url: string, port: int = 443)
tool deploy(env: "staging" | "prod", version: string)
tool run_tests()
state { frozen: bool = false }

policy https_only: deny fetch when !params.url.startsWith("https://")
  message "fetch over https only"
policy prod: require_approval deploy when params.env == "prod"
policy freeze: deny deploy when state.frozen == true
  message "deploys are frozen"
policy tests_first: deny deploy when !history.exists(h, h.tool == "run_tests" && h.status == "succeeded")
  message "deploy only after a succeeded run_tests"

proposal release {
  check = run_tests()
  ship = deploy(env: "staging", version: "1.0") after check
}
plan choose { candidates release }
"""

TESTS = """\
test "https is allowed" {
  action fetch(url: "https://x")
  expect allow
}
test "schemes" {
  action fetch(url: $url)
  expect $decision by $policy
  where
    | url        | decision | policy       |
    | "http://x" | deny     | "https_only" |
    | "ftp://x"  | deny     | https_only   |
}
test "prod asks" {
  action deploy(env: "prod", version: "1.0")
  history [{id: "t", type: "tool_call", tool: "run_tests", params: {}, status: "succeeded"}]
  expect require_approval by prod
}
test "frozen" {
  action deploy(env: "staging", version: "1.0")
  state { frozen: true }
  history [{id: "t", type: "tool_call", tool: "run_tests", params: {}, status: "succeeded"}]
  expect deny by freeze
}
test "untested deploys are denied" {
  action deploy(env: "staging", version: "1.0")
  expect deny by tests_first
}
test "the release verifies" {
  proposal release
  expect valid
}
test "the release wins" {
  plan choose
  expect winner release
}
"""


def write(tmp_path: Path, text: str, name: str = "p.car") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_every_test_passes_and_the_count_is_last(tmp_path: Path) -> None:
    code, out, _ = run("test", str(write(tmp_path, PROGRAM + TESTS)))
    assert code == 0, out
    assert out.splitlines()[-1] == "8 passed, 0 failed"


def test_a_failing_test_fails_with_the_decision_and_its_explanation(tmp_path: Path) -> None:
    failing = 'test "wrong" {\n  action fetch(url: "http://x")\n  expect allow\n}\n'
    code, out, _ = run("test", str(write(tmp_path, PROGRAM + failing)))
    assert code == 1
    assert "FAIL wrong  (p.car:19)" in out
    assert "expected allow, got deny" in out
    assert "decision: deny by https_only (fetch over https only)" in out
    # the sub-expression that decided it, with its value
    assert 'https_only: matched because !params.url.startsWith("https://") -> true' in out
    assert out.splitlines()[-1] == "0 passed, 1 failed"


def test_a_condition_that_failed_is_said_once_per_line(tmp_path: Path) -> None:
    """The explanation shows the failing part with its error: the line does not add the same
    error again ("(its condition failed: ...)" twice over)."""
    program = """tool pay(amount: int, tz: string)
policy hours: require_approval pay when now.getHours(params.tz) < 9
test "t" { action pay(amount: 5, tz: "Mars/Base") now "2026-01-05T12:00:00Z" expect allow }
"""
    code, out, _ = run("test", str(write(tmp_path, program)))
    assert code == 1
    (line,) = [line for line in out.splitlines() if line.strip().startswith("hours: applied")]
    assert line.count("unknown time zone") == 1, line


_DISPUTED = """tool refund(order_id: string, amount: float)
state { order.*: string }
policy disputed: deny refund when state["order." + params.order_id] == "disputed"
test "disputed is denied" {
  action refund(order_id: "ORD-1", amount: 1.0)
  state { order.ORD1: "disputed" }
  expect EXPECTATION
}
"""


def test_a_policy_that_applied_by_failing_did_not_match(tmp_path: Path) -> None:
    """A trial's test passed with 100% coverage because a misspelt state key made the
    condition fail, and the policy failed closed: `expect deny by P` says P's condition
    matched, so that fails, and coverage does not count the failure as the true outcome."""
    path = write(tmp_path, _DISPUTED.replace("EXPECTATION", "deny by disputed"))
    code, out, _ = run("test", str(path), "--coverage")
    assert code == 1
    assert (
        "expected deny by disputed: disputed decided it only because its condition failed to"
        " evaluate (no such key (a string key))" in out
    )
    assert "disputed: applied, failing closed, because" in out
    assert "never exercised (where tests made it apply, its condition failed" in out


def test_a_failing_closed_deny_is_tested_without_by(tmp_path: Path) -> None:
    path = write(tmp_path, _DISPUTED.replace("EXPECTATION", "deny"))
    code, out, _ = run("test", str(path), "--coverage")
    assert code == 0, out
    assert "disputed (p.car:3:1): never exercised (where tests made it apply" in out


def test_a_wrong_deciding_policy_fails(tmp_path: Path) -> None:
    wrong = 'test "by" {\n  action fetch(url: "http://x")\n  expect deny by freeze\n}\n'
    code, out, _ = run("test", str(write(tmp_path, PROGRAM + wrong)))
    assert code == 1 and "expected deny by freeze, but it was decided by https_only" in out


def test_proposal_and_plan_expectations_can_fail(tmp_path: Path) -> None:
    text = PROGRAM.replace("check = run_tests()\n  ship = deploy", "ship = deploy").replace(
        " after check", ""
    )
    tests = (
        'test "v" {\n  proposal release\n  expect valid\n}\n'
        'test "c" {\n  proposal release\n  expect codes CL0520\n}\n'
        'test "c2" {\n  proposal release\n  expect codes CL0305\n}\n'
    )
    code, out, _ = run("test", str(write(tmp_path, text + tests)))
    assert code == 1
    assert "expected valid, got invalid: this action will be denied by tests_first" in out
    assert "expected codes CL0305; found CL0520" in out  # (policy findings are found too)
    assert out.splitlines()[-1] == "1 passed, 2 failed"


def test_expect_codes_takes_codes_and_check_names_it_knows(tmp_path: Path) -> None:
    text = PROGRAM.replace("check = run_tests()\n  ship = deploy", "ship = deploy").replace(
        " after check", ""
    )
    by_check = 'test "c" {\n  proposal release\n  expect codes plan_policies\n}\n'
    code, out, err = run("test", str(write(tmp_path, text + by_check)))
    assert code == 0, out + err  # CL0520's check
    unknown = 'test "c" {\n  proposal release\n  expect codes CL9999, plan_policy\n}\n'
    code, out, err = run("test", str(write(tmp_path, text + unknown)))
    assert code == 1 and "error[CL0701]: no code or check is called `CL9999`" in err


def test_coverage_counts_true_and_false_outcomes(tmp_path: Path) -> None:
    only_https = 'test "a" {\n  action fetch(url: "https://x")\n  expect allow\n}\n'
    code, out, _ = run("test", str(write(tmp_path, PROGRAM + only_https)), "--coverage")
    assert code == 0
    # 4 policies x 2 outcomes; https_only reached false only
    assert "policy coverage: 12.5% of true/false outcomes reached" in out
    assert "https_only (p.car:6:1): never reached true" in out
    assert "prod (p.car:8:1): never exercised" in out
    code, out, _ = run("test", str(write(tmp_path, PROGRAM + TESTS)), "--coverage")
    assert "policy coverage: 100.0%" in out
    code, out, err = run(
        "test", str(write(tmp_path, PROGRAM + only_https)), "--coverage", "--threshold", "50"
    )
    assert code == 1 and "below the threshold of 50%" in out
    assert "below the threshold" not in err  # (said once: the text report says it)


def test_json_and_junit(tmp_path: Path) -> None:
    failing = 'test "wrong" {\n  action fetch(url: "http://x")\n  expect allow\n}\n'
    path = write(tmp_path, PROGRAM + TESTS + failing)
    _, out, _ = run("test", str(path), "--format", "json", "--coverage")
    document = json.loads(out)
    assert (document["passed"], document["failed"]) == (8, 1)
    assert document["coverage"]["policies"]["prod (p.car:8:1)"] == {"true": True, "false": True}
    _, out, _ = run("test", str(path), "--format", "junit")
    tree = ET.fromstring(out)
    jsonschema.validate(_as_data(tree), json.loads((SCHEMAS / "junit.schema.json").read_text()))
    assert tree.get("tests") == "9" and tree.get("failures") == "1"
    failures = tree.findall(".//failure")
    assert len(failures) == 1 and failures[0].get("message") == "p.car:54: expected allow, got deny"


def _as_data(element: ET.Element) -> dict[str, Any]:
    return {
        "tag": element.tag,
        "attrib": dict(element.attrib),
        "children": [_as_data(child) for child in element],
    }


def test_sarif_validates(tmp_path: Path) -> None:
    text = (
        PROGRAM.replace('"https://x"', '"http://x"')
        + 'proposal bad { f = fetch(url: "http://x") }\n'
    )
    code, out, _ = run("check", str(write(tmp_path, text)), "--format", "sarif")
    assert code == 1
    sarif = json.loads(out)
    schema = json.loads((SCHEMAS / "sarif-2.1.0-subset.schema.json").read_text())
    jsonschema.validate(sarif, schema, format_checker=jsonschema.FormatChecker())
    assert "CL0520" in {r["ruleId"] for r in sarif["runs"][0]["results"]}


def test_the_examples_pass_with_full_coverage() -> None:
    code, out, _ = run("test", str(ROOT / "examples"), "--coverage", "--threshold", "90")
    assert code == 0, out
    assert "policy coverage: 100.0%" in out and out.splitlines()[-1].endswith("0 failed")


def test_problems_in_tests_stop_the_run(tmp_path: Path) -> None:
    bad = 'test "x" {\n  action fetch(url: "https://x")\n  expect deny by nope\n}\n'
    code, _, err = run("test", str(write(tmp_path, PROGRAM + bad)))
    assert code == 1 and "error[CL0701]: no policy is called `nope`" in err
    code, _, err = run("test", str(tmp_path), "--threshold", "120")
    assert code == 2 and "percentage" in err


def test_strict_reports_shadowed_and_untested_policies(tmp_path: Path) -> None:
    text = (
        PROGRAM
        + 'policy https_short: deny fetch when !params.url.startsWith("https://") && size(params.url) > 3\n'
        + 'test "a" {\n  action fetch(url: "https://x")\n  expect allow\n}\n'
    )
    code, out, _ = run("check", "--strict", str(write(tmp_path, text)))
    assert code == 1
    assert "warning[CL0523]: policy `https_short` never changes a decision: `https_only`" in out
    assert "warning[CL0524]: policy `prod` is not exercised by any test" in out
    assert "warning[CL0524]: policy `https_only` never reached true" in out
    code, out, _ = run("check", str(tmp_path / "p.car"))
    assert code == 0 and "CL0523" not in out  # only with --strict


def test_strict_leaves_coverage_out_while_there_are_errors(tmp_path: Path) -> None:
    # the tests would not run (`carlang test` refuses), so what they cover is unknown: the
    # wrong condition is the finding, not that its policy looks untested
    text = (
        PROGRAM
        + "policy wrong: deny fetch when params.urll == 1\n"
        + 'test "a" {\n  action fetch(url: "https://x")\n  expect allow\n}\n'
    )
    code, out, _ = run("check", "--strict", str(write(tmp_path, text)))
    assert code == 1 and "error[CL0506]" in out and "`params` has no field `urll`" in out
    assert "CL0524" not in out


@pytest.mark.parametrize(
    ("proposal", "denied"),
    [
        ('check = run_tests()\n  ship = deploy(env: "staging", version: "1") after check', False),
        ('ship = deploy(env: "staging", version: "1")', True),
        # in parallel with the tests, not after them: not on every path
        ('check = run_tests()\n  ship = deploy(env: "staging", version: "1")', True),
    ],
)
def test_trace_rules_are_checked_on_the_dag(tmp_path: Path, proposal: str, denied: bool) -> None:
    text = PROGRAM.split("proposal release")[0] + f"proposal p {{\n  {proposal}\n}}\n"
    code, out, _ = run("check", str(write(tmp_path, text)))
    assert ("will be denied by tests_first" in out) is denied
    assert (code == 1) is denied


def test_trace_rules_are_enforced_by_the_runtime() -> None:
    rt = Runtime()
    rt.register_tool("run_tests", lambda: "ok")
    rt.register_tool("deploy", lambda env="staging": "deployed")
    rt.add_policy(
        ir.CelPolicy(
            name="tests_first",
            tools=["deploy"],
            when='!history.exists(h, h.tool == "run_tests" && h.status == "succeeded")',
        )
    )
    early = rt.execute(
        {"id": "early", "actions": [{"id": "d", "type": "tool_call", "tool": "deploy"}]}
    )
    assert early.results[0].status.value == "rejected"
    ordered = rt.execute(
        {
            "id": "ordered",
            "actions": [
                {"id": "t", "type": "tool_call", "tool": "run_tests"},
                {"id": "d", "type": "tool_call", "tool": "deploy", "depends_on": ["t"]},
            ],
        }
    )
    assert ordered.all_succeeded()


def test_the_pre_commit_hooks_run_the_commands_they_name() -> None:
    hooks = (ROOT / ".pre-commit-hooks.yaml").read_text()
    entries = [line.split(":", 1)[1].strip() for line in hooks.splitlines() if "entry:" in line]
    assert entries == ["carlang fmt --check", "carlang check", "carlang test"]
    for entry in entries:
        code, out, err = run(*entry.split()[1:], str(ROOT / "examples"))
        assert code == 0, out + err


def test_a_plan_is_valid_when_a_candidate_is(tmp_path: Path) -> None:
    tests = (
        'test "ok" {\n  plan choose\n  expect valid\n}\n'
        'test "not" {\n  plan choose\n  expect invalid\n}\n'
    )
    code, out, _ = run("test", str(write(tmp_path, PROGRAM + tests)))
    assert code == 1 and "expected the plan invalid, but release is valid" in out
    assert out.splitlines()[-1] == "1 passed, 1 failed"


xmlschema = pytest.importorskip(
    "xmlschema", reason="xmlschema is not installed (pip install -e '.[test]')"
)


def junit_validator() -> Any:
    """Jenkins' junit-10.xsd (the schema CI servers read JUnit XML by), from pytest's sdist."""
    return xmlschema.XMLSchema(SCHEMAS / "junit-10.xsd")


ROWS = """test "schemes" {
  action fetch(url: $url)
  expect $decision by $policy
  where
    | url          | decision | policy     |
    | "http://x"   | deny     | https_only |
    | "https://x"  | allow    | null       |
    | "https://y"  | deny     | https_only |
}
"""


def test_rows_never_share_a_name(tmp_path: Path) -> None:
    """A `name` cell saying "row 2" above row 2, which has none, made two cases "[row 2]", and
    " a" and "a" two "[a]": `-k` selected both and JUnit had two cases of one name. Every row
    whose name another row has goes by its number."""
    table = """test "named" {
  action fetch(url: $url)
  expect allow
  where
    | name     | url         |
    | "row 2"  | "https://a" |
    | null     | "https://b" |
    | " a"     | "https://c" |
    | "a"      | "https://d" |
    | "plain"  | "https://e" |
}
"""
    code, out, _ = run("test", str(write(tmp_path, PROGRAM + table)), "--format", "json")
    names = [t["name"] for t in json.loads(out)["tests"] if t["name"].startswith("named")]
    assert names == [f"named [{label}]" for label in ("row 1", "row 2", "row 3", "row 4", "plain")]
    assert code == 0


def test_junit_validates_against_jenkins_xsd_with_a_case_per_row_at_its_line(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, PROGRAM + ROWS)
    code, out, _ = run("test", str(path), "--format", "junit", "--coverage", "--threshold", "99")
    assert code == 1
    junit_validator().validate(out)
    tree = ET.fromstring(out)
    rows = [c for c in tree.iter("testcase") if c.get("name", "").startswith("schemes")]
    assert [c.get("name") for c in rows] == [f"schemes [row {n}]" for n in (1, 2, 3)]
    (failure,) = [f for c in rows for f in c.iter("failure")]
    row_line = PROGRAM.count("\n") + 8  # the third row, not the test's first line
    assert failure.get("message") == f"p.car:{row_line}: expected deny by https_only, got allow"
    for case in tree.iter("testcase"):
        assert len(case.get("time", "").partition(".")[2]) <= 3
    # the unmet threshold is in the report, not only in the exit code
    (coverage,) = [c for c in tree.iter("testcase") if c.get("name") == "policy coverage"]
    assert "below the threshold of 99%" in coverage.find("failure").get("message")
    code, out, err = run("test", str(path), "--format", "json", "--threshold", "99")
    document = json.loads(out)
    assert document["coverage"]["met"] is False and "below the threshold" in err
    assert [t["line"] for t in document["tests"]][-3:] == [row_line - 2, row_line - 1, row_line]
    code, out, _ = run("test", str(path))
    assert f"FAIL schemes [row 3]  (p.car:{row_line})" in out


def test_junit_stays_valid_xml_whatever_a_test_is_called_and_says_why_no_test_ran(
    tmp_path: Path,
) -> None:
    """A trial: a test named with a control character made JUnit no XML parser reads, and
    `-k nomatch` wrote a report of no tests and no failure (a green run) while exiting 1."""
    named = ROWS.replace('test "schemes"', 'test "ctrl \\u0001 bell \\u001b[31m"')
    path = write(tmp_path, PROGRAM + named)
    code, out, _ = run("test", str(path), "--format", "junit")
    assert code == 1
    junit_validator().validate(out)
    names = [c.get("name") for c in ET.fromstring(out).iter("testcase")]
    assert "ctrl \\u0001 bell \\u001b[31m [row 1]" in names, names
    code, out, err = run("test", str(path), "--format", "junit", "-k", "nomatch")
    assert code == 1 and "no tests match `nomatch`" in err
    junit_validator().validate(out)
    tree = ET.fromstring(out)
    assert (tree.get("tests"), tree.get("errors")) == ("1", "1")
    (error,) = tree.iter("error")
    assert error.get("message") == f"no tests match `nomatch` in {path}"


def test_a_project_without_tests_is_a_skipped_case_not_an_empty_report(tmp_path: Path) -> None:
    """No tests is a warning (exit 0): the JUnit report had no case at all, where the docs
    promise one saying why no test ran; a skipped case says it without failing CI."""
    path = write(tmp_path, "tool t(n: int)\npolicy big: deny t when params.n > 5\n")
    code, out, err = run("test", str(path), "--format", "junit")
    assert code == 0 and "warning: no tests in" in err
    junit_validator().validate(out)
    (skipped,) = ET.fromstring(out).iter("skipped")
    assert skipped.get("message") == f"no tests in {path}"
    code, out, _ = run("test", str(path), "--format", "json")
    assert code == 0 and json.loads(out)["skipped"] == f"no tests in {path}"


def test_a_threshold_message_never_shows_the_coverage_equal_to_it(tmp_path: Path) -> None:
    """`coverage 86.7% is below the threshold of 86.7%` (it was 86.666...%; a trial)."""
    from carlang.testreport import threshold_problem
    from carlang.testrun import Coverage

    class Measured(Coverage):
        percent = 100 * 13 / 15  # type: ignore[assignment]

    said = threshold_problem(Measured(), 86.7)
    assert said == "coverage 86.67% is below the threshold of 86.7%"
    assert threshold_problem(Measured(), 90) == "coverage 86.7% is below the threshold of 90%"


def test_a_bad_cell_is_reported_at_its_cell_in_text_and_sarif(tmp_path: Path) -> None:
    bad = ROWS.replace(
        '"https://y"  | deny     | https_only', '"https://y"  | deny     | htps_only'
    )
    path = write(tmp_path, PROGRAM + bad)
    row_line = PROGRAM.count("\n") + 8
    code, _, err = run("test", str(path))
    assert (
        code == 1 and f"p.car:{row_line}:33: error[CL0701]: no policy is called `htps_only`" in err
    )
    code, out, _ = run("check", str(path), "--format", "sarif")
    (result,) = [r for r in json.loads(out)["runs"][0]["results"] if r["ruleId"] == "CL0701"]
    region = result["locations"][0]["physicalLocation"]["region"]
    assert (region["startLine"], region["startColumn"]) == (row_line, 33)


def test_a_denial_by_an_allow_list_is_by_each_of_its_allow_policies(tmp_path: Path) -> None:
    """With two allow policies and neither matching, the call is denied by the allow list:
    `expect deny by` either of them holds (as with two deny policies that both match)."""
    program = """tool send(to: string)
policy mail_to: allow send when params.to.endsWith("@example.com")
policy mail_partner: allow send when params.to.endsWith("@partner.com")
policy quiet: deny send when params.to == "x"
test "one" { action send(to: "a@gmail.com")  expect deny by mail_to }
test "other" { action send(to: "a@gmail.com")  expect deny by mail_partner }
test "wrong" { action send(to: "a@gmail.com")  expect deny by quiet }
"""
    code, out, _ = run("test", str(write(tmp_path, program)))
    assert code == 1
    assert "FAIL one" not in out and "FAIL other" not in out
    assert "expected deny by quiet, but it was decided by mail_partner, mail_to" in out
    # both allow policies' traces are shown, not only the one a test named
    assert "mail_partner: did not match because" in out
    assert out.splitlines()[-1] == "2 passed, 1 failed"


def test_a_row_may_expect_a_decision_by_no_policy(tmp_path: Path) -> None:
    code, out, _ = run(
        "test",
        str(
            write(
                tmp_path,
                PROGRAM
                + ROWS.replace(
                    '"https://y"  | deny     | https_only', '"https://y"  | allow    | null'
                ),
            )
        ),
    )
    assert code == 0, out
    wrong = ROWS.replace('"http://x"   | deny     | https_only', '"http://x"   | deny     | null')
    code, out, _ = run("test", str(write(tmp_path, PROGRAM + wrong)))
    assert "expected deny by no policy, but it was decided by https_only" in out


def test_an_empty_cell_is_null_a_decision_by_no_policy(tmp_path: Path) -> None:
    rows = ROWS.replace(
        '"https://y"  | deny     | https_only', '"https://y"  | allow    |           '
    )
    path = write(tmp_path, PROGRAM + rows)
    code, out, _ = run("test", str(path))
    assert code == 0, out
    assert run("fmt", str(path))[0] == 0
    assert '| "https://y" | allow    |            |' in path.read_text()  # fmt keeps it empty
    assert run("test", str(path))[0] == 0
    wrong = ROWS.replace(
        '"http://x"   | deny     | https_only', '"http://x"   | deny     |           '
    )
    code, out, _ = run("test", str(write(tmp_path, PROGRAM + wrong)))
    assert code == 1 and "expected deny by no policy, but it was decided by https_only" in out
    headless = ROWS.replace("| policy", "|       ", 1)
    code, _, err = run("test", str(write(tmp_path, PROGRAM + headless)))
    assert code == 1 and "every column of a table needs a name in its header" in err


@pytest.mark.parametrize("form", ["junit", "json"])
def test_a_program_with_errors_still_gets_a_well_formed_report(tmp_path: Path, form: str) -> None:
    path = write(tmp_path, PROGRAM.replace("tool run_tests()", "tool run_tests(") + ROWS)
    code, out, err = run("test", str(path), "--format", form)
    assert code == 1 and "the tests did not run" in err
    if form == "junit":
        junit_validator().validate(out)
        (error,) = ET.fromstring(out).iter("error")
        assert error.get("type", "").startswith("CL01") and "p.car:" in (error.text or "")
    else:
        document = json.loads(out)
        assert document["errors"] and document["errors"][0]["file"] == "p.car"
        assert document["errors"][0]["line"] > 0 and document["tests"] == []


def test_k_runs_only_the_tests_whose_name_matches(tmp_path: Path) -> None:
    path = write(tmp_path, PROGRAM + TESTS)
    code, out, _ = run("test", str(path), "-k", "schemes")
    assert code == 0 and out.splitlines()[-1] == "2 passed, 0 failed"
    code, out, _ = run("test", str(path), "--run", "the release *")
    assert code == 0 and out.splitlines()[-1] == "2 passed, 0 failed"
    for strict in ([], ["--strict"]):  # (a pattern that selects nothing is a typo)
        code, out, err = run("test", str(path), "-k", "nothing like it", *strict)
        assert code == 1 and "error: no tests match `nothing like it`" in err


@pytest.mark.parametrize("form", ["junit", "json"])
def test_a_run_of_no_test_still_writes_a_well_formed_report(tmp_path: Path, form: str) -> None:
    """`carlang test -k typo --format junit > carlang-tests.xml` in CI: exit 1, and a report
    of no tests that parses (an empty file failed the report step, hiding the cause)."""
    path = write(tmp_path, PROGRAM + TESTS)
    for args in (["-k", "nothing like it"], ["--strict"]):
        if args == ["--strict"]:
            path = write(tmp_path, PROGRAM)  # no test at all, and --strict
        code, out, err = run("test", str(path), "--format", form, *args)
        assert code == 1 and "error: no tests" in err
        if form == "junit":  # (one error case saying why: no tests and no failure read green)
            junit_validator().validate(out)
            assert (ET.fromstring(out).get("tests"), ET.fromstring(out).get("errors")) == ("1", "1")
        else:
            document = json.loads(out)
            assert document.pop("unrun").startswith("no tests")  # (why, in the report too)
            assert document == {"passed": 0, "failed": 0, "errors": [], "tests": []}


def test_k_selects_a_table_row_by_the_name_it_is_shown_with() -> None:
    """`name [row 2]` has brackets, which a glob reads as a set of characters: the name as
    shown selects the row all the same."""
    finance = str(ROOT / "examples" / "finance" / "finance_test.car")
    code, out, _ = run("test", finance, "-k", "payments need the books open [row 2]")
    assert code == 0 and out.splitlines()[-1] == "1 passed, 0 failed", out


def test_a_name_column_names_the_rows_and_an_unused_column_is_warned(tmp_path: Path) -> None:
    """A `name` column no `$name` uses names each row in reports and for `-k`; another column
    no `$column` uses changes nothing, which `check` says (CL0702)."""
    text = (
        PROGRAM
        + """
test "named rows" {
  action fetch(url: $url)
  expect $decision
  where
    | name  | url                    | decision | note    |
    | plain | "http://ci.example/b"  | allow    | "wrong" |
    | tls   | "https://ci.example/b" | allow    | "right" |
}
"""
    )
    path = write(tmp_path, text)
    code, out, _ = run("test", str(path))
    assert code == 1 and "FAIL named rows [plain]" in out and "[row 1]" not in out
    code, out, _ = run("test", str(path), "-k", "named rows [tls]")
    assert code == 0 and out.splitlines()[-1] == "1 passed, 0 failed", out
    code, out, _ = run("check", str(path))
    assert "warning[CL0702]: no `$note` uses column `note`" in out
    assert "`name`: its cells" not in out


def test_a_folder_without_tests_says_so_and_fails_under_strict(tmp_path: Path) -> None:
    write(tmp_path, PROGRAM)
    code, out, err = run("test", str(tmp_path))
    assert code == 0 and "warning: no tests in" in err and "0 passed, 0 failed" in out
    code, _, err = run("test", str(tmp_path), "--strict")
    assert code == 1 and "error: no tests in" in err


STATEFUL = """
state {
  budget_left: int = 100
  build.*: any
}
tool pay(amount: int)
policy low: deny pay when state.budget_left < 10
"""


def test_a_tests_state_uses_the_declared_keys_and_types(tmp_path: Path) -> None:
    """A test's `state { ... }` is checked against the program's state declarations: a
    typo'd key would make the test pass without testing anything."""
    typo = 'test "t" {\n  action pay(amount: 1)\n  state { budget_lft: 5 }\n  expect allow\n}\n'
    code, _, err = run("test", str(write(tmp_path, STATEFUL + typo)))
    assert code == 1
    assert "error[CL0701]: no state key is called `budget_lft`" in err
    assert "did you mean `budget_left`?" in err
    wrong = 'test "t" {\n  action pay(amount: 1)\n  state { budget_left: "5" }\n  expect deny\n}\n'
    code, _, err = run("test", str(write(tmp_path, STATEFUL + wrong)))
    assert code == 1 and "state `budget_left`: expected integer, got string" in err
    good = (
        'test "t" {\n  action pay(amount: 1)\n  state { budget_left: 5, "build.web": true }\n'
        "  expect deny\n}\n"
    )
    code, out, err = run("test", str(write(tmp_path, STATEFUL + good)))
    assert code == 0, out + err


def test_a_commented_multi_line_condition_checks_and_decides(tmp_path: Path) -> None:
    text = (
        "tool pay(amount: float, to: string)\n"
        "policy big: deny pay when (params.amount > 10.0 && # large\n"
        '    params.to != "me#1")  # not to ourselves\n'
        'test "t" {\n  action pay(amount: 20.0, to: "x")\n  expect deny by big\n}\n'
        'test "u" {\n  action pay(amount: 20.0, to: "me#1")\n  expect allow\n}\n'
    )
    code, out, err = run("test", str(write(tmp_path, text)))
    assert code == 0 and out.splitlines()[-1] == "2 passed, 0 failed", out + err


def test_a_deciding_reason_is_not_said_twice() -> None:
    from carlang.testrun import _own_words

    failed = "denied by policy p (its condition failed: no such key: 'x')"
    assert _own_words("p", failed) == " (its condition failed: no such key: 'x')"
    assert _own_words("p", "denied by policy p") == ""
    assert _own_words("p", "policy p requires approval") == ""
    assert _own_words("p", "too much") == " (too much)"


def test_by_names_a_policy_on_the_side_that_decides(tmp_path: Path) -> None:
    """A shadow policy never decides an action, an enforced one never a shadow decision: a
    test asking the other side could never pass, and says how to write it."""
    text = (
        "tool pay(amount: float)\n"
        "policy maybe_big: shadow deny pay when params.amount > 100.0\n"
        'test "a" {\n  action pay(amount: 200.0)\n  expect deny by maybe_big\n}\n'
    )
    code, _, err = run("test", str(write(tmp_path, text)))
    assert code == 1 and "`maybe_big` is a shadow policy: it never decides an action" in err
    assert "write `expect shadow deny by maybe_big`" in err
    fixed = text.replace("expect deny by", "expect shadow deny by")
    code, out, err = run("test", str(write(tmp_path, fixed)))
    assert code == 0, out + err
    # the hint says what the policy decides, not the word written (`allow` by a deny policy)
    code, _, err = run("test", str(write(tmp_path, text.replace("expect deny", "expect allow"))))
    assert code == 1 and "write `expect shadow deny by maybe_big`" in err
    asking = text.replace("shadow deny", "shadow require_approval")
    code, _, err = run("test", str(write(tmp_path, asking)))
    assert code == 1 and "write `expect shadow require_approval by maybe_big`" in err


def test_a_test_needs_a_name_of_its_own(tmp_path: Path) -> None:
    case = '  action fetch(url: "https://x")\n  expect allow\n}\n'
    text = PROGRAM + 'test "same" {\n' + case + 'test "same" {\n' + case + 'test " " {\n' + case
    code, _, err = run("test", str(write(tmp_path, text)))
    assert code == 1
    assert 'error[CL0701]: two tests are called "same"' in err and "the first" in err
    assert "error[CL0701]: a test needs a name" in err


def test_test_names_are_per_file_and_do_not_stop_a_run(tmp_path: Path) -> None:
    case = '  action fetch(url: "https://x")\n  expect allow\n}\n'
    (tmp_path / "lib.car").write_text(PROGRAM + 'test "smoke" {\n' + case)
    main = tmp_path / "main.car"
    main.write_text('import "lib.car"\ntest "smoke" {\n' + case)
    code, out, err = run("test", str(main))
    assert code == 0, out + err  # one "smoke" in each file: apart in every report
    main.write_text(
        'import "lib.car"\nproposal p { a = fetch(url: "https://x") }\n'
        + 'test "twice" {\n'
        + case
        + 'test "twice" {\n'
        + case
    )
    code, _, err = run("test", str(main))
    assert code == 1 and 'two tests are called "twice"' in err
    tools = tmp_path / "fetch_tools.py"
    tools.write_text("def fetch(url):\n    return url\n")
    ran = runner.invoke(
        app, ["run", str(main), "--proposal", "p", "--format", "json", "--tools", f"{tools}:fetch"]
    )
    assert ran.exit_code == 0 and json.loads(ran.stdout)["result"]["results"][0]["action_id"] == "a"


TIMED = """\
tool t(x: int)
policy odd_second: deny t when now.getSeconds() % 2 == 1
policy evenings: require_approval t when now.getHours("Europe/Berlin") >= 20

test "an even second is allowed" {
  action t(x: 1)
  now "2026-01-05T10:00:02Z"
  expect allow
}
test "an odd second is denied" {
  action t(x: 1)
  now "2026-01-05T10:00:01Z"
  expect deny by odd_second
}
test "evenings in Berlin need approval" {
  action t(x: 1)
  now $at
  expect $decision
  where
    | at                          | decision         |
    | "2026-01-05T18:59:58Z"      | allow            |
    | "2026-01-05T20:00:00+01:00" | require_approval |
}
"""


def test_now_pins_the_time_a_test_decides_at(tmp_path: Path) -> None:
    """A time rule's tests pass or fail the same at any time of day (they ran on the wall
    clock before `now`: CI failed on odd seconds)."""
    path = write(tmp_path, TIMED)
    for _ in range(3):
        code, out, _ = run("test", str(path), "--coverage")
        assert code == 0 and out.splitlines()[-1] == "4 passed, 0 failed", out
        assert "policy coverage: 100.0%" in out
    code, out, _ = run("fmt", "--check", str(path))
    assert code == 0, out


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ('now "tomorrow"', "`now`: the string is not an RFC 3339 timestamp"),
        ('now "2026-13-05T10:00:00Z"', "`now`: invalid timestamp: month must be in 1..12"),
        ("now $missing", "`$missing` is not a column of the table"),
    ],
)
def test_a_time_that_is_not_one_stops_the_run(tmp_path: Path, given: str, message: str) -> None:
    text = f'tool t(x: int)\npolicy p: deny t when now.getSeconds() == 1\ntest "x" {{\n  action t(x: 1)\n  {given}\n  expect allow\n}}\n'
    code, _, err = run("test", str(write(tmp_path, text)))
    assert code == 1 and message in err, err


def test_now_is_for_a_test_of_an_action(tmp_path: Path) -> None:
    text = 'tool t(x: int)\nproposal q { a = t(x: 1) }\ntest "x" {\n  proposal q\n  now "2026-01-05T10:00:00Z"\n  expect valid\n}\n'
    code, _, err = run("test", str(write(tmp_path, text)))
    assert code == 1 and "`now` sets the time for a decision about an action" in err


def test_a_history_entry_names_what_the_program_has(tmp_path: Path) -> None:
    """A test's history of calls that can never be made (a tool renamed, a parameter
    misspelt, a status no action has) would test a trace rule against nothing real: each is
    CL0701 at what it names, and the tests do not run."""
    text = """\
tool fetch(url: string)
tool deploy(env: string)
policy fetched_first: deny deploy when !history.exists(h, h.tool == "fetch")
test "stale" {
  action deploy(env: "prod")
  history [{id: "t", type: "tool_call", tool: "fetsh", params: {}, status: "succeded"},
           {id: "f", type: "tool_call", tool: "fetch", params: {ulr: "x"}, status: "succeeded"}]
  expect allow
}
"""
    code, _, err = run("test", str(write(tmp_path, text)))
    assert code == 1
    assert "p.car:6:47: error[CL0701]: history entry 1: no tool is called `fetsh`" in err
    assert "did you mean `fetch`?" in err
    assert "error[CL0701]: history entry 1: no status `succeded`" in err
    assert "p.car:7:65: error[CL0701]: history entry 2: tool `fetch` has no parameter `ulr`" in err
    fixed = text.replace("fetsh", "fetch").replace("succeded", "succeeded").replace("ulr", "url")
    code, out, err = run("test", str(write(tmp_path, fixed)))
    assert code == 0, out + err


def test_a_history_entry_has_the_fields_and_values_a_real_one_has(tmp_path: Path) -> None:
    """A misspelt field (`parms`), an action type that does not exist and a parameter of the
    wrong type passed: the rule was tested against an entry no run can record. Each is now
    CL0701 at what it names. A refused call's parameters are not checked: it may have been
    refused for exactly them; nor is a parameter an entry leaves out."""
    text = """\
tool deploy(env: string)
tool run_tests(suite: string, shards: int)
policy tests_first: deny deploy when !history.exists(h, h.tool == "run_tests")
test "after tests" {
  action deploy(env: "prod")
  history [{id: "t", type: "tool_cal", tool: "run_tests", parms: {}, params: {shards: "two"}, status: "succeeded"}]
  expect allow
}
test "refused" {
  action deploy(env: "prod")
  history [{id: "t", type: "tool_call", tool: "run_tests", params: {suite: 3}, status: "rejected"}]
  expect allow
}
"""
    code, _, err = run("test", str(write(tmp_path, text)))
    assert code == 1
    said = [line for line in err.splitlines() if "error[" in line]
    assert said == [
        "p.car:6:28: error[CL0701]: history entry 1: no type `tool_cal`",
        "p.car:6:59: error[CL0701]: history entry 1 has no field `parms`",
        "p.car:6:79: error[CL0701]: history entry 1: tool 'run_tests': parameter 'shards' has"
        " wrong type: expected integer, got string",
    ], err
    assert "help: did you mean `params`?" in err
    assert "help: a type is one of tool_call, state_write, state_read, assertion" in err
    fixed = text.replace('tool_cal"', 'tool_call"').replace("parms: {}, ", "")
    code, out, err = run("test", str(write(tmp_path, fixed.replace('"two"', "2"))))
    assert code == 0, out + err


def test_a_history_problem_points_into_its_own_entry(tmp_path: Path) -> None:
    """Problems with entry 2 were underlined on entry 1 (the first `id` of the list), and a
    null status named `None`, which the text does not hold (the whole list underlined)."""
    text = """\
tool deploy(env: string)
tool run_tests(suite: string)
policy tests_first: deny deploy when !history.exists(h, h.tool == "run_tests")
test "after tests" {
  action deploy(env: "prod")
  history [{id: "a", type: "tool_call", tool: "run_tests", params: {}, status: "succeeded"},
           {id: 2, type: "tool_call", tool: 7, params: {}, status: null}]
  expect allow
}
"""
    code, _, err = run("test", str(write(tmp_path, text)))
    assert code == 1
    said = [line for line in err.splitlines() if "error[" in line]
    assert said == [
        "p.car:7:13: error[CL0701]: history entry 2: `id` is not a string",
        "p.car:7:39: error[CL0701]: history entry 2: `tool` is not a string or null",
        "p.car:7:60: error[CL0701]: history entry 2: no status `null`",
    ], err


def test_a_test_file_that_does_not_import_its_program_is_told_to(tmp_path: Path) -> None:
    """`deploy_test.car` beside `deploy.car`, without `import "deploy.car"`: the test named an
    unknown policy, with no hint, and its unknown tool was not even reported (the first problem
    dropped the case). Each unknown name is reported, with the import that declares it."""
    write(
        tmp_path,
        'tool deploy(env: string)\npolicy no_prod: deny deploy when params.env == "prod"\n',
        "deploy.car",
    )
    test = write(
        tmp_path,
        'test "prod" {\n  action deploy(env: "prod")\n  expect deny by no_prod\n}\n',
        "deploy_test.car",
    )
    code, _, err = run("test", str(test))
    assert code == 1
    hint = (
        'help: deploy.car declares it, and this file does not import it: add `import "deploy.car"`'
    )
    assert "deploy_test.car:2:10: error[CL0701]: no tool is called `deploy`" in err
    assert "deploy_test.car:3:18: error[CL0701]: no policy is called `no_prod`" in err
    assert err.count(hint) == 2, err
    test.write_text('import "deploy.car"\n' + test.read_text())
    code, out, err = run("test", str(test))
    assert code == 0, out + err


def test_tests_that_cannot_run_report_every_error_check_reports(tmp_path: Path) -> None:
    """A proposal's errors alone do not stop the tests; when another error does, they are
    reported with it, as `check` reports them (one CI round per error is a round too many)."""
    program = """tool refund(amount: float, order_id: string)
policy b: deny refund when params.amout > 10.0
proposal p { y = refund(amount: 1.0) }
test "t" { action refund(amount: 1.0, order_id: "o")  expect allow }
"""
    path = write(tmp_path, program)
    code, checked, checked_err = run("check", str(path))
    code_tested, _, tested = run("test", str(path))
    assert code == code_tested == 1
    said = [line for line in (checked + checked_err).splitlines() if "error[" in line]
    assert len(said) == 2 and "CL0307" in said[1]  # the policy's and the proposal's
    assert [line for line in tested.splitlines() if "error[" in line] == said
    assert (
        "2 errors: the tests did not run (CL0506 at p.car:2:28 stopped them; a proposal's"
        " findings alone would not)"
    ) in tested


def test_action_tests_decide_under_the_projects_capability(tmp_path: Path) -> None:
    """A call the project's capability (carlang.toml) refuses is denied in a test, as `run`,
    `explain` and the agent loop deny it; tests ignored capabilities, saying nothing."""
    program = """tool read_customer(id: string)
tool delete_account(id: string)
capability support { tools allow read_customer }
policy blocked: deny read_customer when params.id == "x"
test "delete is refused" { action delete_account(id: "C1")  expect deny }
test "read is fine" { action read_customer(id: "C1")  expect allow }
test "wrong" { action delete_account(id: "C1")  expect allow }
"""
    path = write(tmp_path, program)
    code, out, _ = run("test", str(path))
    assert code == 1 and "FAIL delete is refused" in out  # no capability: the policies alone
    (tmp_path / "carlang.toml").write_text('capability = "support"\n')
    code, out, _ = run("test", str(path), "--root", str(tmp_path))
    assert code == 1 and out.splitlines()[-1] == "2 passed, 1 failed", out
    assert "FAIL wrong" in out and "FAIL delete" not in out
    assert "decision: deny by capability:support (tool 'delete_account' is not allowed" in out


def test_a_proposal_test_counts_for_coverage(tmp_path: Path) -> None:
    """A proposal test exercises the policies its actions meet, as `check` judges them (the
    state the plan predicts, the history before each action): coverage counts them (it said
    0%, 'never exercised', of a policy a proposal test saw deny)."""
    program = """tool refund(amount: float)
policy big: deny refund when params.amount > 100.0
proposal p {
  small = refund(amount: 5.0)
  large = refund(amount: 500.0) after small
}
test "t" { proposal p  expect invalid }
"""
    code, out, _ = run("test", str(write(tmp_path, program)), "--coverage")
    assert code == 0, out
    assert "policy coverage: 100.0% of true/false outcomes reached" in out


def test_a_call_the_capability_refuses_is_decided_by_it_alone(tmp_path: Path) -> None:
    """No policy is reached by a call the capability refuses: `by` a policy does not hold,
    and coverage does not count the policy as exercised."""
    program = """tool delete_account(id: string)
tool read_customer(id: string)
capability support { tools allow read_customer }
policy nodel: deny delete_account when params.id == "C1"
test "t" { action delete_account(id: "C1")  expect deny by nodel }
"""
    path = write(tmp_path, program)
    (tmp_path / "carlang.toml").write_text('capability = "support"\n')
    code, out, _ = run("test", str(path), "--coverage", "--root", str(tmp_path))
    assert code == 1
    assert "expected deny by nodel, but it was decided by capability:support" in out
    assert "nodel (p.car:4:1): never exercised" in out
    by_it = program.replace("expect deny by nodel", 'expect deny by "capability:support"')
    code, out, _ = run("test", str(write(tmp_path, by_it)), "--root", str(tmp_path))
    assert code == 0, out


def test_a_broken_file_keeps_only_its_own_tests_from_running(tmp_path: Path) -> None:
    """A trial: one file with a CEL error anywhere in the folder stopped every program's
    tests ('1 error: the tests did not run'); the JUnit report lost the good file's cases."""
    good = write(tmp_path, PROGRAM + TESTS)
    (tmp_path / "broken.car").write_text("tool t()\npolicy p: deny t when params.x ==\n")
    code, out, err = run("test", str(tmp_path), "--format", "junit")
    assert code == 1
    junit_validator().validate(out)
    tree = ET.fromstring(out)
    errors = [c for c in tree.iter("testcase") if c.find("error") is not None]
    assert [c.get("classname") for c in errors] == ["broken.car"]
    ran = [c for c in tree.iter("testcase") if c.get("classname") == good.name]
    assert ran and all(c.find("failure") is None for c in ran)
    assert "the tests of broken.car did not run" in err
    code, out, _ = run("test", str(tmp_path))
    last = out.splitlines()[-1]
    assert code == 1 and last.endswith(" passed, 0 failed; 1 program with errors not tested"), out


def test_input_the_command_cannot_use_still_gets_a_report(tmp_path: Path) -> None:
    """A trial: `carlang test polices/ --format junit > t.xml` (a typo) left an empty file,
    as did `--threshold 101`: the report step failed on it, hiding the cause."""
    write(tmp_path, PROGRAM + TESTS)
    for args in ([str(tmp_path / "polices")], [str(tmp_path), "--threshold", "101"]):
        code, out, err = run("test", *args, "--format", "junit")
        assert code == 2 and err.startswith("error: "), err
        junit_validator().validate(out)
        (error,) = ET.fromstring(out).iter("error")
        assert error.get("message") == err.strip()
        code, out, err = run("test", *args, "--format", "json")
        assert code == 2 and json.loads(out)["unrun"] == err.strip()


def test_json_coverage_gives_null_for_an_outcome_a_policy_cannot_have(tmp_path: Path) -> None:
    """A trial: a rate limit's true and a deny_tool rule's false were listed as unreached
    (false) while the percentage counted them as not there at all."""
    program = (
        "tool fetch(url: string)\ntool shell(cmd: string)\n"
        "rate_limit_tool fetch 5 per 1m\ndeny_tool shell\n"
        'test "shell" {\n  action shell(cmd: "ls")\n  expect deny\n}\n'
        'test "fetch" {\n  action fetch(url: "x")\n  expect allow\n}\n'
    )
    code, out, _ = run("test", str(write(tmp_path, program)), "--coverage", "--format", "json")
    assert code == 0, out
    document = json.loads(out)["coverage"]
    assert document["percent"] == 100.0
    outcomes = sorted(document["policies"].values(), key=str)
    assert outcomes == [{"true": None, "false": True}, {"true": True, "false": None}]


def test_a_rule_named_by_its_tool_is_suggested_by_its_ir_name(tmp_path: Path) -> None:
    """`expect deny by shell` said only `no policy is called shell` (a trial)."""
    program = (
        "tool shell(cmd: string)\ndeny_tool shell\n"
        'test "t" {\n  action shell(cmd: "ls")\n  expect deny by shell\n}\n'
    )
    code, _, err = run("test", str(write(tmp_path, program)))
    assert code == 1
    assert "no policy is called `shell`" in err
    assert 'help: did you mean "deny_tool:shell"? (a rule is named as in the IR, quoted)' in err


def test_the_text_report_writes_control_characters_escaped(tmp_path: Path) -> None:
    """A test named with ESC (`\\u001b[31m`) wrote it to the terminal (a trial)."""
    named = ROWS.replace('test "schemes"', 'test "red \\u001b[31m"')
    code, out, _ = run("test", str(write(tmp_path, PROGRAM + named)))
    assert code == 1 and "\x1b" not in out
    assert "FAIL red \\x1b[31m [row 3]" in out


_UNTESTED = """tool t(n: int)
policy big: deny t when params.n > 5
test "small" {
  action t(n: 1)
  expect allow
}
"""
_BROKEN_TEST = """tool u(n: int)
policy p: deny u when params.n > 1
test "x" {
  action u(n: 2)
  expect deny by nosuch
}
"""


def test_check_strict_reports_untested_policies_beside_another_programs_errors(
    tmp_path: Path,
) -> None:
    """One program's broken test hid every other program's untested policies (CL0524) from
    `check --strict`: in a monorepo, from code scanning. As `carlang test` does, a program
    with errors stops only its own tests."""
    (tmp_path / "m3").mkdir()
    (tmp_path / "m4").mkdir()
    write(tmp_path / "m3", _UNTESTED, "a.car")
    write(tmp_path / "m4", _BROKEN_TEST, "b.car")
    code, out, _ = run("check", "--strict", str(tmp_path / "m3"), str(tmp_path / "m4"))
    assert code == 1
    assert "error[CL0701]: no policy is called `nosuch`" in out
    assert "warning[CL0524]: policy `big` never reached true" in out
    assert "policy `p`" not in out  # (its tests did not run: not called untested)


def test_check_strict_and_coverage_agree_under_the_project_capability(tmp_path: Path) -> None:
    """carlang.toml's capability refuses `shell` before any policy: `test --coverage` found
    `no_rm` never exercised, and `check --strict` (its tests run without the capability)
    found nothing."""
    (tmp_path / "carlang.toml").write_text('capability = "bot"\n')
    program = """tool refund(n: int)
tool shell(cmd: string)
capability bot { tools allow refund }
policy no_rm: deny shell when params.cmd.contains("rm")
test "rm" {
  action shell(cmd: "rm -rf /")
  expect deny
}
"""
    path = write(tmp_path, program)
    code, out, _ = run("check", "--strict", str(path))
    assert code == 1 and "policy `no_rm` is not exercised by any test" in out
    code, out, _ = run("test", str(path), "--coverage")
    assert "no_rm (p.car:4:1): never exercised" in out


def test_a_fixture_check_accepts_is_one_test_runs(tmp_path: Path) -> None:
    """A proposal a test expects invalid is the test's fixture: `check` shows its misspelt
    parameter as a note, and `test` (which stopped on it as an error) runs the test."""
    program = """tool refund(order_id: string, amount: float, reason?: string)
proposal too_big {
  r = refund(order_id: "o", amount: 50.0, reson: "x")
}
test "neg" {
  proposal too_big
  expect invalid
}
"""
    path = write(tmp_path, program)
    code, out, _ = run("check", str(path))
    assert code == 0 and "info[CL0203]" in out
    code, out, err = run("test", str(path))
    assert code == 0, err
    assert out.splitlines()[-1] == "1 passed, 0 failed"
    code, out, err = run("test", str(write(tmp_path, program.replace("invalid", "valid"))))
    assert code == 1 and "error[CL0203]" in err


def test_test_shows_the_warnings_about_the_tests_themselves(tmp_path: Path) -> None:
    """A table whose `decision` column no `$decision` uses let a wrong row pass, and CL0702
    was a warning only `check` showed: `carlang test` shows the tests' own warnings too."""
    program = PROGRAM + (
        'test "rows" {\n  action fetch(url: $url)\n  expect deny\n  where\n'
        '    | url        | decision |\n    | "http://x" | deny     |\n'
        '    | "http://y" | allow    |\n}\n'
    )
    code, out, err = run("test", str(write(tmp_path, program)))
    assert "warning[CL0702]: no `$decision` uses column `decision`" in err
    assert code == 0 and out.splitlines()[-1].endswith("0 failed")


def test_an_expectation_the_named_policy_can_never_meet_is_an_error(tmp_path: Path) -> None:
    """`expect require_approval by huge` (a deny policy) and `expect deny by
    "rate_limit_tool:refund"` (a rate limit, which never fires when a test decides one call)
    could only fail, saying "did not match"; `check` now says why at the expectation."""
    program = """tool refund(amount: float)
policy huge: deny refund when params.amount > 1000.0
rate_limit_tool refund 3 per 1m
test "a" {
  action refund(amount: 5000.0)
  expect require_approval by huge
}
test "b" {
  action refund(amount: 5.0)
  expect deny by "rate_limit_tool:refund"
}
"""
    code, out, _ = run("check", str(write(tmp_path, program)))
    assert code == 1
    assert "p.car:6:3: error[CL0701]: `huge` decides deny, never require_approval" in out
    assert "help: write `expect deny by huge`" in out
    assert "p.car:10:3: error[CL0701]: `rate_limit_tool:refund` is a rate limit" in out


def test_a_program_sharing_a_file_with_a_broken_one_is_still_tested(tmp_path: Path) -> None:
    """`a.car` and `b.car` both import `tools.car`; a's test is broken. b's tests still run,
    in `check --strict` as in `carlang test`, and b's own untested policy is reported."""
    write(tmp_path, "tool t(n: int)\n", "tools.car")
    write(tmp_path, 'import "tools.car"\n' + _BROKEN_TEST.split("\n", 2)[2], "a.car")
    b = 'import "tools.car"\npolicy bb: deny t when params.n > 3\n'
    b += 'test "small" {\n  action t(n: 1)\n  expect allow\n}\n'
    write(tmp_path, b, "b.car")
    paths = [str(tmp_path / "a.car"), str(tmp_path / "b.car")]
    code, out, _ = run("check", "--strict", *paths)
    assert "error[CL0701]: no policy is called `nosuch`" in out
    assert "warning[CL0524]: policy `bb` never reached true" in out
    code, out, err = run("test", *paths)
    assert out.splitlines()[-1].startswith("1 passed, 0 failed"), (out, err)


def test_a_fixture_a_test_in_another_file_expects_does_not_stop_its_program(
    tmp_path: Path,
) -> None:
    """A proposal in `p.car` that a test in `p_test.car` expects invalid is that test's
    fixture: `p.car`'s own program is not "a program with errors not tested"."""
    write(
        tmp_path,
        "tool refund(order_id: string, reason?: string)\n"
        'proposal bad {\n  r = refund(order_id: "o", reson: "x")\n}\n',
        "p.car",
    )
    write(
        tmp_path,
        'import "p.car"\ntest "neg" {\n  proposal bad\n  expect invalid\n}\n',
        "p_test.car",
    )
    code, out, err = run("test", str(tmp_path))
    assert code == 0, (out, err)
    assert out.splitlines()[-1] == "1 passed, 0 failed"


def test_the_clock_warning_minds_shadow_policies_and_pragmas(tmp_path: Path) -> None:
    """CL0703 is about what decides the test: a shadow policy reading `now` decides only an
    `expect shadow` test; a pragma that accepts the warning keeps `carlang test` quiet too."""
    program = """tool refund(amount: float)
policy night: shadow require_approval refund when now.getHours() >= 20
test "plain" {
  action refund(amount: 5.0)
  expect allow
}
test "shadowed" {  # carlang: allow CL0703
  action refund(amount: 5.0)
  expect shadow allow
}
test "shadowed loud" {
  action refund(amount: 5.0)
  expect shadow allow
}
"""
    path = write(tmp_path, program)
    code, out, _ = run("check", str(path))
    assert out.count("CL0703") == 1 and "p.car:11:6: warning[CL0703]" in out
    code, _, err = run("test", str(path))
    assert err.count("CL0703") == 1 and "p.car:11:6" in err
    # -k: the warnings of the tests that run, not of those left out
    code, out, err = run("test", str(path), "-k", "plain")
    assert (code, out.strip(), err) == (0, "1 passed, 0 failed", "")
    code, _, err = run("test", str(path), "-k", "loud")
    assert err.count("CL0703") == 1 and "p.car:11:6" in err


def test_an_allow_policy_that_fails_to_evaluate_reached_neither_outcome(tmp_path: Path) -> None:
    """An allow policy whose condition failed (no `ticket` given) counted as its false
    outcome, where a deny policy's failure counts as neither: both count it as failing."""
    program = """tool deploy(env: string, ticket?: string)
policy needs_ticket: allow deploy when params.ticket != ""
test "no ticket" {
  action deploy(env: "prod")
  expect deny
}
test "ticket" {
  action deploy(env: "prod", ticket: "T-1")
  expect allow
}
"""
    code, out, _ = run("test", str(write(tmp_path, program)), "--coverage")
    assert code == 0
    assert "50.0% of true/false outcomes reached" in out
    assert "never reached false (no test where it applies and does not match; in some its" in out
