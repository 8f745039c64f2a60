"""The cache of compiled conditions: in memory, on disk for the next process, never an error."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from carlang_runtime.cel import (
    CelCompileError,
    CelEvalError,
    CelSyntaxError,
    Limits,
    compile,
    format_value,
)
from carlang_runtime.cel import program as program_module
from carlang_runtime.cel.cache import CompileCache
from carlang_runtime.cel.checker import Declarations
from carlang_runtime.cel.types import DYN
from hypothesis import given, settings

from .generator import activations, expressions

ACTIVATION: dict[str, Any] = {
    "params": {"url": "http://127.0.0.1/x", "hosts": ["a.example.com", "b.example.com"]},
    "a.b": {"c": 7},
}
SOURCES = [
    'params.url.matches("^https?://(localhost|127\\\\.)")',
    'params.hosts.all(h, h.endsWith(".example.com")) && size(params.hosts) == 2',
    'timestamp("2026-01-01T00:00:00Z") + duration("5m") > timestamp("2025-01-01T00:00:00Z")',
    "a.b.c == 7",  # resolves the qualified name `a.b` against the activation
    "[1.0, 2.0, 3.0].map(x, x * 2.5)[2] == 7.5",
]


def test_the_same_inputs_give_the_same_program_from_memory(tmp_path: Path) -> None:
    cache = CompileCache(tmp_path)
    first = compile(SOURCES[1], cache=cache)
    assert compile(SOURCES[1], cache=cache) is first
    # Other inputs are other programs.
    declared = Declarations({"params": DYN})
    assert compile(SOURCES[1], declared, cache=cache) is not first
    assert compile(SOURCES[1], container="com.example", cache=cache) is not first


@pytest.mark.parametrize("source", SOURCES)
def test_a_fresh_process_restores_the_program_from_disk(
    tmp_path: Path, source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh = compile(source, cache=None)
    compile(source, cache=CompileCache(tmp_path))
    assert len(list(tmp_path.glob("*.bin"))) == 1
    with monkeypatch.context() as patched:
        patched.setattr(program_module, "_compile", _must_not_compile)
        restored = compile(source, cache=CompileCache(tmp_path))  # empty memory: from the file
    assert restored is not fresh
    assert restored.evaluate(ACTIVATION) == fresh.evaluate(ACTIVATION)
    assert restored.python_source == fresh.python_source
    assert restored.cost == fresh.cost
    assert str(restored.explain(ACTIVATION)) == str(fresh.explain(ACTIVATION))


def test_files_are_marshalled_unless_a_constant_needs_pickle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Built-in values only: marshal, which a fresh process reads without importing pickle; a
    folded timestamp: pickle. A file pickled whole (the earlier form) still restores."""
    plain, folded = tmp_path / "plain", tmp_path / "folded"
    with_duration = 'duration("5m") == duration(size(params.url) > 0 ? "5m" : "1m")'
    compile(SOURCES[0], cache=CompileCache(plain))
    compile(with_duration, cache=CompileCache(folded))
    [plain_file], [folded_file] = plain.glob("*.bin"), folded.glob("*.bin")
    assert plain_file.read_bytes()[:1] == b"M"
    assert folded_file.read_bytes()[:1] == b"\x80"  # (pickle's protocol mark: a CelDuration)
    import marshal
    import pickle

    parts = marshal.loads(plain_file.read_bytes()[1:])
    plain_file.write_bytes(pickle.dumps(parts, protocol=pickle.HIGHEST_PROTOCOL))
    monkeypatch.setattr(program_module, "_compile", _must_not_compile)
    for directory, source in ((plain, SOURCES[0]), (folded, with_duration)):
        restored = compile(source, cache=CompileCache(directory))
        assert restored.evaluate(ACTIVATION) is True


def _must_not_compile(*_: Any) -> None:
    raise AssertionError("compiled again instead of restoring the stored program")


def test_declarations_are_part_of_the_key_and_the_restored_program(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    declared = Declarations({"params": DYN})
    compile("params.hosts.exists(h, h == 'x')", declared, cache=CompileCache(tmp_path))
    monkeypatch.setattr(program_module, "_compile", _must_not_compile)
    restored = compile("params.hosts.exists(h, h == 'x')", declared, cache=CompileCache(tmp_path))
    assert restored.declared == frozenset({"params"})
    assert restored.evaluate(ACTIVATION) is False


def test_a_corrupt_file_is_ignored_and_rewritten(tmp_path: Path) -> None:
    compile(SOURCES[0], cache=CompileCache(tmp_path))
    [path] = tmp_path.glob("*.bin")
    path.write_bytes(b"not a pickle")
    assert compile(SOURCES[0], cache=CompileCache(tmp_path)).evaluate(ACTIVATION) is True
    assert path.read_bytes() != b"not a pickle"
    assert compile(SOURCES[0], cache=CompileCache(tmp_path)).evaluate(ACTIVATION) is True


def test_a_cache_that_cannot_be_written_only_costs_the_disk_level(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("a file where the directory would be")
    program = compile(SOURCES[1], cache=CompileCache(blocked / "cel"))
    assert program.evaluate(ACTIVATION) is True


def test_another_version_of_the_code_does_not_read_the_files(tmp_path: Path) -> None:
    cache = CompileCache(tmp_path)
    key = cache.key("true", None, "", None)
    other = CompileCache(tmp_path)
    other._fingerprint = "another carlang"
    assert cache.file_key(key) != other.file_key(key)


def test_errors_are_not_cached(tmp_path: Path) -> None:
    cache = CompileCache(tmp_path)
    for _ in range(2):
        with pytest.raises(CelSyntaxError):
            compile("params.url ==", cache=cache)
    assert not cache.memory
    assert not list(tmp_path.glob("*.bin"))


def test_the_disk_level_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARLANG_CACHE_DIR", "off")
    assert CompileCache().directory is None
    monkeypatch.setenv("CARLANG_CACHE_DIR", "/somewhere")
    assert CompileCache().directory == Path("/somewhere/cel")


def _outcome(program: Any, activation: dict[str, Any]) -> tuple[str, Any]:
    try:
        return ("value", format_value(program.evaluate(activation)))
    except CelEvalError as exc:
        return ("error", exc.kind)


@settings(max_examples=150)
@given(expressions(), activations())
def test_a_restored_program_evaluates_as_the_compiled_one(
    expression: str, activation: dict[str, Any]
) -> None:
    limits = Limits(max_cost=10**15, max_steps=10**15, max_seconds=600.0)
    try:
        fresh = compile(expression, limits=limits, cache=None)
    except CelCompileError:
        return
    with tempfile.TemporaryDirectory() as directory:
        compile(expression, limits=limits, cache=CompileCache(Path(directory)))
        restored = compile(expression, limits=limits, cache=CompileCache(Path(directory)))
    assert restored.python_source == fresh.python_source
    assert _outcome(restored, activation) == _outcome(fresh, activation)


def test_the_disk_level_is_bounded(tmp_path: Path) -> None:
    for number in range(6):
        # A fresh cache per write: each process checks the count at its first write.
        compile(f"params.n == {number}", cache=CompileCache(tmp_path, files=4))
    assert 0 < len(list(tmp_path.glob("*.bin"))) <= 4


def test_a_process_keeps_every_condition_it_uses_and_bounds_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from carlang_runtime.cel import cache as cache_module

    # More conditions than the bound, and writes enough for the count to be checked again:
    # pruning the older half, a run deleted its own conditions and the next found almost none
    # (a check of 40,000 policies, past the bound of 8,192, compiled, wrote and deleted them
    # all again: 30x the CPU time of 4,000).
    sources = [f"params.n == {number}" for number in range(cache_module._PRUNE_EVERY + 8)]
    first = CompileCache(tmp_path, files=4)
    for source in sources:
        compile(source, cache=first)
    with monkeypatch.context() as patched:
        patched.setattr(program_module, "_compile", _must_not_compile)
        again = CompileCache(tmp_path, files=4)
        for source in sources:
            compile(source, cache=again)
    # The bound holds for what a process does not use: the next one keeps 4 // 2 of them.
    compile("params.n == -1", cache=CompileCache(tmp_path, files=4))
    assert len(list(tmp_path.glob("*.bin"))) == 4 // 2 + 1


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="ownership checks are POSIX only")
def test_a_directory_others_may_write_to_is_never_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stored condition is code that runs: a file someone else could have put there must not.
    compile(SOURCES[0], cache=CompileCache(tmp_path))
    assert len(list(tmp_path.glob("*.bin"))) == 1
    tmp_path.chmod(0o777)
    monkeypatch.setattr(program_module, "_compile", _must_not_compile)
    with pytest.raises(AssertionError, match="compiled again"):
        compile(SOURCES[0], cache=CompileCache(tmp_path))
    assert CompileCache(tmp_path).directory is None


def test_the_directory_is_made_for_this_user_alone(tmp_path: Path) -> None:
    compile(SOURCES[0], cache=CompileCache(tmp_path / "new" / "cel"))
    assert (tmp_path / "new" / "cel").stat().st_mode & 0o777 == 0o700


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="ownership checks are POSIX only")
def test_a_file_others_may_write_to_is_never_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    compile(SOURCES[0], cache=CompileCache(tmp_path))
    [path] = tmp_path.glob("*.bin")
    path.chmod(0o666)
    monkeypatch.setattr(program_module, "_compile", _must_not_compile)
    with pytest.raises(AssertionError, match="compiled again"):
        compile(SOURCES[0], cache=CompileCache(tmp_path))


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0, reason="needs chown (root)")
def test_another_users_file_is_never_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    compile(SOURCES[0], cache=CompileCache(tmp_path))
    [path] = tmp_path.glob("*.bin")
    os.chown(path, 54321, -1)
    monkeypatch.setattr(program_module, "_compile", _must_not_compile)
    with pytest.raises(AssertionError, match="compiled again"):
        compile(SOURCES[0], cache=CompileCache(tmp_path))


def test_no_home_means_no_disk_level(monkeypatch: pytest.MonkeyPatch) -> None:
    from carlang_runtime.cel.cache import cache_directory

    def homeless() -> Path:
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.delenv("CARLANG_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setattr(Path, "home", homeless)
    assert cache_directory() is None
    assert compile("1 + 1 == 2", cache=CompileCache()).evaluate({}) is True


def test_a_directory_given_as_text_is_used(tmp_path: Path) -> None:
    compile(SOURCES[0], cache=CompileCache(str(tmp_path)))
    assert len(list(tmp_path.glob("*.bin"))) == 1


def test_the_parser_driver_and_tables_are_part_of_the_key() -> None:
    from carlang_runtime.cel.cache import _code_fingerprint

    fingerprint = _code_fingerprint()
    assert "lalr.py:" in fingerprint and "cel_tables.json:" in fingerprint


# -- reading a stored file --------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 65_535, 65_536, 65_537, 3 * 65_536, 5_000_001])
def test_a_stored_file_is_read_whole_in_one_read(
    tmp_path: Path, size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from carlang_runtime import diskcache

    data = os.urandom(size)
    path = tmp_path / "entry.bin"
    path.write_bytes(data)
    path.chmod(0o600)
    reads: list[int] = []
    real_read = os.read

    def counted(handle: int, wanted: int) -> bytes:
        reads.append(wanted)
        return real_read(handle, wanted)

    monkeypatch.setattr(os, "read", counted)
    assert diskcache.read_private(str(path)) == data
    # Read 64 KiB at a time and grown by `+=`, a 52 MB condition took 22 s to read (each
    # chunk copied all that came before it); the size is known: one read of it.
    assert len(reads) == 1


def test_a_stored_file_that_grew_or_was_read_short_is_still_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from carlang_runtime import diskcache

    data = os.urandom(200_000)
    path = tmp_path / "entry.bin"
    path.write_bytes(data)
    path.chmod(0o600)
    real_read = os.read
    # A read that returns at most 1,000 bytes (a signal, a pipe-like file system) ...
    monkeypatch.setattr(os, "read", lambda h, n: real_read(h, min(n, 1_000)))
    assert diskcache.read_private(str(path)) == data
    # ... and a file appended to after its size was taken.
    real_fstat = os.fstat
    monkeypatch.setattr(os, "read", real_read)
    monkeypatch.setattr(
        os,
        "fstat",
        lambda h: os.stat_result((*real_fstat(h)[:6], 10, *real_fstat(h)[7:])),
    )
    assert diskcache.read_private(str(path)) == data


# -- bundles: a set's conditions from one file ------------------------------------------------


def _reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The cache files read from now on, by name."""
    from carlang_runtime.cel import cache as cache_module

    names: list[str] = []
    real = cache_module.read_private

    def counting(path: str) -> bytes | None:
        names.append(os.path.basename(path))
        return real(path)

    monkeypatch.setattr(cache_module, "read_private", counting)
    return names


def _compile_set(directory: Path, sources: list[str]) -> list[Any]:
    cache = CompileCache(directory)  # (a fresh process's: nothing in memory)
    with cache.bundle("\0".join(sources)):
        return [compile(source, cache=cache) for source in sources]


def test_a_set_compiled_again_reads_one_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _compile_set(tmp_path, SOURCES)  # compiled: each condition's file, then the bundle
    _compile_set(tmp_path, SOURCES)  # read from their files: the bundle is written
    bundles = list(tmp_path.glob("set-*.bin"))
    assert len(bundles) == 1
    reads = _reads(monkeypatch)
    with monkeypatch.context() as patched:
        patched.setattr(program_module, "_compile", _must_not_compile)
        programs = _compile_set(tmp_path, SOURCES)
    assert reads == [bundles[0].name]
    for source, program in zip(SOURCES, programs, strict=True):
        fresh = compile(source, cache=None)
        assert format_value(program.evaluate(ACTIVATION)) == format_value(
            fresh.evaluate(ACTIVATION)
        )


def test_a_changed_set_reads_what_its_bundle_lacks_and_rewrites_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _compile_set(tmp_path, SOURCES[:3])
    _compile_set(tmp_path, SOURCES[:3])
    changed = [*SOURCES[:2], SOURCES[3]]  # (another set: another bundle)
    _compile_set(tmp_path, changed)
    _compile_set(tmp_path, changed)
    reads = _reads(monkeypatch)
    _compile_set(tmp_path, changed)
    assert len(reads) == 1 and reads[0].startswith("set-")
    assert len(list(tmp_path.glob("set-*.bin"))) == 2


def test_a_bundle_that_cannot_be_used_is_passed_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _compile_set(tmp_path, SOURCES)
    _compile_set(tmp_path, SOURCES)
    (bundle,) = tmp_path.glob("set-*.bin")
    bundle.write_bytes(b"M\x00garbage")
    reads = _reads(monkeypatch)
    with monkeypatch.context() as patched:
        patched.setattr(program_module, "_compile", _must_not_compile)
        programs = _compile_set(tmp_path, SOURCES)  # each from its own file
    assert len(reads) == 1 + len(SOURCES)
    assert format_value(programs[3].evaluate(ACTIVATION)) == "true"
    bundle.chmod(0o666)  # (written anew above; one others may write to is never read)
    reads.clear()
    _compile_set(tmp_path, SOURCES)
    assert len(reads) == 1 + len(SOURCES)


def test_a_bundle_holds_only_what_its_entries_are_keyed_by(tmp_path: Path) -> None:
    """An entry is found by its condition's key: compiled under other limits, the same
    source is another condition, compiled afresh (not served the other's program)."""
    _compile_set(tmp_path, SOURCES[:1])
    _compile_set(tmp_path, SOURCES[:1])
    cache = CompileCache(tmp_path)
    with cache.bundle(SOURCES[0]):
        program = compile(SOURCES[0], limits=Limits(max_steps=7), cache=cache)
    assert program.limits.max_steps == 7


def test_a_policy_set_loads_its_conditions_from_one_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from carlang_runtime import ir
    from carlang_runtime.cel.cache import DEFAULT
    from carlang_runtime.policy import PolicySet

    monkeypatch.setattr(DEFAULT, "_directory", tmp_path)
    monkeypatch.setattr(DEFAULT, "memory", type(DEFAULT.memory)())
    policies = [ir.CelPolicy(name=f"p{i}", when=f"params.n > {i}", tools=["t"]) for i in range(5)]
    PolicySet(policies)
    DEFAULT.clear()
    PolicySet(policies)  # (the bundle is written)
    DEFAULT.clear()
    reads = _reads(monkeypatch)
    loaded = PolicySet(policies)
    assert len(reads) == 1 and reads[0].startswith("set-")
    action = ir.Action(id="a", type="tool_call", tool="t", parameters={"n": 3})
    decision = loaded.evaluate(action)
    assert decision.denied
    assert [m.policy for m in decision.matches] == ["p0", "p1", "p2"]


def test_only_the_newest_bundles_are_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from carlang_runtime.cel import cache as cache_module

    monkeypatch.setattr(cache_module, "_BUNDLES", 2)
    for size in range(1, 5):
        _compile_set(tmp_path, SOURCES[:size])
        _compile_set(tmp_path, SOURCES[:size])  # (its bundle written)
    assert len(list(tmp_path.glob("set-*.bin"))) == 2
    reads = _reads(monkeypatch)
    _compile_set(tmp_path, SOURCES[:4])  # (the newest: still one read)
    assert len(reads) == 1


def test_a_set_that_fails_to_compile_writes_no_bundle(tmp_path: Path) -> None:
    sources = [SOURCES[0], "1 +"]
    for _ in range(2):
        with pytest.raises(CelSyntaxError):
            _compile_set(tmp_path, sources)
    assert list(tmp_path.glob("set-*.bin")) == []
    assert list(tmp_path.glob("*.bin"))  # (the condition that compiled is kept on its own)


def test_a_policy_sets_shadow_conditions_are_in_its_bundle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from carlang_runtime import ir
    from carlang_runtime.cel.cache import DEFAULT
    from carlang_runtime.policy import PolicySet

    monkeypatch.setattr(DEFAULT, "_directory", tmp_path)
    monkeypatch.setattr(DEFAULT, "memory", type(DEFAULT.memory)())
    policies = [
        ir.CelPolicy(name="enforced", when="params.n > 1", tools=["t"]),
        ir.CelPolicy(name="trial", when="params.n > 2", tools=["t"], shadow=True),
    ]
    for _ in range(2):
        PolicySet(policies)
        DEFAULT.clear()
    reads = _reads(monkeypatch)
    loaded = PolicySet(policies)
    assert len(reads) == 1 and reads[0].startswith("set-")
    assert loaded.shadow is not None and len(loaded) == 2
