"""The parse driver as it was before its per-token calls were fused into one loop (commit
ab02c55): one method call to skip, to lex, to match, to feed, to reduce and to shape each
token and reduction. Kept only as the oracle of the differential tests (tests/test_lalr.py):
the fused driver in `carlang_runtime.lalr` must give the same values, spans, problems and
comments on every input. It runs on the live `Engine`'s tables and lexers.
"""

# ruff: noqa
# mypy: ignore-errors

from __future__ import annotations

from typing import Any

from carlang_runtime.lalr import (
    _BRACKETS,
    _MISPLACED,
    END,
    Engine,
    Node,
    Outcome,
    Problem,
    Recovery,
    Token,
    _Rule,
    _Scanner,
    misspelt_declaration,
)


def parse(engine: Engine, text: str, builder: object) -> Outcome:
    """`engine.parse` as the step-by-step driver did it."""
    return _Run(engine, text, builder).run()


def _shaper(
    rule: _Rule, builder: object, collapse: bool = False
) -> Callable[[list[Any], tuple[int, int]], Any]:
    method = getattr(builder, rule.name, None) if not rule.name.startswith("_") else None
    name, include, append_none, expand1 = rule.name, rule.include, rule.append_none, rule.expand1

    def shape(children: list[Any], span: tuple[int, int]) -> Any:
        if include is None:
            filtered = children
        else:
            filtered = []
            for i, to_expand, add_none in include:
                if add_none:
                    filtered += [None] * add_none
                if to_expand:
                    if filtered:
                        filtered += children[i].children
                    else:  # lark's optimisation for left recursion: reuse the list
                        filtered = children[i].children
                else:
                    filtered.append(children[i])
            if append_none:
                filtered += [None] * append_none
        if expand1 and len(filtered) == 1:
            return filtered[0]
        if collapse and len(filtered) == 1 and type(filtered[0]) is Node:
            return filtered[0]
        if method is None:
            return Node(name, filtered, span)
        builder.span = span  # type: ignore[attr-defined]
        return method(*filtered)

    return shape


class _Run:
    """One parse: the stacks, the position and the problems found so far."""

    def __init__(self, engine: Engine, text: str, builder: object) -> None:
        self.engine = engine
        self.text = text
        rules = engine.tables.rules
        self.callbacks = [_shaper(r, builder, r.name in engine.collapse) for r in rules]
        self.states = engine.tables.states
        self.rules = engine.tables.rules
        self.state_stack = [engine.tables.start_state]
        self.value_stack: list[Any] = []
        self.span_stack: list[tuple[int, int]] = []
        self.pos = 0
        self.outcome = Outcome(None)
        self.brackets: list[tuple[str, int]] = []
        self.checkpoint: tuple[list[int], list[Any], list[tuple[int, int]]] | None = None
        self.last: Token | None = None

    # -- lexing ------------------------------------------------------------------------------

    def skip_ignored(self) -> None:
        """Move past ignored text (whitespace, comments), recording comments."""
        skip = self.engine.skip
        if skip is None:
            return
        match = skip.match(self.text, self.pos)
        if match is None:
            return
        comment = self.engine.comment
        if comment is not None and "#" in match.group():
            for found in comment.finditer(self.text, self.pos, match.end()):
                self.outcome.comments.append((found.start(), found.end()))
        self.pos = match.end()

    def next_token(self) -> Token | None:
        """The next token as the current state reads it; a token the state cannot take is
        returned as misplaced; None at a character that starts nothing."""
        self.skip_ignored()
        pos, text = self.pos, self.text
        if pos >= len(text):
            return (END, "", pos, pos)
        engine = self.engine
        accepts = engine.accepts[self.state_stack[-1]]
        token = self._match(engine.global_scanner, pos)
        if token is None or token[0] not in accepts:
            own = self._match(engine.state_scanner(self.state_stack[-1]), pos)
            if own is not None:
                token = own
            elif token is not None:
                token = (_MISPLACED + token[0], token[1], token[2], token[3])
        if token is not None:
            self.pos = token[3]
            if engine.token_hook is not None and not token[0].startswith(_MISPLACED):
                token = engine.token_hook(token)
        return token

    def _match(self, scanner: _Scanner, pos: int) -> Token | None:
        match = scanner.regex.match(self.text, pos)
        if match is None:
            return None
        kind = match.lastgroup
        assert kind is not None
        value = match.group()
        if kind == self.engine.ident:
            kind = scanner.keywords.get(value, kind)
        return (kind, value, pos, match.end())

    # -- parsing -----------------------------------------------------------------------------

    def _reduce(self, rule_index: int, at: int) -> Any:
        rule = self.rules[rule_index]
        size = rule.size
        if rule_index in self.engine.passthrough and type(self.value_stack[-1]) is Node:
            # A collapsed one-operand step: the value and its span stay, only the state moves.
            self.state_stack[-1] = self.states[self.state_stack[-2]][rule.origin]
            return self.value_stack[-1]
        if size:
            children = self.value_stack[-size:]
            span = (self.span_stack[-size][0], self.span_stack[-1][1])
            del self.state_stack[-size:]
            del self.value_stack[-size:]
            del self.span_stack[-size:]
        else:
            children = []
            span = (at, at)
        value = self.callbacks[rule_index](children, span)
        self.state_stack.append(self.states[self.state_stack[-1]][rule.origin])
        self.value_stack.append(value)
        self.span_stack.append(span)
        return value

    def feed(self, token: Token) -> bool:
        """Reduce as the table says, then shift `token`; False when it does not fit."""
        engine, states = self.engine, self.states
        kind = token[0]
        while True:
            state = self.state_stack[-1]
            code = states[state].get(kind)
            if code is None:
                if (
                    kind != engine.ident
                    and token[1] in engine.keyword_types
                    and engine.ident in states[state]
                ):
                    kind = engine.ident  # a keyword where a name was meant
                    token = (kind, token[1], token[2], token[3])
                    continue
                return False
            if code >= 0:
                recovery = engine.recovery
                if (
                    recovery is not None
                    and state in engine.top_states
                    and token[1] in recovery.keywords
                ):
                    self.checkpoint = (
                        list(self.state_stack),
                        list(self.value_stack),
                        list(self.span_stack),
                    )
                self.state_stack.append(code)
                self.value_stack.append(token)
                self.span_stack.append((token[2], token[3]))
                if token[1] in _BRACKETS:
                    self._track_brackets(token)
                self.last = token
                return True
            value = self._reduce(-1 - code, token[2])
            if kind == END and self.state_stack[-1] == engine.tables.end_state:
                self.outcome.value = value
                return True

    def _track_brackets(self, token: Token) -> None:
        text = token[1]
        if text in ("{", "(", "["):
            self.brackets.append((text, token[2]))
        elif self.brackets:
            self.brackets.pop()

    def _accepts(self, kind: str) -> bool:
        """Whether a token of type `kind` would be shifted after the reductions it causes
        (simulated on the state stack only)."""
        states = list(self.state_stack)
        while True:
            code = self.states[states[-1]].get(kind)
            if code is None:
                return False
            if code >= 0:
                return True
            rule = self.rules[-1 - code]
            if rule.size:
                del states[-rule.size :]
            states.append(self.states[states[-1]][rule.origin])

    # -- errors ------------------------------------------------------------------------------

    def problem(self, token: Token | None) -> None:
        expected = self.engine.accepts[self.state_stack[-1]]
        self.outcome.problems.append(
            Problem(
                self.pos if token is None else token[2],
                token,
                expected,
                tuple(self.brackets),
                self.last,
            )
        )

    def _close_declaration(self, probe: str) -> None:
        if not self._accepts(probe):
            return
        while True:
            code = self.states[self.state_stack[-1]][probe]
            if code >= 0:
                break
            self._reduce(-1 - code, self.pos)
        self.checkpoint = (list(self.state_stack), list(self.value_stack), list(self.span_stack))

    def _restore(self) -> None:
        if self.checkpoint is None:
            self.state_stack, self.value_stack, self.span_stack = (
                [self.engine.tables.start_state],
                [],
                [],
            )
            return
        states, values, spans = self.checkpoint
        self.state_stack, self.value_stack, self.span_stack = (
            list(states),
            list(values),
            list(spans),
        )

    def _starts_declaration(self, token: Token, recovery: Recovery) -> bool:
        """Whether `token` is a declaration keyword in the first column of its line."""
        start = token[2]
        return token[1] in recovery.keywords and (start == 0 or self.text[start - 1] == "\n")

    def recover(self, failed: Token | None, recovery: Recovery) -> Token:
        """Skip to the next declaration keyword at the start of a line and continue from the
        last top-level point (keeping a declaration that was already complete)."""
        self._close_declaration(recovery.probe)
        if failed is not None and failed[0] != END:
            # A declaration keyword at the start of a line is where the next declaration
            # starts (the one before it left a block open): resume there, not after it,
            # or that declaration would be skipped with the broken one. So too when that
            # keyword was just read as a name (an action called `test`, in a proposal left
            # open) and the error is the token after it; read again from the top level, it
            # is a keyword, so this cannot repeat.
            last = self.last
            if last is not None and last[0] == self.engine.ident and last[2] < failed[2]:
                if self._starts_declaration(last, recovery):
                    failed = last
            self.pos = failed[2] if self._starts_declaration(failed, recovery) else failed[3]
        scanner = self.engine.global_scanner
        while True:
            self.skip_ignored()
            if self.pos >= len(self.text):
                token: Token = (END, "", self.pos, self.pos)
                break
            match = scanner.regex.match(self.text, self.pos)
            if match is None:
                self.pos += 1
                continue
            value = match.group()
            start, self.pos = self.pos, match.end()
            at_line_start = start == 0 or self.text.rfind("\n", 0, start) == start - 1
            if not at_line_start:
                continue
            if value not in recovery.keywords:
                keywords = self.engine.keyword_types
                if misspelt_declaration(recovery, keywords, self.text, value, self.pos):
                    token = (self.engine.ident, value, start, self.pos)
                    break
                continue
            token = (self.engine.keyword_types[value], value, start, self.pos)
            if self._accepts(token[0]):
                break
            if self.checkpoint is not None:
                self._restore()
                if self._accepts(token[0]):
                    break
        if not self._accepts(token[0]):
            self._restore()
        self.brackets = []
        return token

    def run(self) -> Outcome:
        recovery = self.engine.recovery
        pending: Token | None = None
        while True:
            token = pending if pending is not None else self.next_token()
            pending = None
            if token is not None and self.feed(token):
                if token[0] == END:
                    return self.outcome
                continue
            self.problem(token)
            if recovery is None or len(self.outcome.problems) >= recovery.max_errors:
                return self.outcome
            if token is not None and token[0] == END and self.checkpoint is None:
                return self.outcome
            pending = self.recover(token, recovery)
