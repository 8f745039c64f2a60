"""The cache of code compiled from text (`carlang_runtime.diskcache.pycode`): dataclasses and
forward references made with it are those `exec` and `compile` make, and a file it cannot
trust or read is never used."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from carlang_runtime.diskcache import pycode
from carlang_runtime.diskcache.pycode import _CodeCache

# Dataclasses of every kind `dataclasses` writes methods for, described by what they do and by
# the code of every method it generated (compared field by field, across processes).
_DEFINE_AND_DESCRIBE = textwrap.dedent(
    """
    import dataclasses, json, sys
    from dataclasses import InitVar, dataclass, field
    from typing import ClassVar

    installed = False
    if sys.argv[1] == "cache":
        from carlang_runtime.diskcache.pycode import install
        installed = install()

    @dataclass
    class Plain:
        a: int
        b: str = "x"
        c: list[int] = field(default_factory=list)

    @dataclass(frozen=True, slots=True)
    class Frozen:
        a: int
        b: tuple[int, ...] = ()

    @dataclass(order=True, unsafe_hash=True)
    class Ordered:
        a: int
        b: float = field(default=1.5, compare=False)

    @dataclass(kw_only=True, repr=False, eq=False)
    class Keywords:
        a: int
        b: "str | None" = None
        limit: ClassVar[int] = 3
        seed: InitVar[int] = 0

        def __post_init__(self, seed: int) -> None:
            self.a += seed

    @dataclass(frozen=True)
    class Child(Frozen):
        c: str = "child"

    def constant(value):  # a set's order varies from process to process
        return sorted(map(repr, value)) if isinstance(value, frozenset) else repr(value)

    def code(function):
        c = function.__code__
        return [c.co_code.hex(), [constant(value) for value in c.co_consts], c.co_names, c.co_varnames, c.co_flags,
                c.co_firstlineno, c.co_qualname, c.co_linetable.hex(), c.co_filename,
                repr(function.__defaults__), repr(function.__kwdefaults__),
                repr(function.__annotations__)]

    described = {}
    for cls in (Plain, Frozen, Ordered, Keywords, Child):
        described[cls.__name__] = {
            name: code(value)
            for name, value in vars(cls).items()
            if callable(value) and getattr(value, "__code__", None) is not None
            and value.__code__.co_filename == "<string>"
        }
    instances = [Plain(1), Frozen(2, (3,)), Ordered(1) < Ordered(2), Child(1)]
    described["behaviour"] = [repr(i) for i in instances] + [
        Keywords(a=1, seed=2).a,
        Plain(1) == Plain(1),
        hash(Frozen(1)) == hash(Frozen(1)),
        hash(Ordered(4)) == hash(Ordered(4, 2.0)),
    ]
    try:
        Frozen(1).a = 2
    except dataclasses.FrozenInstanceError as error:
        described["frozen"] = str(error)
    import typing
    references = ["list[int]", "dict[str, 'Plain'] | None", "Frozen"]
    described["references"] = [
        code(type("F", (), {"__code__": typing.ForwardRef(r).__forward_code__,
                            "__defaults__": None, "__kwdefaults__": None,
                            "__annotations__": {}})())
        for r in references
    ] + [repr(typing.ForwardRef(r)._evaluate(globals(), None, recursive_guard=frozenset()))
         for r in references]
    try:
        typing.ForwardRef("1 +")
    except SyntaxError as error:
        described["bad reference"] = str(error)
    made = new = None
    if installed:
        cache = dataclasses.exec.cache
        made, new = len(cache.made), len(cache.new)
    print(json.dumps({"classes": described, "installed": installed, "made": made, "new": new}))
    """
)


def _define(tmp_path: Path, mode: str, cache: str) -> dict[str, object]:
    env = {**os.environ, "CARLANG_CACHE_DIR": cache}
    done = subprocess.run(
        [sys.executable, "-c", _DEFINE_AND_DESCRIBE, mode],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_classes_made_with_the_cache_are_the_ones_exec_makes(tmp_path: Path) -> None:
    cache = str(tmp_path / "cache")
    plain = _define(tmp_path, "plain", cache)
    first = _define(tmp_path, "cache", cache)  # compiles, and keeps the code at exit
    second = _define(tmp_path, "cache", cache)  # runs the kept code
    assert first["installed"] and second["installed"]
    assert first["new"] and first["new"] == first["made"]
    assert second["made"] and second["new"] == 0
    assert first["classes"] == plain["classes"]
    assert second["classes"] == plain["classes"]
    assert len(list((tmp_path / "cache" / "pycode").glob("*.bin"))) == 1


def test_off_means_dataclasses_compile_as_always(tmp_path: Path) -> None:
    result = _define(tmp_path, "cache", "off")
    assert result["installed"] is False
    assert result["classes"] == _define(tmp_path, "plain", "off")["classes"]


_TEXT = "def __create_fn__(x):\n def f(a:x)->x:\n  return a\n return f"


def _code_equal(text: str, cache: _CodeCache) -> bool:
    return cache.code(text) == compile(text, "<string>", "exec", dont_inherit=True)


def test_kept_code_is_compiled_code(tmp_path: Path) -> None:
    path = tmp_path / "code.bin"
    first = _CodeCache(path)
    assert _code_equal(_TEXT, first)
    assert first.new and not path.exists()
    first.save()
    second = _CodeCache(path)
    assert _code_equal(_TEXT, second)
    assert not second.new  # from the file
    namespace: dict[str, object] = {}
    exec(second.code(_TEXT), {}, namespace)  # noqa: S102 - what dataclasses does with it
    made = namespace["__create_fn__"](int)  # type: ignore[operator]
    assert made.__annotations__ == {"a": int, "return": int}  # not postponed strings


def test_a_damaged_file_or_entry_is_compiled_afresh(tmp_path: Path) -> None:
    path = tmp_path / "code.bin"
    path.write_bytes(b"not marshal")
    cache = _CodeCache(path)
    assert cache.stored == {}
    assert _code_equal(_TEXT, cache)
    cache.save()
    import marshal

    tag, entries = marshal.loads(path.read_bytes())
    path.write_bytes(marshal.dumps((tag, {text: b"\x00damaged" for text in entries})))
    damaged = _CodeCache(path)
    assert _code_equal(_TEXT, damaged)
    assert damaged.new  # compiled again, and rewritten at the next save


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="ownership checks are POSIX only")
def test_a_file_or_directory_others_may_write_to_is_never_used(tmp_path: Path) -> None:
    path = tmp_path / "code.bin"
    cache = _CodeCache(path)
    cache.code(_TEXT)
    cache.save()
    path.chmod(0o666)
    assert _CodeCache(path).stored == {}
    path.chmod(0o600)
    assert _CodeCache(path).stored
    tmp_path.chmod(0o777)
    try:
        again = _CodeCache(path)
        again.code(_TEXT + "\n")
        before = path.read_bytes()
        again.save()
        assert path.read_bytes() == before  # not written into a directory others may write to
    finally:
        tmp_path.chmod(0o700)


def test_no_cache_directory_installs_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    monkeypatch.setenv("CARLANG_CACHE_DIR", "off")
    assert pycode.code_cache_file() is None
    assert pycode.install() is False
    assert "exec" not in vars(dataclasses)
