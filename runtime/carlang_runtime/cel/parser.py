"""Parsing CEL with cel-python's own grammar (celpy/cel.lark).

The grammar comes from cel-python, compiled by lark with cel-python's options into tables that
are checked in (cel_tables.json, regenerate with `python -m carlang_runtime.cel.parser`) and
run by `carlang_runtime.lalr` without importing lark. If the installed cel-python ships a
different grammar, the tables are rebuilt from it at first use. The tree is lark's shape
(`Node(data, children, span)`; tokens are `(type, text, start, end)`), so it reads like
cel-python's own parse tree, except that one-operand steps of the precedence ladder
(`expr` -> `conditionalor` -> ... -> `primary`) are collapsed into their operand.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any, Final

from ..errors import CarlangRuntimeError
from ..lalr import (
    END,
    Engine,
    Node,
    Problem,
    Token,
    build_tables,
    load_tables,
    shown_character,
)

__all__ = ["CelSyntaxError", "parse_cel", "grammar_text", "TABLES_PATH"]

TABLES_PATH = Path(__file__).resolve().parent / "cel_tables.json"
_OPTIONS: dict[str, Any] = {
    "g_regex_flags": re.M,
    "maybe_placeholders": False,
    "priority": "invert",
}
_ENGINE: Engine | None = None
# The precedence ladder: with one operand, each of these is only a step down to the next.
_LADDER = frozenset(
    {
        "expr",
        "conditionalor",
        "conditionaland",
        "relation",
        "addition",
        "multiplication",
        "unary",
        "member",
        "primary",
        "paren_expr",
    }
)
# One builder object for every parse, so the engine makes its reduction callbacks once.
_BUILDER = object()

# How the CEL grammar's terminals are named in messages.
_WORDS = {
    "IDENT": "a name",
    "ESC_IDENT": "a `quoted` name",
    "INT_LIT": "a number",
    "UINT_LIT": "a number",
    "FLOAT_LIT": "a number",
    "STRING_LIT": "a string",
    "MLSTRING_LIT": "a string",
    "BYTES_LIT": "bytes",
    "BOOL_LIT": "true or false",
    "NULL_LIT": "null",
    END: "the end of the condition",
}


class CelSyntaxError(CarlangRuntimeError):
    """CEL text that does not parse; `line` and `column` are 1-based, inside the expression."""

    def __init__(self, message: str, line: int, column: int, *, literal: bool = False) -> None:
        super().__init__(f"{line}:{column}: {message}")
        self.message = message
        self.line = line
        self.column = column
        #: A literal that no value can hold (a number out of range): the text is fine otherwise.
        self.literal = literal


# What cel-python's grammar lacks of cel-spec's, added rule by rule: optional selection
# `a.?b` and `a[?k]`, optional list elements `[?x]` and map entries `{?k: v}` (cel-go's
# optional library), and backtick-quoted field names `` a.`content-type` `` (cel-spec 0.24).
_ADDITIONS: Final = (
    (
        "member         : member_dot | member_dot_arg | member_index | member_object | primary",
        "member         : member_dot | member_dot_arg | member_index | member_object"
        " | member_dot_opt | member_index_opt | primary\n"
        'member_dot_opt : member "." "?" (IDENT | ESC_IDENT)\n'
        'member_index_opt : member "[" "?" expr "]"',
    ),
    ('member_dot     : member "." IDENT', 'member_dot     : member "." (IDENT | ESC_IDENT)'),
    # One rule for list elements and call arguments, as in cel-python (the tree builder
    # refuses `?` in arguments), so that the trees stay cel-python's where it parses.
    (
        'exprlist       : expr ("," expr)*',
        'exprlist       : (expr | opt_expr) ("," (expr | opt_expr))*\nopt_expr       : "?" expr',
    ),
    (
        'mapinits       : expr ":" expr ("," expr ":" expr)*',
        'mapinits       : (expr | opt_expr) ":" expr ("," (expr | opt_expr) ":" expr)*',
    ),
    (
        "IDENT          : /[_a-zA-Z][_a-zA-Z0-9]*/",
        "IDENT          : /[_a-zA-Z][_a-zA-Z0-9]*/\nESC_IDENT      : /`[_a-zA-Z0-9.\\-\\/ ]+`/",
    ),
)


def grammar_text() -> str:
    """cel-python's grammar (found without importing cel-python, whose import pulls in its
    whole evaluator), with cel-spec's rules that it lacks added (`_ADDITIONS`)."""
    spec = importlib.util.find_spec("celpy")
    if spec is None or spec.origin is None:
        raise RuntimeError("cel-python is not installed; it is a dependency of carlang")
    text = (Path(spec.origin).parent / "cel.lark").read_text("utf-8")
    for rule, extended in _ADDITIONS:
        if rule not in text:
            raise RuntimeError(f"cel-python's grammar has changed: no rule `{rule}` to extend")
        text = text.replace(rule, extended, 1)
    return text


def _ambiguous_literals(token: Token) -> Token:
    # cel-python's own lexer callback: `true` and `false` lex as names, then become literals.
    if token[0] == "IDENT" and token[1] in ("true", "false"):
        return ("BOOL_LIT", token[1], token[2], token[3])
    return token


def _engine() -> Engine:
    global _ENGINE
    if _ENGINE is None:
        tables = load_tables(TABLES_PATH, grammar_text(), "expr", **dict(_OPTIONS))
        _ENGINE = Engine(tables, ident="IDENT", token_hook=_ambiguous_literals, collapse=_LADDER)
    return _ENGINE


def _position(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _describe(names: frozenset[str], literals: dict[str, str]) -> str:
    words = sorted(
        {_WORDS.get(n) or (f"`{literals[n]}`" if n in literals else n.lower()) for n in names}
    )
    return ", ".join(words[:8]) + (", ..." if len(words) > 8 else "")


def _unopened(problem: Problem, literals: dict[str, str]) -> set[str]:
    """The terminals `problem` lists that no text could put there: a closer of a bracket that
    is not the innermost one open (`Problem.closers_not_open`), and `,` outside every bracket
    (a CEL expression has no comma of its own)."""
    commas = {n for n in problem.expected if literals.get(n) == ","}
    return problem.closers_not_open(literals) | (set() if problem.open_brackets else commas)


def parse_cel(text: str) -> Node:
    """The parse tree of a CEL expression; raises `CelSyntaxError` when it does not parse."""
    if not text.strip():
        raise CelSyntaxError("empty condition", 1, 1)
    engine = _engine()
    outcome = engine.parse(text, _BUILDER)
    if not outcome.problems and isinstance(outcome.value, Node):
        return outcome.value
    problem = outcome.problems[0]
    possible = problem.expected - _unopened(problem, engine.literal_text)
    expected = _describe(
        possible - {END} if problem.token is None or problem.token[0] != END else possible,
        engine.literal_text,
    )
    line, column = _position(text, problem.position)
    if problem.token is None:
        shown = shown_character(text[problem.position])
        raise CelSyntaxError(f"unexpected character `{shown}`", line, column)
    if problem.token[0] == END:
        raise CelSyntaxError(f"unexpected end of condition; expected {expected}", line, column)
    raise CelSyntaxError(f"unexpected `{problem.token[1]}`; expected {expected}", line, column)


if __name__ == "__main__":
    TABLES_PATH.write_text(
        build_tables(grammar_text(), "expr", **dict(_OPTIONS)).to_json(), encoding="utf-8"
    )
    print(f"wrote {TABLES_PATH}")
