"""Regenerate tests/data/cel_conformance.json: the cel-spec conformance cases cel-python passes.

cel-python's source distribution carries cel-spec's conformance tests as Gherkin feature files
(features/*.feature). This reads the ones about the core language, runs every scenario through
cel-python, and keeps the scenarios cel-python passes with no protobuf messages or extensions
involved: expression, variables, container and expected value (or "an error"), in the tagged
JSON of tests/runtime/cel/celpy_bridge.py. test_conformance.py then runs them through carlang.

    pip download --no-deps --no-binary :all: cel-python==<installed version> -d /tmp/celpy
    tar xzf /tmp/celpy/cel_python-*.tar.gz -C /tmp/celpy
    python tests/tools/extract_cel_conformance.py /tmp/celpy/cel_python-*/features

The cases are cel-spec's (Apache License 2.0, see tests/data/NOTICE).
"""

from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path
from typing import Any

import celpy
from celpy import celtypes

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.runtime.cel.celpy_values import encode, from_celpy, same  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "data" / "cel_conformance.json"
FEATURES = [
    "basic",
    "comparisons",
    "logic",
    "macros",
    "integer_math",
    "fp_math",
    "string",
    "conversions",
    "timestamps",
    "lists",
    "fields",
    "error_propagation",
    "parse",
    "plumbing",
    "namespace",
    "dynamic",
]
_SCENARIO = re.compile(r"^Scenario: (.+)$")
_WHEN = re.compile(r"^When CEL expression (.+) is evaluated$")
_VALUE = re.compile(r"^(?:Then|And) value is (.+)$")
_ERROR = re.compile(r"^Then eval_error is (.+)$")
_BINDING = re.compile(r'^(?:Given|and|And) bindings parameter "([\w.]+)" is (.+)$')
_CONTAINER = re.compile(r"^(?:Given|and|And) container is '([\w.]*)'$")
_TYPE_ENV = re.compile(r'^(?:Given|and|And) type_env parameter "([\w.]+)" is (.+)$')
_MESSAGE = re.compile(r"\b[A-Z]\w*\{")
_ERROR_EXPECTED = object()
_NAMESPACE = {"celpy": celpy, "celtypes": celtypes, "datetime": __import__("datetime")}


def scenarios(path: Path) -> list[dict[str, Any]]:
    """The scenarios of one feature file, as dicts of what their steps say."""
    found: list[dict[str, Any]] = []
    tags: list[str] = []
    current: dict[str, Any] | None = None
    for raw in path.read_text("utf-8").splitlines():
        line = raw.strip()
        if line.startswith("@"):
            tags = line.split()
            continue
        match = _SCENARIO.match(line)
        if match:
            current = {"name": f"{path.stem}/{match.group(1)}", "tags": tags, "steps": []}
            found.append(current)
            tags = []
        elif current is not None and line and not line.startswith("#"):
            current["steps"].append(line)
    return found


def case(scenario: dict[str, Any]) -> dict[str, Any] | None:
    """A conformance case, or None when the scenario is out of scope."""
    if "@wip" in scenario["tags"]:
        return None
    expression = None
    expected: Any = None
    error = False
    bindings: dict[str, Any] = {}
    container = ""
    for step in scenario["steps"]:
        if (match := _CONTAINER.match(step)) is not None:
            container = match.group(1)
            continue
        if "disable_check" in step or _TYPE_ENV.match(step):
            continue
        if (match := _WHEN.match(step)) is not None:
            expression = ast.literal_eval(match.group(1))
        elif (match := _VALUE.match(step)) is not None:
            expected = match.group(1)
        elif _ERROR.match(step):
            error = True
        elif (match := _BINDING.match(step)) is not None:
            bindings[match.group(1)] = match.group(2)
        else:
            return None  # a step this extraction does not understand
    if expression is None or (expected is None and not error):
        return None
    if "google.protobuf" in expression or _MESSAGE.search(expression):
        return None  # protobuf messages and wrappers are out of scope
    try:
        values = {name: eval(text, _NAMESPACE) for name, text in bindings.items()}  # noqa: S307
        want = None if error else from_celpy(eval(expected, _NAMESPACE))  # noqa: S307
        env = celpy.Environment(package=container or None)
        got = env.program(env.compile(expression)).evaluate(values)
    except celpy.CELEvalError:
        if not error:
            return None
        return _keep(scenario, expression, values, _ERROR_EXPECTED, container)
    except Exception:
        return None  # protobuf messages, celpy failures: out of scope
    if error or isinstance(got, celpy.CELEvalError):
        return None  # celpy does not pass it
    try:
        if not same(from_celpy(got), want):
            return None
    except TypeError:
        return None
    return _keep(scenario, expression, values, want, container)


def _keep(
    scenario: dict[str, Any], expression: str, values: dict[str, Any], want: Any, container: str
) -> dict[str, Any] | None:
    try:
        variables = {name: encode(from_celpy(value)) for name, value in values.items()}
    except TypeError:
        return None
    expected = {"error": True} if want is _ERROR_EXPECTED else {"value": encode(want)}
    case = {"name": scenario["name"], "expr": expression, "bindings": variables, **expected}
    return {**case, "container": container} if container else case


def main(features: Path) -> None:
    cases = []
    for name in FEATURES:
        path = features / f"{name}.feature"
        if path.exists():
            cases += [c for c in map(case, scenarios(path)) if c is not None]
    document = {
        "source": "cel-spec conformance tests as shipped in cel-python "
        f"{getattr(celpy, '__version__', '')} (features/*.feature); Apache License 2.0",
        "cases": cases,
    }
    OUT.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {len(cases)} cases to {OUT}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
