"""Shared test setup: hypothesis profiles, the golden-file update flag, car-runtime detection."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    max_examples=100,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("dev", deadline=None, max_examples=500)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

HAS_CAR = importlib.util.find_spec("car_runtime") is not None

# Compiled CEL conditions are cached on disk (carlang_runtime.cel.cache), except in the tests
# and the CLI processes they start: the user's cache is not theirs to fill, and writing a file
# per generated expression slows the property tests. tests/runtime/cel/test_cache.py tests the
# disk level in directories of its own.
os.environ.setdefault("CARLANG_CACHE_DIR", "off")

# pytest-xdist's workers get COLUMNS=80 and LINES=24, which rich (and every process a test
# starts at a pseudo-terminal of its own size) takes over the terminal's real size: a worker
# runs as the single process does, without them.
if "PYTEST_XDIST_WORKER" in os.environ:
    for _name in ("COLUMNS", "LINES"):
        os.environ.pop(_name, None)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-goldens",
        action="store_true",
        default=False,
        help="rewrite golden files under tests/golden instead of comparing",
    )


@pytest.fixture
def update_goldens(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-goldens")) or bool(
        os.environ.get("CARLANG_UPDATE_GOLDENS")
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if HAS_CAR:
        return
    skip = pytest.mark.skip(
        reason="car-runtime is not installed (from a carlang checkout: pip install -e '.[car]')"
    )
    for item in items:
        if "car" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(params=["c", "python"])
def speedups(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The test runs twice: with the C speedups (skipped where they were not built), and with
    their pure-Python twins. (Module-scoped state is patched, so hypothesis's examples within
    one run share it, as they should.)"""
    from carlang_runtime import speedups as loader

    if request.param == "c":
        if loader.native() is None:
            pytest.skip("the C speedups (carlang_runtime._speedups) are not built here")
    else:
        monkeypatch.setattr(loader, "native", lambda: None)
    return str(request.param)


@pytest.fixture(params=["c", "msgspec"])
def fast_decoder(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The test runs with each fast decoder of JSON text alone: the C speedups (msgspec off),
    then msgspec (the C speedups off); each skipped where it is not installed."""
    from carlang_runtime import speedups as loader
    from carlang_runtime.ir import fastload

    if request.param == "c":
        if loader.native() is None:
            pytest.skip("the C speedups (carlang_runtime._speedups) are not built here")
        monkeypatch.setattr(fastload, "_msgspec_decode", lambda _text, many: None)
    else:
        pytest.importorskip("msgspec", reason="msgspec (the `fast` extra) is not installed")
        monkeypatch.setattr(loader, "native", lambda: None)
    return str(request.param)
