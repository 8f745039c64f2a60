"""Running lark's LALR(1) tables without lark: the parse engine for carlang's grammar and for
cel-python's CEL grammar.

lark compiles a grammar into tables once (`build_tables`, which needs lark); the tables are
saved as JSON (checked in next to each grammar, and tested to be current) and loaded here
without importing lark, which is most of a CLI command's start-up otherwise. The engine keeps
lark's semantics exactly:

- the lexer is contextual (only the terminals the parser state accepts are tried, in lark's
  order), with one global regex tried first and each state's own regex built only when the
  global match does not fit the state (compiled regexes are kept on disk between processes:
  `carlang_runtime.diskcache.regexes`); once an engine has lexed enough text, its regexes
  are tuned: they try identifiers and punctuation first where no text can start two of the
  terminals moved past each other (so the order decides nothing), and capture no groups
  inside the terminals' patterns;
- each reduction shapes its children as lark's tree builder would (dropped punctuation,
  `[x]` placeholders, inlined `_rules`, `?rules` that collapse to their one child), then calls
  the builder's method for the rule (or makes a `Node` when it has none);
- every reduction gets the exact span `(start, end)` of the characters it covers.

One loop (`_Run.run`) lexes and parses: on the common path a token costs one regex match that
skips the whitespace before it, and a reduction no Python call but the builder's method (the
common shapes of lark's child filter are done inline, reading the children where they are on
the stack). Comments, tokens the state does not take, and errors go through the step-by-step
methods, on the same stacks.

Tokens are tuples `(type, text, start, end)`. Syntax errors are collected as `Problem`s; with a
`Recovery`, parsing resumes at the next top-level declaration.
"""

from __future__ import annotations

import heapq
import json
import re
from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from operator import itemgetter
from pathlib import Path
from re import _constants as _sre  # the regex parser behind `re`, read to order lexers
from re import _parser as _sre_parser
from typing import Any, Final, cast

from . import speedups
from ._version import __version__
from .digests import blake2b
from .diskcache.regexes import compile_cached

__all__ = [
    "Token",
    "Node",
    "Problem",
    "BRACKET_CLOSERS",
    "Outcome",
    "Recovery",
    "Tables",
    "Engine",
    "build_tables",
    "grammar_digest",
    "misspelt_declaration",
    "shown_character",
]

Token = tuple[str, str, int, int]
END = "$END"
_MISPLACED = "misplaced:"
#: The kind of "no token" (a character that starts nothing) in the driver: no state takes it.
_NONE = "$NONE"
_BRACKETS = frozenset("{}()[]")
_FORMAT = 1


def shown_character(char: str) -> str:
    """How an error message names a character no token starts with: itself when it prints,
    else its code point (`U+00A0`: a no-break space looks like a space, and would print as
    one)."""
    return char if char.isprintable() else f"U+{ord(char):04X}"


def grammar_digest(text: str) -> str:
    """The identity of a grammar text (tables record the digest of the grammar they came from)."""
    return blake2b(text.encode("utf-8"), digest_size=10).hexdigest()


@dataclass(slots=True)
class Node:
    """A reduction with no builder method: what lark would make a `Tree`."""

    data: str
    children: list[Any]
    span: tuple[int, int] = (0, 0)


@dataclass(frozen=True, slots=True)
class _Rule:
    size: int
    origin: str
    name: str
    include: tuple[tuple[int, bool, int], ...] | None
    append_none: int
    expand1: bool


@dataclass(frozen=True, slots=True)
class _Terminal:
    name: str
    pattern: str
    literal: str | None  # the text, for a string terminal


@dataclass
class Tables:
    """Everything the engine needs, in plain data (saved as JSON)."""

    digest: str
    flags: int
    start_state: int
    end_state: int
    states: list[dict[str, int]]  # symbol -> n >= 0: shift to state n; n < 0: reduce rule -1-n
    rules: list[_Rule]
    terminals: list[_Terminal]  # in lark's lexer order
    ignore: list[str]

    def to_json(self) -> str:
        """A compact JSON text of the tables."""
        symbols = sorted({s for state in self.states for s in state})
        index = {s: i for i, s in enumerate(symbols)}
        data = {
            "format": _FORMAT,
            "digest": self.digest,
            "flags": self.flags,
            "start_state": self.start_state,
            "end_state": self.end_state,
            "symbols": symbols,
            "states": [
                [v for s, n in sorted(st.items()) for v in (index[s], n)] for st in self.states
            ],
            "rules": [
                [
                    r.size,
                    r.origin,
                    r.name,
                    None if r.include is None else [list(i) for i in r.include],
                    r.append_none,
                    r.expand1,
                ]
                for r in self.rules
            ],
            "terminals": [[t.name, t.pattern, t.literal] for t in self.terminals],
            "ignore": self.ignore,
        }
        return json.dumps(data, separators=(",", ":")) + "\n"

    def plain(self) -> tuple[Any, ...]:
        """The tables as values marshal can keep (`from_plain` makes them back)."""
        return (
            self.digest,
            self.flags,
            self.start_state,
            self.end_state,
            self.states,
            [(r.size, r.origin, r.name, r.include, r.append_none, r.expand1) for r in self.rules],
            [(t.name, t.pattern, t.literal) for t in self.terminals],
            self.ignore,
        )

    @classmethod
    def from_plain(cls, plain: tuple[Any, ...]) -> Tables:
        """Tables from `plain`'s values."""
        digest, flags, start_state, end_state, states, rules, terminals, ignore = plain
        return cls(
            digest,
            flags,
            start_state,
            end_state,
            states,
            [_Rule(*rule) for rule in rules],
            [_Terminal(*terminal) for terminal in terminals],
            ignore,
        )

    @classmethod
    def from_json(cls, text: str) -> Tables:
        """Tables from `to_json` text."""
        data = json.loads(text)
        if data.get("format") != _FORMAT:
            raise ValueError("unsupported table format")
        symbols = data["symbols"]
        states = [
            dict(zip([symbols[i] for i in row[0::2]], row[1::2], strict=True))
            for row in data["states"]
        ]
        rules = [
            _Rule(
                size,
                origin,
                name,
                None if inc is None else tuple((i, bool(x), n) for i, x, n in inc),
                append_none,
                bool(expand1),
            )
            for size, origin, name, inc, append_none, expand1 in data["rules"]
        ]
        terminals = [
            _Terminal(name, pattern, literal) for name, pattern, literal in data["terminals"]
        ]
        return cls(
            data["digest"],
            data["flags"],
            data["start_state"],
            data["end_state"],
            states,
            rules,
            terminals,
            data["ignore"],
        )


def build_tables(grammar: str, start: str, **options: Any) -> Tables:
    """Compile a grammar with lark into `Tables` (the only function here that imports lark).
    `options` are lark's (`g_regex_flags`, `propagate_positions`, ...); parser, lexer and
    placeholder settings are taken from them as lark would."""
    from lark import Lark
    from lark.lexer import PatternStr
    from lark.parse_tree_builder import maybe_create_child_filter
    from lark.parsers.lalr_analysis import Shift

    maybe_placeholders = options.pop("maybe_placeholders", True)
    options.pop("lexer_callbacks", None)
    lark = Lark(
        grammar, parser="lalr", start=start, maybe_placeholders=maybe_placeholders, **options
    )
    table = lark.parser.parser._parse_table
    rule_index = {rule: i for i, rule in enumerate(lark.rules)}
    rules = []
    for rule in lark.rules:
        empty = (
            list(rule.options.empty_indices)
            if maybe_placeholders and rule.options.empty_indices
            else None
        )
        made = maybe_create_child_filter(  # lark passes None the same way
            rule.expansion,
            rule.options.keep_all_tokens,
            False,
            empty,  # type: ignore[arg-type]
        )
        include: tuple[tuple[int, bool, int], ...] | None = None
        append_none = 0
        if made is not None:
            args = made.args
            if len(args) == 2:  # with placeholders: (to_include, append_none)
                include = tuple((i, bool(x), n) for i, x, n in args[0])
                append_none = args[1]
            else:  # without: [(index, expand)]
                include = tuple((i, bool(x), 0) for i, x in args[0])
        rules.append(
            _Rule(
                len(rule.expansion),
                rule.origin.name,
                rule.alias or rule.origin.name,
                include,
                append_none,
                bool(rule.options.expand1 and not rule.alias),
            )
        )
    states: list[dict[str, int]] = [{} for _ in range(max(table.states) + 1)]
    for state, actions in table.states.items():
        states[state] = {
            symbol: (arg if act is Shift else -1 - rule_index[arg])
            for symbol, (act, arg) in actions.items()
        }
    ordered = sorted(
        lark.terminals,
        key=lambda t: (-t.priority, -t.pattern.max_width, -len(t.pattern.value), t.name),
    )
    terminals = [
        _Terminal(
            t.name,
            t.pattern.to_regexp(),
            t.pattern.value if isinstance(t.pattern, PatternStr) else None,
        )
        for t in ordered
    ]
    states, start_state, end_state = _renumber(
        states, table.start_states[start], table.end_states[start]
    )
    return Tables(
        grammar_digest(grammar),
        int(options.get("g_regex_flags", 0)),
        start_state,
        end_state,
        states,
        rules,
        terminals,
        sorted(lark.lexer_conf.ignore),
    )


def _renumber(
    states: list[dict[str, int]], start: int, end: int
) -> tuple[list[dict[str, int]], int, int]:
    """Number states breadth-first from the start state, taking transitions in symbol order:
    lark's own numbering varies from run to run, this one depends on the grammar alone."""
    new = {start: 0}
    order = [start]
    for old in order:
        for symbol in sorted(states[old]):
            code = states[old][symbol]
            if code >= 0 and code not in new:
                new[code] = len(order)
                order.append(code)
    if end not in new:
        new[end] = len(order)
        order.append(end)
    renumbered = [
        {symbol: (new[code] if code >= 0 else code) for symbol, code in sorted(states[old].items())}
        for old in order
    ]
    return renumbered, 0, new[end]


def load_tables(path: Path, grammar: str, start: str, **options: Any) -> Tables:
    """The checked-in tables at `path` if they were built from `grammar`; otherwise built now
    (with lark) so that a changed grammar is never parsed with stale tables."""
    try:
        tables = _tables_from_text(path.read_text("utf-8"))
        if tables.digest == grammar_digest(grammar):
            return tables
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return build_tables(grammar, start, **options)


#: The layout of the file of marshalled tables: files of another are never read.
_PLAIN_FORMAT: Final = 1
#: The file of marshalled tables this process read (`path`) and what it holds (`entries`).
_stored: dict[str, Any] = {}


def _tables_from_text(text: str) -> Tables:
    """`Tables.from_json(text)`, from carlang's disk cache when tables of the same text were
    read before on this machine: marshal reads them ~8x faster than JSON is read and shaped
    (~5 ms of every `carlang check`, both grammars). The cache is keyed by the text's digest,
    so an edited file is never read stale; what it holds is only ever the result of
    `from_json`, and a missing, foreign or corrupt file falls back to the text."""
    from .diskcache import private_directory, read_table, save_table, table_file

    # (carlang's version in the name: a release that reads the tables otherwise never gets
    # another's)
    cache = table_file("lalr", _PLAIN_FORMAT, __version__)
    key = blake2b(text.encode("utf-8"), digest_size=16).digest()
    if cache is not None and cache != _stored.get("path"):  # (one read for both grammars)
        _stored.update(path=cache, entries=read_table(cache, _PLAIN_FORMAT))
    plain = _stored.get("entries", {}).get(key) if cache is not None else None
    if plain is not None:
        try:
            return Tables.from_plain(plain)
        except (TypeError, ValueError):  # (not what `plain` writes: read the text)
            pass
    tables = Tables.from_json(text)
    if cache is not None and private_directory(cache.parent):
        # (few entries: a grammar's tables change with carlang's version, two grammars)
        save_table(cache, _PLAIN_FORMAT, {key: tables.plain()}, limit=8)
    return tables


@dataclass(frozen=True, slots=True)
class Problem:
    """Where parsing failed: the offending token (None at a character that starts nothing),
    the terminals that would have been accepted, and the brackets still open."""

    position: int
    token: Token | None
    expected: frozenset[str]
    open_brackets: tuple[tuple[str, int], ...]
    after: Token | None

    def closers_not_open(self, literals: dict[str, str]) -> set[str]:
        """The terminals of `expected` that close a bracket that is not the innermost one
        open (`literals`: terminal name -> text): no text could put them here, but the LALR
        tables' merged states list them all the same (`)` after `x > 10` with no `(`)."""
        fitting = BRACKET_CLOSERS.get(self.open_brackets[-1][0]) if self.open_brackets else None
        return {
            name
            for name in self.expected
            if literals.get(name) in _CLOSER_TEXTS and literals.get(name) != fitting
        }


#: Each bracket's closer.
BRACKET_CLOSERS: Final = {"(": ")", "[": "]", "{": "}"}
_CLOSER_TEXTS: Final = frozenset(BRACKET_CLOSERS.values())


@dataclass(slots=True)
class Outcome:
    """The builder's result for the whole input (None if nothing could be built), the syntax
    problems, and the comments seen, as `(start, end)` offsets."""

    value: Any
    problems: list[Problem] = field(default_factory=list)
    comments: list[tuple[int, int]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Recovery:
    """How to resume after a syntax error: at a keyword from `keywords` that starts a line,
    back at the last point where the parser could take `probe` (a declaration's first token)."""

    keywords: frozenset[str]
    probe: str
    marker: str  # a nonterminal only top-level states can shift
    max_errors: int = 20


#: What follows a declaration's keyword: a name or a string (`policy p1:`, `test "x"`).
_DECLARATION_FOLLOWS = re.compile(r"[ \t]+[A-Za-z_\"]")


def misspelt_declaration(
    recovery: Recovery, keywords: Container[str], text: str, value: str, end: int
) -> bool:
    """Whether the word `value`, first on its line and ending at `end`, is a misspelt
    declaration keyword (`polcy p1: ...`): no keyword of the language (`keywords`: `tools
    allow` in a block is no misspelt `tool`), but close to a declaration's, and followed by a
    name or a string as a declaration's keyword is. Recovery resumes there too, so that the
    typo gets its own error rather than being skipped with the declaration broken before
    it."""
    from .suggest import closest

    return (
        value not in keywords
        and value.isidentifier()
        and _DECLARATION_FOLLOWS.match(text, end) is not None
        and closest(value, recovery.keywords) is not None
    )


class _Scanner:
    """One state's lexer: its keywords at once, its regex compiled on first use (a state's
    `_Lead` reads most tokens and needs only the keywords; a compile costs milliseconds, which
    a short file's parse would pay for every state it visits)."""

    __slots__ = ("_pattern", "_flags", "_regex", "keywords")

    def __init__(self, pattern: str, flags: int, keywords: dict[str, str]) -> None:
        self._pattern = pattern
        self._flags = flags
        self._regex: re.Pattern[str] | None = None
        self.keywords = keywords

    @property
    def regex(self) -> re.Pattern[str]:
        """The compiled lexer."""
        if self._regex is None:
            self._regex = compile_cached(self._pattern, self._flags)
        return self._regex


class _Lead:
    """A lexer that skips whitespace and reads one token in one regex match: group 1 is the
    whitespace, so the token runs from its end to the end of the match, and `terminals` names
    the terminal of the group that closed last (`lastindex`). It matches nothing where
    `next_token` would do more (a comment to record, the end of the text, no token)."""

    __slots__ = ("match", "terminals", "keywords")

    def __init__(
        self,
        match: Callable[[str, int], re.Match[str] | None],
        terminals: list[str | None],
        keywords: dict[str, str],
    ) -> None:
        self.match = match
        self.terminals = terminals
        self.keywords = keywords


class Engine:
    """Tables made runnable: lexers built lazily, parses run by `parse`."""

    def __init__(
        self,
        tables: Tables,
        *,
        ident: str = "IDENT",
        comment: str | None = None,
        token_hook: Callable[[Token], Token] | None = None,
        recovery: Recovery | None = None,
        collapse: frozenset[str] = frozenset(),
    ) -> None:
        self.tables = tables
        self.ident = ident
        # Rules that, reduced from a single Node, are that Node (lark's `?rule`): for grammars
        # whose precedence ladder would otherwise make a chain of one-child nodes per operand.
        self.collapse = collapse
        # Rules that reduce one child, kept as it is: with a Node there, the reduction is a
        # step of the state machine only.
        self.passthrough = frozenset(
            i
            for i, rule in enumerate(tables.rules)
            if rule.name in collapse
            and rule.size == 1
            and rule.include is None
            and not rule.append_none
        )
        self._callbacks: tuple[object, list[_Step]] | None = None
        self._steps_by_class: dict[type, list[_Step]] = {}
        self.token_hook = token_hook
        self.recovery = recovery
        self.flags = tables.flags
        by_name = {t.name: t for t in tables.terminals}
        self.terminal_order = {t.name: i for i, t in enumerate(tables.terminals)}
        self.patterns = by_name
        ignore = [by_name[name].pattern for name in tables.ignore]
        self.skip = re.compile("(?:" + "|".join(ignore) + ")+", self.flags) if ignore else None
        self.comment = re.compile(by_name[comment].pattern, self.flags) if comment else None
        ident_re = re.compile(by_name[ident].pattern, self.flags) if ident in by_name else None
        self.keyword_types = {
            t.literal: t.name
            for t in tables.terminals
            if t.literal is not None and ident_re is not None and ident_re.fullmatch(t.literal)
        }
        self.literal_text = {t.name: t.literal for t in tables.terminals if t.literal is not None}
        symbols = {symbol for state in tables.states for symbol in state}
        terminal_symbols = {s for s in symbols if s.isupper() or s == END}
        self.accepts = [frozenset(state.keys() & terminal_symbols) for state in tables.states]
        self._state_scanner: dict[int, _Scanner] = {}
        self._scanners: dict[frozenset[str], _Scanner] = {}
        self.top_states = frozenset(
            i
            for i, state in enumerate(tables.states)
            if recovery is not None and recovery.marker in state
        )
        # Everything a state could want, minus huge terminals only one state takes (CEL_TEXT):
        # the first regex tried at every position.
        everything = frozenset(by_name) - frozenset(tables.ignore)
        huge = [name for name in everything if len(by_name[name].pattern) >= 400]
        usage = {name: sum(1 for a in self.accepts if name in a) for name in huge}
        self.global_names = frozenset(n for n in everything if usage.get(n, 3) > 2)
        self.global_scanner = self._scanner_for(self.global_names)
        # The global regex behind the ignored text that is never recorded (whitespace): one
        # match per token where the state takes what it finds; anything else (a comment, a
        # token the state does not take, the end) goes the long way, through `next_token`.
        # The ignored text that is never recorded (whitespace), as the first group of every
        # `_Lead` regex, and a recorded comment, which no token may start at (it goes the
        # long way, through `next_token`).
        silent = [by_name[name].pattern for name in tables.ignore if name != comment]
        self._silent = _silent_group(silent, self.flags)
        self._not_comment = f"(?!{by_name[comment].pattern})" if comment else ""
        self._leads: dict[tuple[frozenset[str], bool], _Lead] = {}
        self._state_leads: dict[int, _Lead] = {}
        # Tuned lexers (`_alternatives`) pay for themselves once enough text is lexed: until
        # then (a short file, a few CEL conditions), lark's order, without their set-up.
        self._lexed = 0
        self.tuned = False
        self.global_lead = self._lead_for(self.global_names)

    def _scanner_for(self, names: frozenset[str]) -> _Scanner:
        scanner = self._scanners.get(names)
        if scanner is None:
            scanner = self._scanners[names] = self._build_scanner(names)
        return scanner

    def _build_scanner(self, names: frozenset[str]) -> _Scanner:
        alternatives = self._alternatives(names)
        pattern = "|".join(alternatives) if alternatives else r"(?!x)x"
        keywords = {
            t.literal: t.name
            for t in self.tables.terminals
            if t.name in names and t.literal is not None and t.literal in self.keyword_types
        }
        return _Scanner(pattern, self.flags, keywords)

    def _alternatives(
        self, names: frozenset[str], marked_after: bool = False, tuned: bool = False
    ) -> list[str]:
        """One named group per terminal of `names`, in lark's order (a keyword is read as an
        identifier where identifiers are taken). With `marked_after`, each group is empty and
        follows its terminal's pattern (the last group to close, so `lastindex` names the
        terminal): the regex engine then rules out a pattern that starts with a character or
        a set by the first character alone, without entering a group. `tuned` (with
        `marked_after`): in the order of `_match_order`, groups inside patterns made
        non-capturing (`_uncaptured`), which reads the same tokens faster; making it parses
        every pattern (~1-2 ms a grammar)."""
        chosen = []
        has_ident = self.ident in names
        for t in self.tables.terminals:  # already in lark's order
            if t.name not in names:
                continue
            if t.literal is not None and t.literal in self.keyword_types:
                if has_ident:
                    continue  # read as an identifier, then recognised as this keyword
                pattern = re.escape(t.literal) + r"(?![A-Za-z0-9_])"
            else:
                pattern = t.pattern
            chosen.append((t.name, pattern))
        if not marked_after:
            return [f"(?P<{name}>{pattern})" for name, pattern in chosen]
        if not tuned:
            return [f"(?:{pattern})(?P<{name}>)" for name, pattern in chosen]
        ordered = _match_order(chosen, self.ident, self.flags)
        return [f"(?:{_uncaptured(pattern, self.flags)})(?P<{name}>)" for name, pattern in ordered]

    def _lead_for(self, names: frozenset[str], tuned: bool | None = None) -> _Lead:
        """The `_Lead` of `names`, tuned or not (by default: as the engine now is)."""
        tuned = self.tuned if tuned is None else tuned
        lead = self._leads.get((names, tuned))
        if lead is None:
            alternatives = self._alternatives(names, marked_after=True, tuned=tuned)
            regex = compile_cached(
                self._silent + self._not_comment + "(?:" + "|".join(alternatives) + ")",
                self.flags,
            )
            terminals: list[str | None] = [None] * (regex.groups + 1)
            for name, index in regex.groupindex.items():
                terminals[index] = name
            lead = self._leads[names, tuned] = _Lead(
                regex.match, terminals, self._scanner_for(names).keywords
            )
        return lead

    def state_lead(self, state: int) -> _Lead:
        """The contextual lexer of one parser state, behind the ignored text (see `_Lead`)."""
        lead = self._state_leads.get(state)
        if lead is None:
            lead = self._state_leads[state] = self._lead_for(self.accepts[state] - {END})
        return lead

    def state_scanner(self, state: int) -> _Scanner:
        """The contextual lexer of one parser state."""
        scanner = self._state_scanner.get(state)
        if scanner is None:
            names = self.accepts[state] - {END}
            scanner = self._state_scanner[state] = self._scanner_for(frozenset(names))
        return scanner

    def callbacks(self, builder: object) -> list[Callable[[list[Any], tuple[int, int]], Any]]:
        """One callable per rule: shape the children as lark does, then call the builder."""
        return [_shaper(rule, builder, rule.name in self.collapse) for rule in self.tables.rules]

    def reductions(self, builder: object) -> list[_Step]:
        """How the driver reduces each rule for this builder (see `_step`). Made once per
        builder object (a parser that reuses its builder pays this once); for another builder
        of a class seen before, the steps made for that class are bound to it (the choices
        hold as long as it has a method for the same rules)."""
        if self._callbacks is None or self._callbacks[0] is not builder:
            rules = self.tables.rules
            made: list[_Step] | None = None
            seen = self._steps_by_class.get(type(builder))
            if seen is not None:
                made = []
                for rule, (how, size, origin, _, has_method, extra, name) in zip(
                    rules, seen, strict=True
                ):
                    own = _method(rule, builder)
                    if (own is not None) != has_method:
                        made = None  # not the class's methods: the choices are made anew
                        break
                    shaper = None
                    if how in (_SHAPE, _KEEP_NODE):
                        shaper = _shaper(rule, builder, rule.name in self.collapse)
                    made.append((how, size, origin, shaper, own, extra, name))
            if made is None:
                made = [
                    _step(rule, builder, rule.name in self.collapse, i in self.passthrough)
                    for i, rule in enumerate(rules)
                ]
                # kept without the builder's methods and shapers (nor the builder with them)
                self._steps_by_class[type(builder)] = [
                    (how, size, origin, None, method is not None, extra, name)
                    for how, size, origin, _, method, extra, name in made
                ]
            self._callbacks = (builder, made)
        return self._callbacks[1]

    def parse(self, text: str, builder: object) -> Outcome:
        """Parse `text`, calling `builder.<rule>(*children)` (with `builder.span` set) for
        every reduction that has a method, and making `Node`s for the rest."""
        self._lexed += len(text)
        if not self.tuned and self._lexed > _TUNE_AFTER:
            self.tuned = True  # from now on, the tuned lexers
            self._state_leads = {}
            self.global_lead = self._lead_for(self.global_names)
        return _Run(self, text, builder).run()


#: Characters lexed by an engine after which it makes its tuned lexers: what they save per
#: token (~0.13 us) makes up for their set-up (~1 ms for carlang's grammar) after ~6,000
#: tokens, ~30,000 characters of carlang.
_TUNE_AFTER = 30_000


def _silent_group(patterns: list[str], flags: int) -> str:
    """The group of ignored text that a `_Lead` regex starts with: `(?:A|B)*+` of the ignored
    patterns, or `C*+` for one `C+` of a single character or set (whitespace: the same text,
    matched without a repeat nested in a repeat, which the regex engine runs slower)."""
    if not patterns:
        return "()"
    if len(patterns) == 1 and patterns[0].endswith("+") and not patterns[0].endswith("\\+"):
        body = patterns[0][:-1]
        try:
            single = _sre_parser.parse(body, flags).data
            whole = _sre_parser.parse(patterns[0], flags).data
        except re.error:
            single = whole = []
        if (
            len(single) == 1
            and single[0][0] in (_sre.IN, _sre.LITERAL)
            and len(whole) == 1
            and whole[0][0] is _sre.MAX_REPEAT
            and whole[0][1][:2] == (1, _sre.MAXREPEAT)
            and list(whole[0][1][2]) == list(single)
        ):
            return f"((?:{body})*+)"
    return "((?:" + "|".join(patterns) + ")*+)"


def _match_order(terminals: list[tuple[str, str]], ident: str, flags: int) -> list[tuple[str, str]]:
    """`(name, pattern)` in the order a lexer regex tries them: lark's order (the first
    alternative that matches wins), except that an alternative moves ahead of earlier ones
    that no match of it can share a first character with (then at most one of them can match
    at any position, so the order decides nothing). Identifiers go first, then alternatives
    the regex engine rules out by their first character alone (a character or a set), then
    the rest: most tokens are identifiers and punctuation, which then cost one test each
    instead of a try of every number-like pattern before them."""
    facts = [_pattern_facts(pattern, flags) for _, pattern in terminals]
    after: list[list[int]] = [[] for _ in terminals]  # j must come after i: i in after[j]
    waiting_on = [0] * len(terminals)
    for j, (first_j, _, _) in enumerate(facts):
        for i in range(j):
            first_i = facts[i][0]
            if first_i is None or first_j is None or not first_i.isdisjoint(first_j):
                after[i].append(j)
                waiting_on[j] += 1
    rank = [
        (0 if name == ident else 1 if facts[i][1] else 2, i)
        for i, (name, _) in enumerate(terminals)
    ]
    ready = [rank[j] for j in range(len(terminals)) if not waiting_on[j]]
    heapq.heapify(ready)
    order = []
    while ready:
        _, i = heapq.heappop(ready)
        order.append(terminals[i])
        for j in after[i]:
            waiting_on[j] -= 1
            if not waiting_on[j]:
                heapq.heappush(ready, rank[j])
    return order


def _uncaptured(pattern: str, flags: int) -> str:
    """`pattern` with its groups made non-capturing, when that cannot change what it matches
    (no backreference, conditional or verbose mode): a `_Lead` reads only its marker groups,
    and a capturing group inside a repeat is saved at every turn (a string literal's
    characters: an eighth of the global lexer's time)."""
    if flags & re.VERBOSE or "(?x" in pattern or "(?(" in pattern or "(?P=" in pattern:
        return pattern
    out: list[str] = []
    index, size, in_set = 0, len(pattern), False
    while index < size:
        char = pattern[index]
        if char == "\\":
            following = pattern[index + 1 : index + 2]
            if following.isdigit() and following != "0" and not in_set:
                return pattern  # a backreference
            out.append(pattern[index : index + 2])
            index += 2
            continue
        if in_set:
            in_set = char != "]"
        elif char == "[":
            in_set = True
            out.append(char)
            index += 1
            for special in ("^", "]"):  # `[^]...]`, `[]...]`: a `]` first is a character
                if pattern[index : index + 1] == special:
                    out.append(special)
                    index += 1
            continue
        elif char == "(" and pattern[index + 1 : index + 2] != "?":
            out.append("(?:")
            index += 1
            continue
        out.append(char)
        index += 1
    made = "".join(out)
    # Every `(` turned into `(?:` opened a capturing group (outside a set, unescaped, not a
    # `(?` form): when they are all of the pattern's groups, none is left to capture.
    groups = _pattern_facts(pattern, flags)[2]
    return (
        made
        if groups is not None and made.count("(?:") - pattern.count("(?:") == groups
        else pattern
    )


#: A set bigger than this counts as unknown (only its size matters: the sets are compared).
_MAX_SET = 4096


@lru_cache(maxsize=512)
def _pattern_facts(pattern: str, flags: int) -> tuple[frozenset[str] | None, bool, int | None]:
    """From one parse of `pattern` (by `re`'s own parser): the characters that every match
    starts with one of (None when that is not known for sure: it may match the empty text;
    case folding; a class like `\\w`...), whether the regex engine can rule the pattern out
    by its first character alone, and how many capturing groups it has (None: not a regex)."""
    try:
        parsed = _sre_parser.parse(pattern, flags)
    except re.error:
        return None, False, None
    items, groups = parsed.data, parsed.state.groups - 1  # group 0: the whole match
    quick = bool(items) and items[0][0] in (_sre.IN, _sre.LITERAL)
    if flags & (re.IGNORECASE | re.VERBOSE):
        return None, quick, groups
    found, nullable = _first_of_sequence(items)
    return (None if found is None or nullable else frozenset(found)), quick, groups


def _first_of_sequence(items: Any) -> tuple[set[str] | None, bool]:
    found: set[str] = set()
    for op, av in items:
        first, nullable = _first_of_item(op, av)
        if first is None:
            return None, True
        found |= first
        if not nullable:
            return found, False
    return found, True


def _first_of_item(op: Any, av: Any) -> tuple[set[str] | None, bool]:
    if op is _sre.LITERAL:
        return {chr(av)}, False
    if op is _sre.IN:
        chars: set[str] = set()
        for kind, value in av:
            if kind is _sre.LITERAL:
                chars.add(chr(value))
            elif kind is _sre.RANGE and value[1] - value[0] < _MAX_SET:
                chars.update(map(chr, range(value[0], value[1] + 1)))
            else:  # NEGATE, CATEGORY (\d, \w), a huge range
                return None, True
        return chars, False
    if op is _sre.SUBPATTERN:
        _group, add_flags, _del_flags, inner = av
        if add_flags & (re.IGNORECASE | re.VERBOSE):
            return None, True
        return _first_of_sequence(inner)
    if op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT, _sre.POSSESSIVE_REPEAT):
        low, _high, inner = av
        first, nullable = _first_of_sequence(inner)
        return first, nullable or low == 0
    if op is _sre.BRANCH:
        chars = set()
        any_nullable = False
        for alternative in av[1]:
            first, nullable = _first_of_sequence(alternative)
            if first is None:
                return None, True
            chars |= first
            any_nullable = any_nullable or nullable
        return chars, any_nullable
    return None, True  # anything else (anchors, lookarounds, `.`, backreferences): unknown


class _Inline(list):  # type: ignore[type-arg]
    """What a `_rule` reduces to when it is not one child: the children its parent splices in
    where lark would expand a `_rule` tree. A `_rule` of one child is that child (the parent
    takes it as it is): a `_rule` is never seen by a builder, so it needs no node."""

    __slots__ = ()


# How the driver reduces a rule (the first item of its `_Step`), from the cheapest: the
# common shapes are done inline in `_Run.run`, the rest by the rule's shaper.
_KEEP = 0  # one child, kept as it is (with its span): only the state changes
_KEEP_NODE = 1  # _KEEP when the child is a Node, else _SHAPE (a `collapse` rule)
_CALL = 2  # builder method of all the children
_CALL_NONE = 3  # builder method of `extra` (Nones only)
_CALL_ONE = 4  # builder method of child `extra[0]`, then `extra[1]` (Nones)
_CALL_SOME = 5  # builder method of the children `extra[0]` (an itemgetter) picks, then extra[1]
_NODE = 6  # Node(name, children)
_APPEND = 7  # a `_rule` `_r: _r x`: child 0 (spliced) then child 1
_SHAPE = 8  # the shaper (`_shaper`), for anything else
_PICK = 9  # a `_rule` that keeps one child: that child (see `_step`)
_CALL_PICK = 10  # builder method of the children (and Nones) `extra[0]` picks, one spliced
_CALL_ONE_SPLICE = 11  # builder method of child `extra`, spliced

#: (how, size, origin, shaper (for _SHAPE and _KEEP_NODE only), method, extra, name)
_Step = tuple[int, int, str, Any, Any, Any, str]


def _step(rule: _Rule, builder: object, collapse: bool, passthrough: bool) -> _Step:
    """How to reduce `rule`: one of the inline shapes above where the rule has one (the result
    is exactly the shaper's), with the shaper for the rest (made only for those: a new
    builder per parse pays for every rule's step)."""
    method = _method(rule, builder)
    include, append_none = rule.include, rule.append_none
    single = rule.expand1 or collapse  # one filtered child may be returned as it is
    how = _SHAPE
    extra: Any = None
    size = rule.size
    if not size:
        pass  # an empty rule (rare: an empty file's `start`): the shaper, of no children
    elif passthrough:
        how = _KEEP_NODE
    elif include is None and not append_none:
        if rule.size == 1 and (rule.expand1 or _inlined(rule)):
            how = _KEEP
        elif not (rule.size == 1 and collapse) and not _inlined(rule):
            how = _NODE if method is None else _CALL
    elif _inlined(rule) and include == ((0, True, 0), (1, True, 0)) and not append_none:
        how, extra = _APPEND, (-size, 1 - size)
    elif (
        include is not None
        and method is not None
        and not any(expand or nones for _, expand, nones in include)
        and not (single and len(include) + append_none == 1)
    ):
        picks = [i - size for i, _, _ in include]  # offsets from the value stack's end
        nones = (None,) * append_none
        if not picks:
            how, extra = _CALL_NONE, nones
        elif len(picks) == 1:
            how, extra = _CALL_ONE, (picks[0], nones)
        else:
            how, extra = _CALL_SOME, (itemgetter(*picks), nones)
    elif _inlined(rule) and include is not None and len(include) == 1 and not append_none:
        # The shaper returns the one child (an `_Inline` of one, when spliced: its item).
        index, expand, nones_before = include[0]
        if not nones_before:
            how, extra = _PICK, (index - size, expand)
    elif include is not None and method is not None and not single:
        # At most one child spliced (an `_Inline` there gives its items), Nones where the
        # placeholders go: the value stack gets a None on top (position `size`) to pick for
        # each of them, so that one itemgetter makes every argument.
        if sum(1 for _, expand, _ in include if expand) <= 1:
            picks = []
            splice = -1
            for index, expand, nones_before in include:
                picks += [size] * nones_before
                if expand:
                    splice = len(picks)
                picks.append(index)
            picks += [size] * append_none
            padded = size in picks
            top = size + 1 if padded else size  # offsets from the end of the stack as read
            if len(picks) == 1:  # one spliced child (one kept as it is is _CALL_ONE)
                how, extra = _CALL_ONE_SPLICE, picks[0] - size
            else:
                getter = itemgetter(*[p - top for p in picks])
                how, extra = _CALL_PICK, (getter, splice, padded)
    shaper = _shaper(rule, builder, collapse) if how in (_SHAPE, _KEEP_NODE) else None
    return (how, rule.size, rule.origin, shaper, method, extra, rule.name)


def _inlined(rule: _Rule) -> bool:
    """Whether lark inlines the rule's tree into its parent (`_rule`, and its `*` helpers)."""
    return rule.name.startswith("_")


def _method(rule: _Rule, builder: object) -> Any:
    """The builder's method for `rule` (None for a `_rule`, which is inlined, or none)."""
    return getattr(builder, rule.name, None) if not _inlined(rule) else None


def _shaper(
    rule: _Rule, builder: object, collapse: bool = False
) -> Callable[[list[Any], tuple[int, int]], Any]:
    method = _method(rule, builder)
    name, include, append_none, expand1 = rule.name, rule.include, rule.append_none, rule.expand1
    inlined = _inlined(rule)

    def shape(children: list[Any], span: tuple[int, int]) -> Any:
        if include is None:
            filtered = children
        else:
            filtered = []
            for i, to_expand, add_none in include:
                if add_none:
                    filtered += [None] * add_none
                child = children[i]
                if to_expand and type(child) is _Inline:
                    if filtered or not inlined:
                        filtered += child
                    else:  # lark's optimisation for left recursion: reuse the list
                        filtered = child
                else:
                    filtered.append(child)
            if append_none:
                filtered += [None] * append_none
        if inlined:
            if len(filtered) == 1:
                return filtered[0]
            return filtered if type(filtered) is _Inline else _Inline(filtered)
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
        self.builder = builder
        # Indexed by the table's reduce code (-1 - rule), a negative index into the reverse.
        self.steps = engine.reductions(builder)[::-1]
        self.states = engine.tables.states
        self.rules = engine.tables.rules
        self.state_stack = [engine.tables.start_state]
        self.value_stack: list[Any] = []
        # What each stack entry covers: `[-2]` is its start, `[-1]` its end (a shifted token
        # is its own entry: it ends with its start and end).
        self.span_stack: list[Any] = []
        self.pos = 0
        self.outcome = Outcome(None)
        self.brackets: list[tuple[str, int]] = []
        self.checkpoint: tuple[list[int], list[Any], list[Any]] | None = None
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
            span = (self.span_stack[-size][-2], self.span_stack[-1][-1])
            del self.state_stack[-size:]
            del self.value_stack[-size:]
            del self.span_stack[-size:]
        else:
            children = []
            span = (at, at)
        shaper = _shaper(rule, self.builder, rule.name in self.engine.collapse)
        value = shaper(children, span)
        self.state_stack.append(self.states[self.state_stack[-1]][rule.origin])
        self.value_stack.append(value)
        self.span_stack.append(span)
        return value

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
                    token = (self.engine.ident, value, start, self.pos)  # (its own error)
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
        """Lex and parse the whole text: `run_python`, by its twin in the C speedups where
        they were built (a third of the time of a parse)."""
        native = speedups.native()
        if native is not None:
            outcome = native.lalr_run(self, _DRIVER_CONSTANTS)
            if outcome is not NotImplemented:
                return cast(Outcome, outcome)
        return self.run_python()

    def run_python(self) -> Outcome:
        """Lex and parse the whole text in one loop: what `next_token` and `_reduce` do (and
        what a method per token and per reduction did before, kept as the tests' oracle in
        tests/lalr_reference.py), written inline with everything bound to locals: a Python
        call per token and per reduction was most of a parse's time. Comments, misplaced
        tokens and errors go through `next_token`, `problem` and `recover`, on the same
        stacks."""
        engine, text = self.engine, self.text
        builder: Any = self.builder
        states, accepts, steps = self.states, engine.accepts, self.steps
        lead, lead_names = engine.global_lead.match, engine.global_lead.terminals
        scanned_keywords = engine.global_lead.keywords
        state_leads = engine._state_leads
        ident, keyword_types, hook = engine.ident, engine.keyword_types, engine.token_hook
        recovery = engine.recovery
        top_states = engine.top_states
        declaration_words = recovery.keywords if recovery is not None else frozenset()
        end_state = engine.tables.end_state
        bracket_texts = _BRACKETS
        state_stack, value_stack, span_stack = self.state_stack, self.value_stack, self.span_stack
        brackets, last, pos = self.brackets, self.last, self.pos
        state = state_stack[-1]
        pending: Token | None = None
        kind: str
        while True:
            # -- the next token (`kind` and `value` its first two items) -----------------------
            if pending is None:
                token: Token | None = None
                match = lead(text, pos)
                if match is not None:
                    kind = lead_names[match.lastindex]  # type: ignore[index,assignment]
                    start = match.end(1)
                    end = match.end()
                    value = text[start:end]
                    if kind == ident and value in scanned_keywords:
                        # a keyword, unless the state takes a name and not this keyword (then
                        # the state's own lexer, which has no such keyword, reads a name)
                        keyword = scanned_keywords[value]
                        if keyword in accepts[state] or ident not in accepts[state]:
                            kind = keyword
                    if kind in accepts[state]:
                        token = (kind, value, start, end)
                        pos = end
                        if hook is not None:
                            token = hook(token)
                            kind, value = token[0], token[1]
                if token is None:  # the state's own lexer decides
                    own = state_leads.get(state) or engine.state_lead(state)
                    match = own.match(text, pos)
                    if match is not None:
                        kind = own.terminals[match.lastindex]  # type: ignore[index,assignment]
                        start = match.end(1)
                        end = match.end()
                        value = text[start:end]
                        if kind == ident:
                            kind = own.keywords.get(value, kind)
                        token = (kind, value, start, end)
                        pos = end
                        if hook is not None:
                            token = hook(token)
                            kind, value = token[0], token[1]
                    else:  # a comment, the end, a misplaced token or no token
                        self.pos = pos
                        token = self.next_token()
                        pos = self.pos
                        # no token: a kind no state takes, so that it is the error below
                        kind, value = (token[0], token[1]) if token is not None else (_NONE, "")
            else:
                token = pending
                pending = None
                kind, value = token[0], token[1]
            # -- reduce, then shift it (or report the syntax error) -----------------------------
            shifted = token
            while True:
                try:
                    code = states[state][kind]
                except KeyError:
                    if kind != ident and value in keyword_types and ident in states[state]:
                        kind = ident  # a keyword where a name was meant
                        shifted = (kind, value, shifted[2], shifted[3])  # type: ignore[index]
                        continue
                    # A syntax error: report it, then resume at the next declaration (or stop).
                    self.pos, self.last = pos, last
                    self.problem(token)
                    if recovery is None or len(self.outcome.problems) >= recovery.max_errors:
                        return self.outcome
                    if token is not None and token[0] == END and self.checkpoint is None:
                        return self.outcome
                    pending = self.recover(token, recovery)
                    state_stack, value_stack, span_stack = (
                        self.state_stack,
                        self.value_stack,
                        self.span_stack,
                    )
                    brackets, last, pos = self.brackets, self.last, self.pos
                    state = state_stack[-1]
                    break
                if code >= 0:
                    if state in top_states and value in declaration_words:
                        self.checkpoint = (
                            list(state_stack),
                            list(value_stack),
                            list(span_stack),
                        )
                    state = code
                    state_stack.append(code)
                    value_stack.append(shifted)
                    span_stack.append(shifted)
                    if value in bracket_texts:
                        if value in ("{", "(", "["):
                            brackets.append((value, shifted[2]))  # type: ignore[index]
                        elif brackets:
                            brackets.pop()
                    last = shifted
                    if kind == END:
                        return self.outcome
                    break
                # reduce (_reduce)
                how, size, origin, shaper, method, extra, name = steps[code]
                if how == _KEEP or (how == _KEEP_NODE and type(value_stack[-1]) is Node):
                    state = states[state_stack[-2]][origin]
                    state_stack[-1] = state
                    if kind == END and state == end_state:
                        self.outcome.value = value_stack[-1]
                        return self.outcome
                    continue
                if not size:  # an empty rule (see `_step`)
                    span = (shifted[2], shifted[2])  # type: ignore[index]
                    reduced = shaper([], span)
                else:
                    # The children are read where they are, at the top of the value stack
                    # (`extra` holds offsets from its end), then popped.
                    span = (span_stack[-size][-2], span_stack[-1][-1])
                    if how == _CALL:
                        builder.span = span
                        reduced = method(*value_stack[-size:])
                    elif how == _CALL_SOME:
                        builder.span = span
                        reduced = method(*extra[0](value_stack), *extra[1])
                    elif how == _APPEND:  # a `*` helper: add to the list, in place
                        reduced = value_stack[extra[0]]
                        if type(reduced) is not _Inline:
                            reduced = _Inline((reduced,))
                        item = value_stack[extra[1]]
                        if type(item) is _Inline:
                            reduced += item
                        else:
                            reduced.append(item)
                    elif how == _CALL_ONE:
                        builder.span = span
                        reduced = method(value_stack[extra[0]], *extra[1])
                    elif how == _CALL_PICK:
                        getter, splice, padded = extra
                        if padded:  # a None on top, for the placeholders to pick
                            value_stack.append(None)
                            args = getter(value_stack)
                            value_stack.pop()
                        else:
                            args = getter(value_stack)
                        if splice >= 0 and type(args[splice]) is _Inline:
                            args = (*args[:splice], *args[splice], *args[splice + 1 :])
                        builder.span = span
                        reduced = method(*args)
                    elif how == _PICK:
                        reduced = value_stack[extra[0]]
                        if extra[1] and type(reduced) is _Inline and len(reduced) == 1:
                            reduced = reduced[0]
                    elif how == _CALL_ONE_SPLICE:
                        builder.span = span
                        reduced = value_stack[extra]
                        if type(reduced) is _Inline:
                            reduced = method(*reduced)
                        else:
                            reduced = method(reduced)
                    elif how == _CALL_NONE:
                        builder.span = span
                        reduced = method(*extra)
                    elif how == _NODE:
                        reduced = Node(name, value_stack[-size:], span)
                    else:
                        reduced = shaper(value_stack[-size:], span)
                    if size == 1:  # the child's entry becomes the reduction's
                        state = states[state_stack[-2]][origin]
                        state_stack[-1] = state
                        value_stack[-1] = reduced
                        span_stack[-1] = span
                        if kind == END and state == end_state:
                            self.outcome.value = reduced
                            return self.outcome
                        continue
                    del state_stack[-size:]
                    del value_stack[-size:]
                    del span_stack[-size:]
                state = states[state_stack[-1]][origin]
                state_stack.append(state)
                value_stack.append(reduced)
                span_stack.append(span)
                if kind == END and state == end_state:
                    self.outcome.value = reduced
                    return self.outcome


#: What the C driver (`_speedups.lalr_run`) needs of this module.
_DRIVER_CONSTANTS = (Node, _Inline, END, _NONE)


def misplaced(kind: str) -> str:
    """The real type of a token reported as misplaced."""
    return kind.removeprefix(_MISPLACED)


def expected_terminals(names: Iterable[str]) -> frozenset[str]:
    """Terminal names from an accept set (dropping the end marker)."""
    return frozenset(n for n in names if n != END)
