"""A small program and runtime shared by the agent tests."""

from __future__ import annotations

from typing import Any

import pytest
from carlang_runtime.engine import Runtime

from tests.helpers import compile_diagnostics

PROGRAM = """
tool read_file(path: string) -> string { description "read a file" }
tool write_file(path: string, content: string) -> object { description "write a file" }
tool list_dir(path: string) -> list[string]
tool shell(cmd: string)
capability agent { tools allow read_file, write_file, list_dir }
policy inside_notes: deny write_file when !params.path.startsWith("notes/")
  message "write only under notes/"
"""


@pytest.fixture
def program() -> Any:
    result = compile_diagnostics(PROGRAM)
    assert not [d for d in result.diagnostics.items if d.severity == "error"]
    return result.program


@pytest.fixture
def runtime(program: Any) -> Runtime:
    files: dict[str, str] = {"notes/a.txt": "alpha"}
    rt = Runtime.from_program(program)
    rt.register_tool("read_file", lambda path: files[path])

    def write_file(path: str, content: str) -> dict[str, Any]:
        files[path] = content
        return {"written": len(content)}

    rt.register_tool("write_file", write_file)
    rt.register_tool("list_dir", lambda path: sorted(k for k in files if k.startswith(path)))
    rt.register_tool("shell", lambda cmd: "ran")
    rt.files = files  # type: ignore[attr-defined]
    return rt
