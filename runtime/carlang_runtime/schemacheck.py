"""Tool schemas that can be checked in bounded time: patterns matched in linear time, and no
`$ref` that leads back to itself for the same value.

A JSON Schema's `pattern` (and `patternProperties`, and `additionalProperties` and
`unevaluatedProperties` where they consult it) is matched here with RE2, the engine of CEL's
`matches` (google-re2): linear in the text, so a pattern like `^(a+)+$` cannot make a call's
value take forever to check, as Python's backtracking `re` would. RE2 has no backreferences or
lookaround: a schema using them is refused (`check_schema`), said clearly, rather than checked
with another engine. Everything else, including every validation message, is jsonschema's.

`check_schema` also refuses a schema whose `$ref`s lead back to the same schema without going
into the value (`{"$ref": "#"}`): checking any value against it would never end. A recursive
schema with a way out (a tree: `items: {"$ref": "#"}`) is fine.

Imported only with jsonschema (by the parameter check when a schema needs it, and by the
compiler).
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterator, Mapping
from functools import lru_cache
from typing import Any, Final

import jsonschema
from jsonschema.exceptions import SchemaError, ValidationError
from jsonschema.validators import extend, validator_for

from .redact import (
    DATA_KEYWORDS,
    NAMED_SCHEMAS,
    REFS,
    SAME_VALUE,
    SAME_VALUE_LISTS,
    SAME_VALUE_MAPS,
    anchor_names,
    resolve_local_ref,
)

__all__ = [
    "PatternRefused",
    "check_schema",
    "linear_validator",
    "pattern_matches",
    "schema_problem_text",
    "unresolved_ref",
]


class PatternRefused(ValueError):
    """A pattern RE2 cannot compile (a backreference, lookaround, ...; or one that is no
    regular expression at all): it is not matched by any other engine, so the schema holding
    it checks nothing."""

    def __init__(self, pattern: str, detail: str) -> None:
        if _malformed(pattern, detail):
            reason = f"it is not a regular expression ({detail})"
        else:
            reason = (
                "patterns are matched in linear time (RE2), which has no backreferences or"
                f" lookaround ({detail})"
            )
        super().__init__(f"pattern {pattern!r} cannot be used: {reason}")
        self.pattern = pattern


#: RE2's words for a pattern that is no regular expression in any dialect; its others (an
#: "invalid escape sequence" like `\1` or `\k<n>`, an "invalid perl operator" like `(?<=`)
#: are for what JSON Schema's dialect (ECMA-262) has and RE2 lacks.
_MALFORMED: Final = (
    "missing )",
    "unexpected )",
    "missing ]",
    "no argument for repetition operator",
    "bad repetition operator",
    "trailing \\",
    "invalid character class range",
)


def _malformed(pattern: str, detail: str) -> bool:
    """Whether RE2's `detail` says `pattern` is no regular expression at all, rather than
    one using what RE2 lacks. A repetition size RE2 refuses is either (`{2,1}`, or past its
    bound of 1,000: `{1001}`): ECMA-262 has no bound, so Python's engine decides."""
    if detail.startswith(_MALFORMED):
        return True
    if detail.startswith("invalid repetition size"):
        import re

        try:
            re.compile(pattern)
        except (re.error, RecursionError, OverflowError):
            return True
    return False


#: Each pattern's search, compiled once (a plain dict: looked up on every match, it is
#: cheaper than an lru_cache; emptied when full).
_SEARCHES: dict[str, Callable[[str], bool]] = {}
_MAX_SEARCHES: Final = 512


def _compiled(pattern: str) -> Callable[[str], bool]:
    """`pattern`'s unanchored search, compiled once; PatternRefused if RE2 refuses it."""
    search = _SEARCHES.get(pattern)
    if search is None:
        search = _compile(pattern)
        if len(_SEARCHES) >= _MAX_SEARCHES:
            _SEARCHES.clear()
        _SEARCHES[pattern] = search
    return search


#: ECMA-262's `\s` (the dialect JSON Schema patterns are written in): RE2's own is ASCII
#: only, so `^\S+$` let a no-break space through. Its class body, and the two classes.
_ECMA_SPACE: Final = r"\s\v\pZ\x{feff}"
_SPACE_CLASSES: Final = {"s": f"[{_ECMA_SPACE}]", "S": f"[^{_ECMA_SPACE}]"}


def ecma_spaces(pattern: str) -> str:
    r"""`pattern` with `\s` and `\S` meaning what ECMA-262 means by them (every Unicode
    space), for RE2: outside a class each becomes a class; inside one `\s` adds the spaces
    (a `\S` inside a class is left as RE2 reads it: a class cannot hold a negated one)."""
    if "\\s" not in pattern and "\\S" not in pattern:
        return pattern
    out: list[str] = []
    in_class = False
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern):
            escaped = pattern[index + 1]
            if escaped == "s" and in_class:
                out.append(_ECMA_SPACE)
            elif escaped in _SPACE_CLASSES and not in_class:
                out.append(_SPACE_CLASSES[escaped])
            else:
                out.append(pattern[index : index + 2])
            index += 2
            continue
        if char == "[" and not in_class:
            in_class = True
            out.append(char)
            index += 1
            # a `]` first in a class (after an optional `^`) is a character of it
            if index < len(pattern) and pattern[index] == "^":
                out.append("^")
                index += 1
            if index < len(pattern) and pattern[index] == "]":
                out.append("]")
                index += 1
            continue
        if char == "]" and in_class:
            in_class = False
        out.append(char)
        index += 1
    return "".join(out)


def _compile(pattern: str) -> Callable[[str], bool]:
    import re2  # google-re2, which CEL's matches() runs on

    options = re2.Options()
    options.log_errors = False  # RE2 would also print the error on stderr
    try:
        compiled = re2.compile(ecma_spaces(pattern), options)
    except re2.error as exc:
        detail = exc.args[0] if exc.args else exc
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        raise PatternRefused(pattern, str(detail)) from None
    except UnicodeEncodeError:  # a lone surrogate: no UTF-8 text, so no RE2 pattern, holds one
        raise PatternRefused(pattern, "it holds a lone UTF-16 surrogate") from None
    # As CEL's Regex does: the low-level match answers yes/no without building a match object
    # (and takes a text with a lone surrogate, which the wrapper's own encoding refuses).
    low_level = getattr(getattr(compiled, "_regexp", None), "Match", None)
    unanchored = getattr(getattr(re2, "_Anchor", None), "UNANCHORED", None)
    if low_level is not None and unanchored is not None:

        def search(text: str) -> bool:
            data = text.encode("utf-8", "surrogatepass")
            found: Any = low_level(unanchored, data, 0, len(data))
            return bool(found[0][0] != -1)

        return search

    def fallback(text: str) -> bool:
        return compiled.search(text) is not None

    return fallback


def pattern_matches(pattern: str, text: str) -> bool:
    """Whether `pattern` matches anywhere in `text` (JSON Schema's unanchored `pattern`), in
    linear time. PatternRefused for a pattern RE2 cannot compile."""
    search = _SEARCHES.get(pattern)
    return (search or _compiled(pattern))(text)


#: Whether a pattern matches a property name, for names short enough to keep: the same
#: names come in call after call, and a lookup here costs a fraction of RE2's call (emptied
#: when full, so an agent's many names cost only the matching they would anyway).
_NAME_MATCHES: dict[tuple[str, str], bool] = {}
_MAX_NAME_MATCHES: Final = 4096
_KEPT_NAME: Final = 64


def _name_matches(pattern: str, name: str) -> bool:
    """`pattern_matches` for a property name (`patternProperties` and what consults it)."""
    if len(name) > _KEPT_NAME:
        return pattern_matches(pattern, name)
    key = (pattern, name)
    known = _NAME_MATCHES.get(key)
    if known is None:
        known = pattern_matches(pattern, name)
        if len(_NAME_MATCHES) >= _MAX_NAME_MATCHES:
            _NAME_MATCHES.clear()
        _NAME_MATCHES[key] = known
    return known


def _search(pattern: str, text: str) -> bool | None:
    """`re.search` as jsonschema's `additionalProperties` and `unevaluatedProperties` use it
    (on property names; a truthy result or None), with RE2."""
    return True if _name_matches(pattern, text) else None


#: What jsonschema's `additionalProperties`/`unevaluatedProperties` find as `re`.
_LINEAR_RE: Final = types.SimpleNamespace(search=_search)
#: jsonschema's helpers that search property names with `re` (their copies use RE2).
_SEARCHING_HELPERS: Final = frozenset(
    {"find_additional_properties", "find_evaluated_property_keys_by_schema"}
)


def _linear_copy(fn: Any, copies: dict[Any, Any]) -> Any:
    """jsonschema's keyword function `fn` as it is, but with its `re.search` (and that of the
    helpers it calls) run by RE2: its results and messages stay jsonschema's own."""
    if fn in copies:
        return copies[fn]
    namespace = dict(fn.__globals__)
    copy = types.FunctionType(fn.__code__, namespace, fn.__name__, fn.__defaults__, fn.__closure__)
    copy.__kwdefaults__ = fn.__kwdefaults__
    copies[fn] = copy
    namespace["re"] = _LINEAR_RE
    for name in fn.__code__.co_names:
        if name in _SEARCHING_HELPERS and isinstance(namespace.get(name), types.FunctionType):
            namespace[name] = _linear_copy(namespace[name], copies)
    return copy


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    if validator.is_type(instance, "string") and not pattern_matches(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Any, patterns: Mapping[str, Any], instance: Any, schema: Any
) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for name, value in instance.items():
            if _name_matches(pattern, name):
                yield from validator.descend(value, subschema, path=name, schema_path=pattern)


@lru_cache(maxsize=16)
def _linear_class(base: Any) -> Any:
    """`base` (a jsonschema validator class) with every keyword that matches a pattern
    matching it with RE2."""
    keywords = base.VALIDATORS
    replaced: dict[str, Any] = {}
    if "pattern" in keywords:
        replaced["pattern"] = _pattern
    if "patternProperties" in keywords:
        replaced["patternProperties"] = _pattern_properties
    copies: dict[Any, Any] = {}
    for name in ("additionalProperties", "unevaluatedProperties"):
        if name in keywords:
            replaced[name] = _linear_copy(keywords[name], copies)
    return extend(base, replaced)  # type: ignore[no-untyped-call]  # (untyped in its stubs)


def linear_validator(schema: Mapping[str, Any], base: Any = None) -> Any:
    """A validator for `schema` (of the class its `$schema` names, else `base`, else draft
    2020-12's) that matches its patterns in linear time. Check the schema first
    (`check_schema`): a pattern RE2 refuses raises PatternRefused when it is first used."""
    cls = validator_for(schema, default=base or jsonschema.Draft202012Validator)
    return _linear_class(cls)(schema)


def _is_regex(instance: object) -> bool:
    """The metaschema's `format: regex`: a pattern RE2 compiles (PatternRefused, said clearly
    by `check_schema`), as every pattern is matched with it; not also Python's `re`, which
    refused RE2's own syntax (`\\pL`), so a signature's pattern check passed and every call
    was then refused as an invalid schema."""
    if isinstance(instance, str):
        _compiled(instance)
    return True


@lru_cache(maxsize=16)
def _format_checker(cls: Any) -> Any:
    """The format checker `cls.check_schema` uses, with `regex` also asking RE2."""
    meta = validator_for(cls.META_SCHEMA, default=cls)
    checker = jsonschema.FormatChecker(())
    checker.checkers = dict(meta.FORMAT_CHECKER.checkers)
    checker.checkers["regex"] = (_is_regex, (PatternRefused,))
    return checker


def check_schema(schema: Mapping[str, Any], cls: Any = None) -> None:
    """Raise jsonschema's SchemaError if `schema` is not a valid JSON Schema of `cls` (by
    default, the draft its `$schema` names, else 2020-12), with jsonschema's own messages;
    or if it cannot be checked in bounded time: a pattern RE2 refuses, or a `$ref` that leads
    back to itself for the same value. The error's `path` is where, in the schema."""
    if cls is None:
        cls = validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema, format_checker=_format_checker(cls))
    except SchemaError as exc:
        if isinstance(exc.cause, PatternRefused):
            raise SchemaError(str(exc.cause), path=exc.path, cause=exc.cause) from None
        raise
    except RecursionError:  # (the metaschema is checked by recursion, a level at a time)
        raise SchemaError("it is nested too deeply to be checked") from None
    cycle = _ref_cycle(schema)
    if cycle is not None:
        where, ref = cycle
        raise SchemaError(
            f"`$ref` {ref!r} refers to itself with no way out: it leads back to the same"
            " schema for the same value, so checking a value would never end",
            path=[*where, "$ref"],
        )


def unresolved_ref(root: Mapping[str, Any]) -> tuple[_Path, str] | None:
    """A `$ref` (where it is, what it says) that names no schema of `root`: one in another
    document (nothing is fetched: only `#...` and the root's own `$id` resolve) or nowhere in
    it; None when every reference resolves. The first in the document's order."""
    schemas = _Schemas(root)
    unresolved = [
        ((*schemas.paths[key], keyword), ref)
        for key, node in schemas.nodes.items()
        for keyword in REFS
        if isinstance(ref := node.get(keyword), str) and schemas.resolve(ref) is None
    ]
    return min(unresolved, key=lambda found: [str(part) for part in found[0]], default=None)


def schema_problem_text(exc: SchemaError) -> str:
    """A SchemaError said in one line, with where in the schema when not at its top (as
    `carlang check` says it: `... (at properties/a/type)`)."""
    where = "/".join(str(p) for p in exc.path)
    return exc.message + (f" (at {where})" if where else "")


# -- `$ref`s that lead back to themselves ----------------------------------------------------

#: Keywords whose subschemas apply to the value itself (no step into it), and those that
#: refer: the secret walk's (`redact`).
#: Keywords whose subschemas apply to a part of the value (a property, an item, a name).
_INTO_VALUE: Final = (
    "additionalProperties",
    "unevaluatedProperties",
    "propertyNames",
    "items",
    "additionalItems",
    "unevaluatedItems",
    "contains",
)
_INTO_VALUE_MAPS: Final = ("properties", "patternProperties")
_INTO_VALUE_LISTS: Final = ("prefixItems", "items")

_Path = tuple[str | int, ...]


class _Schemas:
    """The schemas of one document: where each is, and what each applies."""

    def __init__(self, root: Mapping[str, Any]) -> None:
        self.root = root
        #: Each schema, by id, with where it is.
        self.nodes: dict[int, Mapping[str, Any]] = {}
        self.paths: dict[int, _Path] = {}
        self.anchors: dict[str, Mapping[str, Any]] = {}
        pending: list[tuple[object, _Path]] = [(root, ())]
        while pending:  # (a loop, not recursion: a schema may be nested deeply)
            node, path = pending.pop()
            if isinstance(node, list):
                pending.extend((item, (*path, i)) for i, item in enumerate(node))
                continue
            if not isinstance(node, Mapping) or id(node) in self.paths:
                continue
            self.paths[id(node)] = path
            self.nodes[id(node)] = node
            for name in anchor_names(node):
                self.anchors.setdefault(name, node)
            for key, value in node.items():
                if key in NAMED_SCHEMAS and isinstance(value, Mapping):
                    pending.extend((v, (*path, key, k)) for k, v in value.items())
                elif key not in DATA_KEYWORDS:
                    pending.append((value, (*path, key)))

    def resolve(self, ref: str) -> Mapping[str, Any] | None:
        """The schema a local `$ref` names, or None (not local, or to nowhere: reported
        elsewhere): `redact.resolve_local_ref`, which the secret walk uses too."""
        return resolve_local_ref(self.root, lambda: self.anchors, ref)

    def same_value(self, schema: Mapping[str, Any]) -> Iterator[tuple[object, str | None]]:
        """The schemas `schema` applies to the value itself, each with the `$ref` that leads
        there (None for a subschema written inside it)."""
        for keyword in REFS:
            ref = schema.get(keyword)
            if isinstance(ref, str):
                yield self.resolve(ref), ref
        for keyword in SAME_VALUE:
            yield schema.get(keyword), None
        for keyword in SAME_VALUE_LISTS:
            options = schema.get(keyword)
            if isinstance(options, list):
                yield from ((option, None) for option in options)
        for keyword in SAME_VALUE_MAPS:
            options = schema.get(keyword)
            if isinstance(options, Mapping):
                yield from ((option, None) for option in options.values())

    @staticmethod
    def into_value(schema: Mapping[str, Any]) -> Iterator[object]:
        """The schemas `schema` applies to parts of the value."""
        for keyword in _INTO_VALUE:
            yield schema.get(keyword)
        for keyword in _INTO_VALUE_MAPS:
            children = schema.get(keyword)
            if isinstance(children, Mapping):
                yield from children.values()
        for keyword in _INTO_VALUE_LISTS:
            children = schema.get(keyword)
            if isinstance(children, list):
                yield from children


def _ref_cycle(root: Mapping[str, Any]) -> tuple[_Path, str] | None:
    """A `$ref` (where it is, what it says) on a cycle of schemas each applying the next to
    the same value, among the schemas checking a value can reach; None when there is none.
    Checking a value that reaches such a cycle would go round it for ever."""
    schemas = _Schemas(root)
    # every schema checking can reach, and the same-value steps between them
    steps: dict[int, list[tuple[Mapping[str, Any], str | None]]] = {}
    nodes: dict[int, Mapping[str, Any]] = {}
    pending: list[object] = [root]
    while pending:
        node = pending.pop()
        if not isinstance(node, Mapping) or id(node) in nodes:
            continue
        nodes[id(node)] = node
        mine = [(t, ref) for t, ref in schemas.same_value(node) if isinstance(t, Mapping)]
        steps[id(node)] = mine
        pending.extend(target for target, _ in mine)
        pending.extend(schemas.into_value(node))
    # a depth-first search of the same-value steps, without recursion, for a step back
    # onto the path being followed
    done: set[int] = set()
    for start in nodes:
        if start in done:
            continue
        trail: list[tuple[int, str | None]] = [(start, None)]  # (schema, the $ref into it)
        on_trail = {start}
        iterators = [iter(steps[start])]
        while iterators:
            try:
                target, ref = next(iterators[-1])
            except StopIteration:
                iterators.pop()
                node_id, _ = trail.pop()
                on_trail.discard(node_id)
                done.add(node_id)
                continue
            key = id(target)
            if key in on_trail:
                return _cycle_ref(schemas, nodes, trail, key, ref)
            if key not in done:
                trail.append((key, ref))
                on_trail.add(key)
                iterators.append(iter(steps[key]))
    return None


def _cycle_ref(
    schemas: _Schemas,
    nodes: dict[int, Mapping[str, Any]],
    trail: list[tuple[int, str | None]],
    back_to: int,
    closing: str | None,
) -> tuple[_Path, str]:
    """The first `$ref` of the cycle that `trail` (from `back_to` on) and the step `closing`
    make, with where it is written."""
    index = next(i for i, (node_id, _) in enumerate(trail) if node_id == back_to)
    cycle = trail[index:]
    # the step into cycle[i + 1] is made by cycle[i]; the closing one by the last
    made_by = [(cycle[i][0], cycle[i + 1][1]) for i in range(len(cycle) - 1)]
    made_by.append((cycle[-1][0], closing))
    for holder, ref in made_by:
        if ref is not None:
            return schemas.paths.get(holder, ()), ref
    # (a cycle of subschemas written inside each other alone cannot be JSON)
    return schemas.paths.get(back_to, ()), "#"
