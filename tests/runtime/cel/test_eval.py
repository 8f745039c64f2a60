"""carlang's CEL evaluator on its own: values, errors, explanations, the generated code."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from carlang_runtime.cel import (
    CelEvalError,
    CelSyntaxError,
    CelType,
    CelUint,
    ErrorKind,
    compile,
    format_value,
)

ACTIVATION: dict[str, Any] = {
    "action": {"tool": "http.get", "type": "tool_call", "id": "a1"},
    "params": {"url": "https://arxiv.org/abs/1", "port": 443, "tags": ["a", "b"], "n": None},
    "state": {"build.ok": True, "count": 3},
    "items": [1, 2, 3],
    "ratio": 0.5,
    "now": datetime(2024, 5, 1, 12, 30, 15, 250000, tzinfo=UTC),
}


def run(text: str, activation: dict[str, Any] | None = None) -> Any:
    return compile(text).evaluate(ACTIVATION if activation is None else activation)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('action.tool == "http.get"', True),
        ("params.port == 443 && params.port != 80", True),
        ("params.port == 443.0", True),  # numbers compare by value across types
        ("1u < 2 && 2.5 > 2 && 3 >= 3u", True),
        ("size(params.url) < 200", True),
        ('!params.url.startsWith("http://")', True),
        ('params.url.endsWith("/1") && params.url.contains("arxiv")', True),
        ('params.url.matches("^https://[a-z]+\\\\.org/")', True),
        ('"b" in params.tags && !("c" in params.tags)', True),
        ('state["build.ok"] == true', True),
        ("has(params.port) && !has(params.missing)", True),
        ("items.all(x, x > 0) && items.exists(x, x == 2) && items.exists_one(x, x > 2)", True),
        ("items.map(x, x * 2)", [2, 4, 6]),
        ("items.filter(x, x % 2 == 1)", [1, 3]),
        ("items.map(x, x > 1, x * 10)", [20, 30]),
        ('{"a": 1, "b": 2}.all(k, k in ["a", "b"])', True),
        ("state.count > 2 ? 'many' : 'few'", "many"),
        ("-7 / 2 == -3 && -7 % 2 == -1 && 7 % -2 == 1", True),
        ("5.0 / 0.0", float("inf")),
        ("[1, 2] + [3]", [1, 2, 3]),
        ('"ab" + "cd"', "abcd"),
        ("b'ab' + b'\\x00'", b"ab\x00"),
        ('int("0x1F") + int("-12") + int(2.9)', 31 - 12 + 2),
        ("uint(3) + 1u", CelUint(4)),
        ('double("1e3")', 1000.0),
        ("string(1.5) + string(2u) + string(true)", "1.52true"),
        ('bool("TRUE") && !bool("f")', True),
        ('bytes("é")', "é".encode()),
        ("type(1) == int && type('a') == string && type(null) == null_type", True),
        ("dyn(1) == 1", True),
        ("now.getFullYear() == 2024 && now.getMonth() == 4 && now.getDate() == 1", True),
        ("now.getDayOfMonth() == 0 && now.getDayOfWeek() == 3 && now.getDayOfYear() == 121", True),
        ('now.getHours("+02:00") == 14 && now.getHours("America/New_York") == 8', True),
        ("now.getMilliseconds() == 250 && now.getSeconds() == 15 && now.getMinutes() == 30", True),
        ('now - timestamp("2024-05-01T12:00:00Z") == duration("30m15.25s")', True),
        (
            'duration("1h30m").getMinutes() == 90 && duration("1.5s").getMilliseconds() == 500',
            True,
        ),
        ('timestamp("2024-05-01T12:00:00Z") + duration("-1h") < now', True),
        ('string(duration("90s")) == "90s" && string(duration("-0.25s")) == "-0.25s"', True),
        ('string(timestamp("2024-02-29T23:00:00.5-01:00")) == "2024-03-01T00:00:00.5Z"', True),
        ("int(timestamp('1970-01-01T00:00:01.9Z'))", 1),
        ("[1, [2, 'x']] == [1, [2, 'x']] && {'k': [1]} == {'k': [1]}", True),
        ("[1] == null || null == {}", False),
        # Heterogeneous equality (cel-spec): different types are unequal, not an error.
        ("params.port == '443' || dyn(1) == null || true == 1 || 'b' in [1, 'a']", False),
        ("'a' in [1, 'a'] && 1 == 1.0 && [1, 'a'] == [1.0, 'a']", True),
        ('"\\u00e9" == "é" && "\\101" == "A" && r"\\d" == "\\\\d"', True),
        ("'''two\nlines''' == \"two\\nlines\"", True),
        ("{1: 'a'}[1u] == 'a' && 1.0 in {1: 2}", True),
        ("params.n == null && size(params.n) == 0", True),
        ("int", CelType("int")),
        ("ratio * 2.0", 1.0),
    ],
)
def test_values(text: str, expected: Any) -> None:
    result = run(text)
    assert type(result) is type(expected)
    assert result == expected


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("params.ulr", ErrorKind.NO_SUCH_FIELD),
        ('state["nope"]', ErrorKind.NO_SUCH_KEY),
        ("missing_var == 1", ErrorKind.UNDECLARED_REFERENCE),
        ("[missing_var]", ErrorKind.UNDECLARED_REFERENCE),
        ("1 + 1.0", ErrorKind.NO_MATCHING_OVERLOAD),
        ("1 / 0", ErrorKind.DIVISION_BY_ZERO),
        ("1 % 0", ErrorKind.DIVISION_BY_ZERO),
        ("9223372036854775807 + 1", ErrorKind.OVERFLOW),
        ("-9223372036854775808 / -1", ErrorKind.OVERFLOW),
        ("0u - 1u", ErrorKind.OVERFLOW),
        ("items[3]", ErrorKind.INVALID_ARGUMENT),
        ("items[-1]", ErrorKind.INVALID_ARGUMENT),
        ('"abc"[0]', ErrorKind.NO_MATCHING_OVERLOAD),
        ('"a".matches("(")', ErrorKind.INVALID_ARGUMENT),
        ('timestamp("yesterday")', ErrorKind.INVALID_ARGUMENT),
        ('duration("10 minutes")', ErrorKind.INVALID_ARGUMENT),
        ('int("12abc")', ErrorKind.INVALID_ARGUMENT),
        ("int(1e30)", ErrorKind.OVERFLOW),
        ("!1", ErrorKind.NO_MATCHING_OVERLOAD),
        ("1 ? 2 : 3", ErrorKind.NO_MATCHING_OVERLOAD),
        ("items.all(x, x)", ErrorKind.NO_MATCHING_OVERLOAD),
        ("'a'.all(x, true)", ErrorKind.NO_MATCHING_OVERLOAD),
        ("{'a': 1, 'a': 2}", ErrorKind.INVALID_ARGUMENT),
        ("{1.5: 2}", ErrorKind.NO_MATCHING_OVERLOAD),
        ("nosuchfunction(1)", ErrorKind.NO_MATCHING_OVERLOAD),
        ("'a'.startsWith()", ErrorKind.NO_MATCHING_OVERLOAD),
        ("now.getHours('Mars/Olympus')", ErrorKind.INVALID_ARGUMENT),
    ],
)
def test_errors(text: str, kind: str) -> None:
    with pytest.raises(CelEvalError) as caught:
        run(text)
    assert caught.value.kind == kind
    assert caught.value.message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("false && params.ulr == 1", False),
        ("params.ulr == 1 && false", False),
        ("true || 1 / 0 == 1", True),
        ("1 / 0 == 1 || true", True),
        ("items.exists(x, x / (x - 1) > 0)", True),  # one true absorbs the error at x = 1
        ("[0, 'a'].all(x, x > 0)", False),  # one false absorbs the type error
        ("'x' in [1, 'x']", True),  # found, even though comparing with 1 failed
        ("has(nothing.at_all) || true", True),
    ],
)
def test_errors_absorbed_as_cel_requires(text: str, expected: bool) -> None:
    assert run(text) is expected


@pytest.mark.parametrize(
    "text",
    [
        "params.ulr == 1 && true",
        "true && params.ulr == 1",
        "[1, 'x'].all(x, x > 0)",
        # has() tests a map for a field; anything else, or an error on the way, is an error
        # (cel-spec langdef, Field Selection).
        "has(nothing.at_all)",
        "has(params.port.deeper)",
        "has({'a': 1 / 0}.a)",
    ],
)
def test_errors_not_absorbed_otherwise(text: str) -> None:
    with pytest.raises(CelEvalError):
        run(text)


def test_activation_values_are_used_as_they_are() -> None:
    program = compile("params.tags")
    tags = ["a"]
    assert program.evaluate({"params": {"tags": tags}}) is tags


def test_values_that_are_not_cel_become_cel_errors() -> None:
    program = compile("params.x == 1")
    with pytest.raises(CelEvalError) as caught:
        program.evaluate({"params": {"x": {1, 2}}})
    assert caught.value.kind == ErrorKind.NO_MATCHING_OVERLOAD
    with pytest.raises(CelEvalError):
        compile("params.x.y").evaluate({"params": {"x": object()}})


def test_syntax_errors_have_line_and_column() -> None:
    with pytest.raises(CelSyntaxError) as caught:
        compile('action.tool == "a" &&\n  params.url.startsWith(')
    assert (caught.value.line, caught.value.column) == (2, 25)
    with pytest.raises(CelSyntaxError) as caught:
        compile("9223372036854775808 > 1")
    assert "int64" in caught.value.message
    with pytest.raises(CelSyntaxError) as caught:
        compile('"bad \\q escape"')
    assert "escape" in caught.value.message
    with pytest.raises(CelSyntaxError):
        compile("items.all(1, true)")
    with pytest.raises(CelSyntaxError):
        compile("has(params)")
    with pytest.raises(CelSyntaxError):
        compile("Message{field: 1}")


@pytest.mark.parametrize(
    ("text", "listed", "left_out"),
    [
        ("params.amount > 10 approval_timeout", "`&&`", ("`)`", "`,`")),  # (a trial's)
        ("size(params.url", "`)`", ("`]`", "`}`")),
        ("[1, 2 3]", "`,`", ("`)`", "`}`")),
        ("x.all(y, y > 1 z)", "`)`", ("`]`",)),
    ],
)
def test_a_syntax_error_lists_only_closers_of_the_brackets_open(
    text: str, listed: str, left_out: tuple[str, ...]
) -> None:
    """The LALR tables' merged states accept `)` after any expression: listing it where no
    bracket is open sent a user looking for a parenthesis that was never there."""
    with pytest.raises(CelSyntaxError) as caught:
        compile(text)
    expected = caught.value.message.split("expected ", 1)[1]
    assert listed in expected, caught.value.message
    assert not any(word in expected for word in left_out), caught.value.message


def test_explain_names_what_decided_a_denial() -> None:
    program = compile('params.env == "prod" && params.replicas > 3 && !params.dry_run')
    explanation = program.explain({"params": {"env": "prod", "replicas": 5, "dry_run": False}})
    assert explanation.value is True
    assert [(t.text, t.value) for t in explanation.terms] == [
        ('params.env == "prod"', True),
        ("params.replicas > 3", True),
        ("!params.dry_run", True),
    ]
    assert str(explanation) == (
        'params.env == "prod" -> true; params.replicas > 3 -> true; !params.dry_run -> true'
    )


def test_explain_names_the_operand_that_made_it_false_or_true() -> None:
    program = compile('params.env == "prod" && params.replicas > 3 || params.force')
    explanation = program.explain({"params": {"env": "dev", "replicas": 5, "force": False}})
    assert explanation.value is False
    assert [(t.text, t.value) for t in explanation.terms] == [
        ('params.env == "prod"', False),
        ("params.force", False),
    ]
    explanation = program.explain({"params": {"env": "dev", "replicas": 5, "force": True}})
    assert [(t.text, t.value) for t in explanation.terms] == [("params.force", True)]


def test_explain_reports_errors_and_conditions() -> None:
    program = compile("params.a ? params.b > 1 : params.c")
    explanation = program.explain({"params": {"a": True, "b": 0}})
    assert [(t.text, t.value) for t in explanation.terms] == [
        ("params.a", True),
        ("params.b > 1", False),
    ]
    failed = compile("params.missing > 1 && true").explain({"params": {}})
    assert isinstance(failed.value, CelEvalError)
    assert failed.terms[0].text == "params.missing > 1"
    assert isinstance(failed.terms[0].value, CelEvalError)
    assert "no such key" in str(failed)


def test_variables_read_are_known() -> None:
    program = compile("action.tool == 'x' && items.all(i, i > 0)")
    assert program.variables == {"action", "items"}
    assert "def _evaluate" in program.python_source


def test_format_value_writes_cel() -> None:
    assert format_value([1, CelUint(2), 1.5, 'a"b', b"x", None, True, {"k": []}]) == (
        '[1, 2u, 1.5, "a\\"b", b"x", null, true, {"k": []}]'
    )
    assert format_value(datetime(2024, 1, 2, tzinfo=UTC)) == ('timestamp("2024-01-02T00:00:00Z")')
    assert format_value(timedelta(seconds=-1.5)) == 'duration("-1.5s")'
    assert format_value(float("nan")) == 'double("NaN")'
