"""The regex cache (`carlang_runtime.diskcache.regexes`): a pattern built from the code kept
on disk is the pattern `re.compile` makes; anything it cannot trust or use is compiled
afresh."""

from __future__ import annotations

import marshal
import os
import re
from array import array
from collections.abc import Iterator
from pathlib import Path

import pytest
from carlang_runtime.cel import parser as cel_parser
from carlang_runtime.diskcache import regexes
from carlang_runtime.lalr import Engine, load_tables

from carlang import syntax

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PATTERNS = [
    r"(?P<NAME>[A-Za-z_][A-Za-z0-9_]*)|(?P<NUMBER>[0-9]+(?:\.[0-9]*)?)",
    r"((?:[ \t]+)*+)(?:(?:if(?![A-Za-z0-9_]))(?P<IF>)|(?:[a-z]+)(?P<WORD>))",
    r"(?i)caf\u00e9|na\u00efve",
]


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh cache directory for this test (the suite runs with the cache off); yields the
    file the process's store is saved to."""
    monkeypatch.setenv("CARLANG_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(regexes, "_state", {})
    path = regexes.regex_cache_file()
    assert path is not None
    yield path


def _next_process() -> None:
    """What a new process sees: the store saved, a new one read from the file."""
    store = regexes._store()
    assert store is not None
    store.save()
    regexes._state.clear()


def _same(a: re.Pattern[str], b: re.Pattern[str]) -> bool:
    return a == b and a.groups == b.groups and dict(a.groupindex) == dict(b.groupindex)


def _must_not_compile(*args: object) -> None:
    raise AssertionError("compiled again")


@pytest.mark.parametrize("pattern", PATTERNS)
def test_a_pattern_from_the_cache_is_the_one_re_makes(cache: Path, pattern: str) -> None:
    first = regexes.compile_cached(pattern, re.MULTILINE)
    assert _same(first, re.compile(pattern, re.MULTILINE))
    _next_process()
    assert cache.is_file()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(regexes, "_parts", _must_not_compile)
        again = regexes.compile_cached(pattern, re.MULTILINE)
    assert _same(again, re.compile(pattern, re.MULTILINE))
    for text in ("if", "word 12", "x1.5", "CAF\u00c9", "na\u00efve", ""):
        found, expected = again.match(text), re.compile(pattern, re.MULTILINE).match(text)
        assert (found and (found.span(), found.lastgroup)) == (
            expected and (expected.span(), expected.lastgroup)
        )


def test_flags_are_part_of_the_key(cache: Path) -> None:
    regexes.compile_cached("abc", 0)
    ignoring = regexes.compile_cached("abc", re.IGNORECASE)
    assert ignoring.match("ABC") is not None
    _next_process()
    store = regexes._store()
    assert store is not None and set(store.stored) == {("abc", 0), ("abc", re.IGNORECASE)}


def test_a_corrupt_file_is_compiled_afresh_and_rewritten(cache: Path) -> None:
    regexes.compile_cached(PATTERNS[0])
    _next_process()
    cache.write_bytes(b"not marshal")
    assert _same(regexes.compile_cached(PATTERNS[0]), re.compile(PATTERNS[0]))
    _next_process()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(regexes, "_parts", _must_not_compile)
        assert _same(regexes.compile_cached(PATTERNS[0]), re.compile(PATTERNS[0]))


def test_invalid_code_is_refused_not_run(cache: Path) -> None:
    regexes.compile_cached(PATTERNS[0])
    _next_process()
    form, entries = marshal.loads(cache.read_bytes())
    flags, _, groups, groupindex, indexgroup = entries[(PATTERNS[0], 0)]
    bad = array("I", [17, 99, 3, 1, 5, 1, 1]).tobytes()  # not code the matcher would accept
    entries[(PATTERNS[0], 0)] = (flags, bad, groups, groupindex, indexgroup)
    cache.write_bytes(marshal.dumps((form, entries)))
    assert _same(regexes.compile_cached(PATTERNS[0]), re.compile(PATTERNS[0]))


def test_code_is_kept_as_bytes_to_load_without_an_object_per_instruction(cache: Path) -> None:
    compiled = regexes.compile_cached(PATTERNS[1])
    _next_process()
    _, entries = marshal.loads(cache.read_bytes())
    flags, code, *_ = entries[(PATTERNS[1], 0)]
    assert type(code) is bytes and array("I", code).tolist()[:4] == _code_of(compiled)[:4]


def _code_of(pattern: re.Pattern[str]) -> list[int]:
    from re import _compiler, _parser  # type: ignore[attr-defined]

    return [int(op) for op in _compiler._code(_parser.parse(pattern.pattern, 0), 0)]


def test_a_file_grown_too_big_keeps_what_the_last_process_used(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Patterns that never recur (tokenize's is built from a set: its text changes with the
    # hash seed) must not pile up: every process pays for loading the file.
    regexes.compile_cached(PATTERNS[0])
    regexes.compile_cached(PATTERNS[1])
    _next_process()
    size = cache.stat().st_size
    monkeypatch.setattr(regexes, "_BYTES", size)
    regexes.compile_cached(PATTERNS[0])  # used, from the file
    regexes.compile_cached(PATTERNS[2])  # new: the file would pass the bound
    _next_process()
    store = regexes._store()
    assert store is not None and set(store.stored) == {(PATTERNS[0], 0), (PATTERNS[2], 0)}


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="ownership checks are POSIX only")
def test_a_file_or_directory_others_may_write_to_is_never_read(cache: Path) -> None:
    regexes.compile_cached(PATTERNS[0])
    _next_process()
    cache.chmod(0o666)
    store = regexes._store()
    assert store is not None and store.stored == {}
    cache.chmod(0o600)
    cache.parent.chmod(0o777)
    regexes._state.clear()
    assert regexes._store() is None  # the directory is not this user's alone
    assert _same(regexes.compile_cached(PATTERNS[0]), re.compile(PATTERNS[0]))


def test_the_directory_is_made_for_this_user_alone(cache: Path) -> None:
    regexes.compile_cached(PATTERNS[0])
    assert cache.parent.stat().st_mode & 0o777 == 0o700


def test_off_means_nothing_on_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARLANG_CACHE_DIR", "off")
    monkeypatch.setattr(regexes, "_state", {})
    assert regexes.regex_cache_file() is None
    assert _same(regexes.compile_cached(PATTERNS[0]), re.compile(PATTERNS[0]))
    assert regexes.install() is False
    assert not list(tmp_path.iterdir())


_EVERY_PATTERN = """
import json, re, sys
from carlang_runtime.diskcache import regexes
installed = regexes.install()
patterns = [
    (r"(?P<a>x)(?P=a)|(?<=y)z", 0), (r"[\\w.-]+@\\w+", re.I | re.M), (r"(?x) a b # c", 0),
    (r"\\bword\\b", re.ASCII), (r".+", re.S), (r"(a)?(b)*(?(1)c|d)", 0),
]
out = []
for text, flags in patterns:
    p = re.compile(text, flags)
    found = repr(p.findall("xx yz a@b word"))
    out.append([p.pattern, p.flags, p.groups, dict(p.groupindex), found])
out.append(repr(re.compile(b"bytes(?P<n>\\d)").match(b"bytes7")))
store = regexes._state.get("store")
print(json.dumps({"installed": installed, "out": out,
                  "new": None if store is None else len(store.new)}))
"""


def _every_pattern(cache: str) -> dict[str, object]:
    import json
    import subprocess
    import sys

    env = {**os.environ, "CARLANG_CACHE_DIR": cache}
    done = subprocess.run(
        [sys.executable, "-c", _EVERY_PATTERN], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_installed_re_compiles_what_re_compiles(tmp_path: Path) -> None:
    plain = _every_pattern("off")
    first = _every_pattern(str(tmp_path))
    second = _every_pattern(str(tmp_path))
    assert plain["installed"] is False
    assert first["installed"] and second["installed"]
    assert first["new"] and second["new"] == 0  # the second process built every one from disk
    assert first["out"] == plain["out"] == second["out"]


class _Trees:
    """A builder with no methods: every reduction is a `Node`, spans and all."""

    span: tuple[int, int] = (0, 0)


def _outcomes(engine: Engine, texts: list[str]) -> list[object]:
    return [
        (repr(o.value), [(p.position, p.token, p.expected) for p in o.problems], o.comments)
        for o in (engine.parse(text, _Trees()) for text in texts)
    ]


def _carlang_engine() -> Engine:
    from carlang.grammar import grammar_text

    tables = load_tables(syntax.TABLES_PATH, grammar_text(), "start", maybe_placeholders=True)
    return Engine(tables, ident="IDENT", comment="COMMENT", recovery=syntax.engine().recovery)


def _cel_engine() -> Engine:
    old = cel_parser._engine()
    return Engine(old.tables, ident="IDENT", token_hook=old.token_hook, collapse=old.collapse)


CEL_TEXTS = [
    "a.b + 1 > 2 && 'x'.startsWith('y')",
    "params.items.all(i, i.size() < 3) ? [1, 2.5, b'\\x00'] : {'k': -x}",
    "request.time - timestamp('2024-01-01T00:00:00Z') > duration('5m') || in",
]


@pytest.mark.parametrize("grammar", ["carlang", "cel"])
def test_the_engines_parse_the_same_with_their_lexers_from_the_cache(
    cache: Path, grammar: str
) -> None:
    if grammar == "carlang":
        fresh = _carlang_engine
        texts = [p.read_text("utf-8") for p in sorted(EXAMPLES.rglob("*.car"))[:12]]
        texts.append("tool t(x: int) -> string {\n  description 'unclosed\n}\npolicy p: deny")
    else:
        fresh, texts = _cel_engine, CEL_TEXTS
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(regexes, "_state", {"store": None})
        expected = _outcomes(fresh(), texts)
    stored = _outcomes(fresh(), texts)  # compiles, and keeps the code
    _next_process()
    assert cache.is_file()
    with pytest.MonkeyPatch.context() as patch:  # every lexer now comes from the cache
        patch.setattr(regexes, "_parts", _must_not_compile)
        restored = _outcomes(fresh(), texts)
    assert stored == expected
    assert restored == expected
