"""The package's public names: each is what its name says whatever was imported before."""

from __future__ import annotations

import subprocess
import sys

import pytest

#: Ways a program may have imported carlang_runtime's modules before it asks for `verify`.
_BEFORE = [
    "",
    "import carlang_runtime.verify",
    "from carlang_runtime.verify import simulate",
    "import carlang_runtime; carlang_runtime.verify",
    "from carlang_runtime import verify as first; import carlang_runtime.verify",
]


@pytest.mark.parametrize("before", _BEFORE)
def test_verify_is_the_function_whatever_was_imported_first(before: str) -> None:
    code = (
        f"{before}\n"
        "import importlib, inspect, carlang_runtime\n"
        "from carlang_runtime import verify\n"
        "assert inspect.isfunction(verify), verify\n"
        "assert carlang_runtime.verify is verify\n"
        "module = importlib.import_module('carlang_runtime.verify')\n"
        "assert inspect.ismodule(module) and module.verify is verify\n"
        "assert verify({'actions': [{'type': 'tool_call', 'tool': 't'}]}, tools=['t']).valid\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_dir_lists_the_lazy_names() -> None:
    import carlang_runtime

    names = dir(carlang_runtime)
    assert set(carlang_runtime.__all__) <= set(names)
    assert "Runtime" in names and "verify" in names and "__version__" in names
