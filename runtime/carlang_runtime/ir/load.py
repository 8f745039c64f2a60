"""Loading IR documents from models, dicts or JSON text, with errors that say where.

CAR's CLI accepts a bare proposal or a `{"proposal": ...}` wrapper; so does `load_proposal`.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ..errors import IRLoadError, LoadProblem
from ..jsontext import JsonTextError, format_path, locate, parse_json
from .actions import ActionProposal
from .tools import ToolSchema

__all__ = ["load_model", "load_proposal", "load_tools", "validation_problems"]

M = TypeVar("M", bound=BaseModel)

# Keys whose value names the member of a tagged union; pydantic puts that value in error paths.
_UNION_TAG_KEYS = ("type", "rule")


def gc_paused() -> GcPause:
    """Pause the cyclic garbage collector around bulk model building (`with gc_paused(): ...`).

    Validating a large proposal allocates hundreds of thousands of small acyclic objects, and the
    collector's generation-0 passes over them cost about as much as the validation itself. Nothing
    built here forms a cycle, so pausing loses nothing; the previous state is restored.

    Objects made during the pause are still young when it ends, and the first collection after
    it would traverse every one of them (0.4 s after ranking ten 10,000-action candidates). So
    they are moved to the oldest generation untraversed (`freeze` then `unfreeze` splices the
    lists): they are long-lived or freed by reference counting, never cyclic garbage.
    """
    return GcPause()


class GcPause:
    """The context `gc_paused` returns: a class, not a `contextmanager` generator, because
    verify pauses around every call and a generator's set-up costs ~2 us (a tenth of verifying
    a one-action proposal)."""

    __slots__ = ("_was_enabled",)

    def __enter__(self) -> None:
        self._was_enabled = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc_info: object) -> None:
        if self._was_enabled:
            gc.freeze()
            gc.unfreeze()
            gc.enable()


def _clean_path(data: object, loc: Sequence[str | int]) -> list[str | int]:
    """Drop the union-tag components pydantic inserts into error locations."""
    path: list[str | int] = []
    node: object = data
    tag_seen = False
    for part in loc:
        if isinstance(node, Mapping) and isinstance(part, str):
            if not tag_seen and any(node.get(tag) == part for tag in _UNION_TAG_KEYS):
                tag_seen = True  # the tag of a union member, not a key of the document
                continue
            path.append(part)
            node = node.get(part)
            tag_seen = False
        elif isinstance(node, list) and isinstance(part, int):
            path.append(part)
            node = node[part] if 0 <= part < len(node) else None
            tag_seen = False
        else:
            path.append(part)
            node = None
    return path


def validation_problems(
    exc: ValidationError,
    data: object,
    text: str | None = None,
    prefix: Sequence[str | int] = (),
) -> list[LoadProblem]:
    """Turn a pydantic error into problems with document paths, and positions when the document
    was JSON text (`prefix` is where `data` sits inside that text)."""
    problems = []
    for error in exc.errors(include_url=False):
        path = _clean_path(data, [p for p in error["loc"] if isinstance(p, (str, int))])
        message = error["msg"]
        message = message[0].lower() + message[1:] if message else "invalid"
        position = locate(text, [*prefix, *path]) if text is not None else None
        problems.append(LoadProblem(format_path(path), message, position))
    return problems


#: `load_model`'s `decoded` when the caller has not decoded the text.
NOT_DECODED: Any = object()


def load_model(
    model: type[M],
    source: object,
    what: str,
    *,
    wrapper: str | None = None,
    decoded: object = NOT_DECODED,
) -> M:
    """Build `model` from an instance, a mapping or JSON text; raise `IRLoadError` otherwise.

    With `wrapper`, a mapping whose only key is `wrapper` is unwrapped first (`{"proposal": ...}`).
    `decoded`: what `jsontext.parse_json` made of the text `source`, when the caller has it
    (the text is then not parsed again; it still gives the errors their positions).
    """
    if isinstance(source, model):
        return source
    text: str | None = None
    data: object = source
    if isinstance(source, (str, bytes)):
        if decoded is NOT_DECODED:
            try:
                data = parse_json(source)
            except JsonTextError as exc:
                raise IRLoadError(what, [LoadProblem("", exc.message, exc.position)]) from None
        else:
            data = decoded
        text = source.decode("utf-8") if isinstance(source, bytes) else source
    prefix: list[str | int] = []
    if wrapper and isinstance(data, Mapping) and set(data) == {wrapper}:
        data = data[wrapper]
        prefix = [wrapper]
    if not isinstance(data, Mapping):
        position = locate(text, prefix) if text is not None else None
        raise IRLoadError(what, [LoadProblem("", "expected a JSON object", position)])
    try:
        with gc_paused():
            return model.model_validate(data)
    except ValidationError as exc:
        wrapped = _wrapper_with_more(data, wrapper, text) if wrapper and not prefix else None
        problems = wrapped or validation_problems(exc, data, text, prefix)
        raise IRLoadError(what, problems) from None


def _wrapper_with_more(
    data: Mapping[str, Any], wrapper: str, text: str | None
) -> list[LoadProblem] | None:
    """The problem of a document that is no valid bare proposal but holds `wrapper` beside
    other keys: meant as the wrapper, whose other keys keep it from being read as one
    (pydantic would only say that `actions` is missing)."""
    if wrapper not in data or not isinstance(data[wrapper], Mapping) or "actions" in data:
        return None  # (with `actions`, a bare proposal: its own problems are said)
    others = [key for key in data if key != wrapper]
    listed = ", ".join(f"`{key}`" for key in others)
    message = (
        f'a {{"{wrapper}": ...}} wrapper holds no other key, and this object also has {listed}:'
        f" remove {'it' if len(others) == 1 else 'them'}, or send the {wrapper} bare"
    )
    position = locate(text, [others[0]]) if text is not None else None
    return [LoadProblem(format_path([others[0]]), message, position)]


def load_proposal(
    source: ActionProposal | Mapping[str, Any] | str | bytes, *, decoded: object = NOT_DECODED
) -> ActionProposal:
    """An `ActionProposal` from a model, a dict, or JSON text (bare or `{"proposal": ...}`;
    `decoded`: what `parse_json` made of that text, when the caller has it)."""
    return load_model(ActionProposal, source, "proposal", wrapper="proposal", decoded=decoded)


def load_tools(source: object) -> list[ToolSchema] | list[str]:
    """Tool declarations for `verify`: names (existence only) or schemas (existence and
    parameters). Accepts an iterable of names, of `ToolSchema`s or dicts, JSON text of either,
    or a mapping of name -> schema. Problems name the tool's place in the document (`[2]`,
    `tools[2]`, or its name) and, for JSON text, its line and column."""
    data: object = source
    text: str | None = None
    if isinstance(source, (str, bytes)):
        try:
            data = parse_json(source)
        except JsonTextError as exc:
            raise IRLoadError("tool list", [LoadProblem("", exc.message, exc.position)]) from None
        text = source.decode("utf-8") if isinstance(source, bytes) else source
    items = _located_tools(data, text)
    if all(isinstance(item, str) for _, item in items):
        return [str(item) for _, item in items]
    schemas: list[ToolSchema] = []
    for path, item in items:
        if isinstance(item, ToolSchema):
            schemas.append(item)
            continue
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, Mapping):
            problem = "expected a tool: its name, or a JSON object of its schema"
            raise IRLoadError("tool list", [_problem_at(path, problem, text)])
        try:
            schema = ToolSchema.model_validate(item)
        except ValidationError as exc:
            problems = [
                replace(p, path=format_path(path) + (f".{p.path}" if p.path else ""))
                for p in validation_problems(exc, item, text, path)
            ]
            raise IRLoadError("tool list", problems) from None
        if text is not None:
            _check_parameters_schema(schema, path, text)
        schemas.append(schema)
    return schemas


def _check_parameters_schema(schema: ToolSchema, path: list[str | int], text: str) -> None:
    """An `IRLoadError` at the place in a tool list's JSON text where a tool's `parameters`
    is not a valid JSON Schema: the file is what is wrong, not the calls a verifier would
    report it against. (Tools given as objects keep the verifier's finding on each call,
    `invalid registered JSON Schema`, as CAR's runtime says of a schema registered in code:
    there is no place in a file to point to.)"""
    from ..paramcheck import schema_error

    error = schema_error(schema.parameters)
    if error is None:
        return
    where = [*path, "parameters", *error.path]
    problem = f"tool '{schema.name}': its parameters are not a valid JSON Schema: {error.message}"
    raise IRLoadError("tool list", [_problem_at(where, problem, text)])


def _located_tools(data: object, text: str | None) -> list[tuple[list[str | int], object]]:
    """The tools `data` declares, each with its path in the document: a list (bare or as
    `{"tools": [...]}`), or a mapping of name -> schema (the name joins the schema)."""
    base: list[str | int] = []
    if isinstance(data, Mapping):
        if set(data) == {"tools"}:
            data, base = data["tools"], ["tools"]
        else:
            return [
                ([name], {"name": name, **spec} if isinstance(spec, Mapping) else spec)
                for name, spec in data.items()
            ]
    if not isinstance(data, Iterable) or isinstance(data, (str, bytes)):
        problem = "expected a list of tools (names or schemas), or an object of name -> schema"
        raise IRLoadError("tool list", [_problem_at(base, problem, text)])
    return [([*base, index], item) for index, item in enumerate(data)]


def _problem_at(path: list[str | int], message: str, text: str | None) -> LoadProblem:
    """A problem at `path` of the document, located in `text` when there is one."""
    return LoadProblem(format_path(path), message, locate(text, path) if text else None)
