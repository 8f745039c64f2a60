"""The parse engine: lark's LALR(1) tables for grammar/carlang.lark, run by a small driver.

lark compiles the grammar (and caches the tables on disk), and its tree-builder callbacks shape
each reduction exactly as lark would (placeholders, inlined `_rules`, aliases) before handing it
to the AST builder. The driver around them adds what lark's own loop does not give together:

- an exact span for every reduction (the first to the last character it covers), so every AST
  node has one without lark's slower position propagation;
- a contextual lexer that skips whitespace and comments in the same step as matching, and
  collects comments for `fmt`;
- a keyword where a name was meant (`retry = fetch()` as an action name) is read as the name;
- errors are collected and parsing resumes at the next top-level declaration.

Tokens are plain tuples `(type, text, start, end)`; positions are character offsets.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .grammar import grammar_text

__all__ = ["Token", "SyntaxProblem", "ParseOutcome", "ParseEngine", "engine"]

Token = tuple[str, str, int, int]

_END = "$END"
_BRACKETS = frozenset("{}()[]")
_IDENT = "IDENT"
_MAX_ERRORS = 20
#: Keywords that start a top-level declaration; error recovery resumes at one of them when it
#: is the first thing on its line.
DECLARATION_KEYWORDS = frozenset(
    {
        "tool", "state", "capability", "budget", "policy", "deny_tool", "deny_keyword",
        "deny_tool_param", "allow_tool_param", "deny_tool_param_matching", "rate_limit_tool",
        "require_state", "proposal", "plan", "test", "import",
    }
)


@dataclass(frozen=True, slots=True)
class SyntaxProblem:
    """Where parsing failed: the offending token (None at an unexpected character), the
    terminals that would have been accepted, and the brackets still open."""

    position: int
    token: Token | None
    expected: frozenset[str]
    open_brackets: tuple[tuple[str, int], ...]
    after: Token | None


@dataclass(slots=True)
class ParseOutcome:
    """The builder's result for the whole input (None if nothing could be built), the
    syntax problems, and the comments seen as `(start, end)` offsets."""

    value: Any
    problems: list[SyntaxProblem] = field(default_factory=list)
    comments: list[tuple[int, int]] = field(default_factory=list)


class _Scanner:
    """The lexer for one set of acceptable terminals: one compiled alternation, plus the words
    that read as keywords when the identifier pattern matches them."""

    __slots__ = ("regex", "keywords")

    def __init__(self, regex: re.Pattern[str], keywords: dict[str, str]) -> None:
        self.regex = regex
        self.keywords = keywords


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "carlang"


def _build_lark(text: str) -> Any:
    from lark import Lark

    options: dict[str, Any] = {"parser": "lalr", "maybe_placeholders": True}
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    for directory in (_cache_dir(), Path(tempfile.gettempdir()) / "carlang-cache"):
        try:
            directory.mkdir(parents=True, exist_ok=True)
            return Lark(text, cache=str(directory / f"grammar-{digest}.lark"), **options)
        except OSError:
            continue  # an unwritable cache is not an error: try the next, or build uncached
    return Lark(text, **options)


class ParseEngine:
    """The compiled grammar and the driver. Build once (`engine()`), parse many times."""

    def __init__(self) -> None:
        from lark.lexer import PatternStr
        from lark.parse_tree_builder import ParseTreeBuilder
        from lark.parsers.lalr_analysis import Shift

        lark = _build_lark(grammar_text())
        table = lark.parser.parser._parse_table
        self._shift = Shift
        self.states: dict[int, dict[str, tuple[Any, Any]]] = table.states
        self.start_state: int = table.start_states["start"]
        self.end_state: int = table.end_states["start"]
        self._rules = lark.rules
        self._tree_builder_class = ParseTreeBuilder
        self.terminals = {t.name: t for t in lark.terminals}
        ignore = [self.terminals[name].pattern.to_regexp() for name in lark.lexer_conf.ignore]
        self._skip = re.compile("(?:" + "|".join(ignore) + ")+")
        self._comment = re.compile(self.terminals["COMMENT"].pattern.to_regexp())
        ident = re.compile(self.terminals[_IDENT].pattern.to_regexp())
        #: keyword text -> terminal name, for every literal the identifier pattern matches
        self.keyword_types = {
            t.pattern.value: t.name
            for t in lark.terminals
            if isinstance(t.pattern, PatternStr) and ident.fullmatch(t.pattern.value)
        }
        self.literal_text = {
            t.name: t.pattern.value for t in lark.terminals if isinstance(t.pattern, PatternStr)
        }
        self._scanners: dict[frozenset[str], _Scanner] = {}
        self._state_scanner: dict[int, _Scanner] = {}
        self.top_states = frozenset(s for s, acts in self.states.items() if "proposal_decl" in acts)
        self._all_terminals = frozenset(self.terminals) - frozenset(lark.lexer_conf.ignore)

    # -- lexing ------------------------------------------------------------------------------

    def _scanner_for(self, accepts: frozenset[str]) -> _Scanner:
        scanner = self._scanners.get(accepts)
        if scanner is None:
            scanner = self._scanners[accepts] = self._build_scanner(accepts)
        return scanner

    def _build_scanner(self, accepts: frozenset[str]) -> _Scanner:
        from lark.lexer import PatternStr

        defs = [self.terminals[name] for name in accepts if name in self.terminals]
        keywords: dict[str, str] = {}
        alternatives = []
        has_ident = _IDENT in accepts
        defs.sort(key=lambda t: (-t.priority, -t.pattern.max_width, -len(t.pattern.value), t.name))
        for t in defs:
            if isinstance(t.pattern, PatternStr) and t.pattern.value in self.keyword_types:
                keywords[t.pattern.value] = t.name
                if has_ident:
                    continue  # read as an identifier, then recognised as this keyword
                pattern = re.escape(t.pattern.value) + r"(?![A-Za-z0-9_.*])"
            else:
                pattern = t.pattern.to_regexp()
            alternatives.append(f"(?P<{t.name}>{pattern})")
        regex = re.compile("|".join(alternatives) if alternatives else r"(?!x)x")
        return _Scanner(regex, keywords)

    def _scanner_at(self, state: int) -> _Scanner:
        scanner = self._state_scanner.get(state)
        if scanner is None:
            accepts = frozenset(k for k in self.states[state] if k.isupper())
            scanner = self._state_scanner[state] = self._scanner_for(accepts)
        return scanner

    def expected_at(self, state: int) -> frozenset[str]:
        """The terminals acceptable in a parser state."""
        return frozenset(k for k in self.states[state] if k.isupper())

    # -- parsing -----------------------------------------------------------------------------

    def callbacks(self, builder: object) -> dict[Any, Callable[[list[Any]], Any]]:
        """lark's tree-shaping callbacks, calling `builder`'s methods (one per rule)."""
        tree_builder = self._tree_builder_class(self._rules, _PassThroughTree, False, False, True)
        result: dict[Any, Callable[[list[Any]], Any]] = tree_builder.create_callback(builder)
        return result

    def parse(self, text: str, builder: Any) -> ParseOutcome:
        """Parse `text`, calling `builder.<rule>(...)` for each reduction with `builder.span`
        set to the `(start, end)` it covers."""
        return _Run(self, text, builder).run()


class _PassThroughTree:
    """What lark builds for rules the builder has no method for (only `_inlined` rules, whose
    children the parent's callback splices in)."""

    __slots__ = ("data", "children", "meta")

    def __init__(self, data: str, children: list[Any], meta: Any = None) -> None:
        self.data = data
        self.children = children
        self.meta = meta


class _Run:
    """One parse: the stacks, the position and the problems found so far."""

    def __init__(self, engine: ParseEngine, text: str, builder: Any) -> None:
        self.engine = engine
        self.text = text
        self.builder = builder
        self.callbacks = engine.callbacks(builder)
        self.states = engine.states
        self.state_stack = [engine.start_state]
        self.value_stack: list[Any] = []
        self.span_stack: list[tuple[int, int]] = []
        self.pos = 0
        self.outcome = ParseOutcome(None)
        self.brackets: list[tuple[str, int]] = []
        self.checkpoint: tuple[list[int], list[Any], list[tuple[int, int]]] | None = None
        self.last: Token | None = None

    def skip_ignored(self) -> None:
        """Move past whitespace and comments, recording the comments."""
        match = self.engine._skip.match(self.text, self.pos)
        if match is None:
            return
        if "#" in match.group():
            for comment in self.engine._comment.finditer(self.text, self.pos, match.end()):
                self.outcome.comments.append((comment.start(), comment.end()))
        self.pos = match.end()

    def _track_brackets(self, token: Token) -> None:
        text = token[1]
        if text in ("{", "(", "["):
            self.brackets.append((text, token[2]))
        elif text in ("}", ")", "]") and self.brackets:
            self.brackets.pop()

    def problem(self, token: Token | None) -> None:
        """Record why the parse stopped at the current position."""
        expected = self.engine.expected_at(self.state_stack[-1])
        self.outcome.problems.append(
            SyntaxProblem(self.pos if token is None else token[2], token, expected,
                          tuple(self.brackets), self.last)
        )

    def recover(self) -> Token:
        """Skip to the next declaration keyword at the start of a line and restore the stacks
        to the last top-level point; returns the token to continue with."""
        root = self.engine._scanner_for(self.engine._all_terminals)
        while True:
            self.skip_ignored()
            if self.pos >= len(self.text):
                token: Token = (_END, "", self.pos, self.pos)
                break
            match = root.regex.match(self.text, self.pos)
            if match is None:
                self.pos += 1
                continue
            value = match.group()
            start, self.pos = self.pos, match.end()
            at_line_start = start == 0 or self.text.rfind("\n", 0, start) == start - 1
            if value in DECLARATION_KEYWORDS and at_line_start:
                token = (self.engine.keyword_types[value], value, start, self.pos)
                break
        if self.checkpoint is not None:
            states, values, spans = self.checkpoint
            self.state_stack, self.value_stack, self.span_stack = list(states), list(values), list(spans)
        else:
            self.state_stack, self.value_stack, self.span_stack = [self.engine.start_state], [], []
        self.brackets = []
        return token

    def run(self) -> ParseOutcome:
        """Parse to the end. The common path (lex a token, reduce, shift) runs inline with
        local variables; errors and recovery go through the methods above."""
        engine, text = self.engine, self.text
        states, shift, end_state = self.states, engine._shift, engine.end_state
        top_states, keyword_types = engine.top_states, engine.keyword_types
        callbacks, builder = self.callbacks, self.builder
        skip, comment_re = engine._skip, engine._comment
        scanner_at, comments = engine._scanner_at, self.outcome.comments
        length = len(text)
        pending: Token | None = None
        while True:
            if pending is not None:
                token: Token | None = pending
                pending = None
            else:
                # -- lex: skip whitespace and comments, then match in the current state
                pos = self.pos
                skipped = skip.match(text, pos)
                if skipped is not None:
                    if "#" in skipped.group():
                        for found in comment_re.finditer(text, pos, skipped.end()):
                            comments.append((found.start(), found.end()))
                    pos = skipped.end()
                if pos >= length:
                    token = (_END, "", pos, pos)
                else:
                    scanner = scanner_at(self.state_stack[-1])
                    match = scanner.regex.match(text, pos)
                    if match is None:
                        token = None
                    else:
                        kind = match.lastgroup
                        value = match.group()
                        if kind == _IDENT:
                            kind = scanner.keywords.get(value, _IDENT)
                        token = (kind, value, pos, match.end())  # type: ignore[assignment]
                        pos = match.end()
                self.pos = pos
            # -- parse: reduce while the table says so, then shift
            accepted = False
            if token is not None:
                kind = token[0]
                state_stack, value_stack, span_stack = self.state_stack, self.value_stack, self.span_stack
                while True:
                    state = state_stack[-1]
                    actions = states[state]
                    action = actions.get(kind)
                    if action is None:
                        if kind != _IDENT and token[1] in keyword_types and _IDENT in actions:
                            kind = _IDENT  # a keyword where a name was meant
                            token = (_IDENT, token[1], token[2], token[3])
                            continue
                        break
                    act, arg = action
                    if act is shift:
                        value = token[1]
                        if state in top_states and value in DECLARATION_KEYWORDS:
                            self.checkpoint = (list(state_stack), list(value_stack), list(span_stack))
                        state_stack.append(arg)
                        value_stack.append(token)
                        span_stack.append((token[2], token[3]))
                        if value in _BRACKETS:
                            self._track_brackets(token)
                        self.last = token
                        accepted = True
                        break
                    size = len(arg.expansion)
                    if size:
                        children = value_stack[-size:]
                        span = (span_stack[-size][0], span_stack[-1][1])
                        del state_stack[-size:]
                        del value_stack[-size:]
                        del span_stack[-size:]
                    else:
                        children = []
                        span = (token[2], token[2])
                    builder.span = span
                    result = callbacks[arg](children)
                    _, goto = states[state_stack[-1]][arg.origin.name]
                    if goto == end_state and kind == _END:
                        self.outcome.value = result
                        return self.outcome
                    state_stack.append(goto)
                    value_stack.append(result)
                    span_stack.append(span)
            if accepted:
                continue
            # -- a syntax error: record it, then resume at the next declaration
            self.problem(token)
            if len(self.outcome.problems) >= _MAX_ERRORS:
                return self.outcome
            if token is not None and token[0] == _END:
                if self.checkpoint is not None:
                    self._finish_from_checkpoint()
                return self.outcome
            pending = self.recover()

    def _finish_from_checkpoint(self) -> None:
        """End the parse with the declarations before the last problem."""
        assert self.checkpoint is not None
        states, values, spans = self.checkpoint
        self.state_stack, self.value_stack, self.span_stack = list(states), list(values), list(spans)
        self.checkpoint = None
        self.pos = len(self.text)
        self.run()


_ENGINE: ParseEngine | None = None


def engine() -> ParseEngine:
    """The process-wide parse engine (built on first use; the grammar's tables are cached)."""
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = ParseEngine()
    return _ENGINE
