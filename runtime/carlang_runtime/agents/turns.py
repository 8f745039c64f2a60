"""A model's assistant turn -> its tool calls -> a proposal.

Four shapes are read (see docs/agents.md):

- `openai`: a chat-completions assistant message, `tool_calls: [{id, type: "function",
  function: {name, arguments}}]`, `arguments` a JSON string;
- `openai-responses`: Responses API output items `{type: "function_call", call_id, name,
  arguments}` (the response, its `output` list, or one item);
- `anthropic`: a Messages API assistant message (or its content list) with `{type: "tool_use",
  id, name, input}` blocks;
- `langchain`: an `AIMessage` (or its dict) with `tool_calls: [{name, args, id}]`.

Objects (SDK models) are read through `model_dump()` or their attributes.

A turn read in a format its calls are not written in is an error (`TurnFormatError`), never a
turn without calls: each reader skips what it does not know, so an Anthropic `tool_use` block
read as OpenAI would otherwise end a loop as if the model had answered in text. `turn_shapes`
says which formats a turn shows. So is a turn no format reads (a legacy `function_call`, a
call given alone, another role's message, a CAR proposal), while a wrapper whose message is
plain is unwrapped: a Chat Completions response of one choice (its `message`), a LangChain
AIMessage serialized by `dumpd` (its `kwargs`) or `message_to_dict` (its `data`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from ..errors import CarlangRuntimeError
from ..ir import Action, ActionProposal, ActionType, Program, Reversibility, ToolSchema
from ..jsontext import JsonTextError, format_path, parse_json
from ..jsonvalue import json_kind
from ..jsonvalue import not_json as _not_json
from ..paramcheck import json_type_name
from ..suggest import with_article

__all__ = [
    "FORMATS",
    "Format",
    "Shape",
    "ToolCall",
    "Turn",
    "TurnError",
    "TurnFormatError",
    "assistant_message",
    "misread",
    "parse_turn",
    "proposal_from_turn",
    "turn_shapes",
]

Format = Literal["openai", "openai-responses", "anthropic", "langchain"]
#: The tool-call formats carlang reads and writes.
FORMATS: tuple[str, ...] = ("openai", "openai-responses", "anthropic", "langchain")


class TurnError(CarlangRuntimeError):
    """A turn that cannot become a proposal: an unknown format, a shape that is not a turn, or
    a call whose arguments are malformed (the message names the call)."""


@dataclass(frozen=True)
class Shape:
    """What shows the format a turn is written in: the format (one of `FORMATS`, or, for a
    turn no format reads, a word for what it is: `car` for a CAR proposal), what shows it and
    where (a path in the turn, `("content", 1)`). A turn no format reads also has `kind`, what
    it is (`a CAR proposal`), and `fix`, why that is no turn and what to send instead."""

    format: str
    what: str
    path: tuple[str | int, ...] = ()
    kind: str = ""
    fix: str = ""

    @property
    def readable(self) -> bool:
        """Whether some format reads a turn of this shape."""
        return self.format in FORMATS

    def seen(self) -> str:
        """`a `tool_use` content block at content[1]`."""
        where = format_path(self.path)
        if not self.what:
            return f"at {where}" if where else ""
        return f"{self.what} at {where}" if where else self.what

    def named(self) -> str:
        """What the turn is, to follow `the turn is`: `in the anthropic format (a `tool_use`
        content block at content[1])`, or `a CAR proposal (an action at actions[0])`."""
        if self.readable:
            return f"in the {self.format} format ({self.seen()})"
        seen = self.seen()
        return f"{self.kind} ({seen})" if seen else self.kind

    def refusal(self) -> str:
        """What a turn no format reads is, why it is no turn and what to send instead."""
        return f"{self.named()}, {self.fix}"


class TurnFormatError(TurnError):
    """A turn read in a format its tool calls are not written in (`format`, the one asked
    for; `shape`, what the turn shows): read anyway, its calls would be lost or misread. Also
    a turn no format reads (`shape.readable` false), whatever the format."""

    def __init__(self, shape: Shape, format: str) -> None:
        self.shape = shape
        self.format = format
        if not shape.readable:
            super().__init__(f"the turn is {shape.refusal()}")
            return
        super().__init__(
            f"the turn is {shape.named()}; read as {format}, its tool calls would be lost"
        )


@dataclass(frozen=True)
class ToolCall:
    """One tool call of a turn: its id, the tool's name as the model wrote it, and its
    arguments (None with `problem` when they are malformed)."""

    id: str
    name: str
    arguments: dict[str, Any] | None
    problem: str | None = None

    def describe(self) -> str:
        """`call <id> (<name>)`, how errors name a call."""
        return f"call {self.id} ({self.name})"


@dataclass(frozen=True)
class Turn:
    """What one assistant turn says: its text and its tool calls, in the order emitted."""

    text: str
    calls: tuple[ToolCall, ...] = field(default_factory=tuple)


def parse_turn(message: Any, format: str = "openai", *, turn: int = 0) -> Turn:
    """The text and tool calls of an assistant turn. A call's id is kept as text (a number
    too: `7` is `"7"`); calls without one get `call_{turn}_{index}` (CAR's rule). A call with
    malformed arguments, or whose id an earlier call of the turn has, is kept with its
    `problem`, so a loop can feed it back to the model. A turn whose calls are written in
    another format raises `TurnFormatError` (see `misread`)."""
    reader = _READERS.get(format)
    if reader is None:
        raise TurnError(f"unknown tool-call format '{format}' (use one of {', '.join(FORMATS)})")
    other = misread(message, format)
    if other is not None:
        raise TurnFormatError(other, format)
    text, raw_calls = reader(assistant_message(message))
    calls = []
    seen: set[str] = set()
    for index, (call_id, name, arguments) in enumerate(raw_calls):
        call_id = _call_id(call_id) or f"call_{turn}_{index}"
        twice = f"call id '{call_id}' is used twice in this turn" if call_id in seen else None
        seen.add(call_id)
        if not isinstance(name, str) or not name:
            calls.append(ToolCall(call_id, str(name or ""), None, "the call names no tool"))
            continue
        parsed, problem = _arguments(arguments)
        calls.append(ToolCall(call_id, name, parsed, problem or twice))
    return Turn(text, tuple(calls))


def _call_id(raw: Any) -> str | None:
    """A call's id as text: a non-empty string, or an integer (some servers number their
    calls; their results must carry the same id back); None for anything else."""
    if isinstance(raw, str):
        return raw or None
    if isinstance(raw, int) and not isinstance(raw, bool):
        return str(raw)
    return None


def proposal_from_turn(
    message: Any,
    format: str = "openai",
    *,
    tools: Iterable[ToolSchema] | Mapping[str, ToolSchema] | Program | Any = (),
    turn: int = 0,
    proposal_id: str | None = None,
    capability: str | None = None,
    budget: str | None = None,
) -> ActionProposal:
    """A proposal of the tool calls in an assistant turn: one `tool_call` action per call,
    the action id the call id, the parameters its arguments, under `capability` and
    `budget`. Calls run in the order emitted (each after the one before: a turn may mkdir,
    then write), unless every tool called is declared read-only in `tools` (then they may run
    in parallel). A tool name the model saw encoded (`fs__read_file` for `fs.read_file`) is
    mapped back through `tools`: tool schemas, or a `Program` or `Runtime`, whose tools
    `capability` allows are then the ones the model was offered (as `tool_specs` offers them).
    Raises `TurnError` naming the first call that is malformed (its arguments, its id used
    twice), or whose tool name may mean two of `tools` (`fs__delete`: tool `fs__delete`, or
    `fs.delete` as models see it; given the tools offered, it means the one offered)."""
    from .specs import ambiguous_tool_names

    parsed = parse_turn(message, format, turn=turn)
    known = _known(tools, capability)
    for call in parsed.calls:
        if call.problem is not None:
            raise TurnError(f"{call.describe()}: {call.problem}")
        meant = ambiguous_tool_names(call.name, known)
        if meant:
            raise TurnError(
                f"{call.describe()}: the tool name '{call.name}' is ambiguous: it may mean"
                f" {' or '.join(meant)} (give `tools` the program and the capability, or"
                " only the tools the model was offered)"
            )
    return proposal_from_calls(
        parsed.calls,
        tools=known,
        proposal_id=proposal_id or f"turn_{turn}",
        capability=capability,
        budget=budget,
    )


def proposal_from_calls(
    calls: Sequence[ToolCall],
    *,
    tools: Iterable[ToolSchema] | Mapping[str, ToolSchema] = (),
    proposal_id: str,
    capability: str | None = None,
    budget: str | None = None,
) -> ActionProposal:
    """The proposal of well-formed calls (see `proposal_from_turn`)."""
    from .specs import tool_name_from_model

    known = _known(tools)
    names = [tool_name_from_model(call.name, known) for call in calls]
    parallel = bool(names) and all(n in known and known[n].read_only for n in names)
    actions = []
    for index, (call, name) in enumerate(zip(calls, names, strict=True)):
        depends = [] if parallel or index == 0 else [calls[index - 1].id]
        actions.append(
            Action(
                id=call.id,
                type=ActionType.TOOL_CALL,
                tool=name,
                parameters=dict(call.arguments or {}),
                depends_on=depends,
                metadata={"call_id": call.id},
                **_inherited(known.get(name)),
            )
        )
    return ActionProposal(
        id=proposal_id, source="model", actions=actions, capability=capability, budget=budget
    )


def _inherited(tool: ToolSchema | None) -> dict[str, Any]:
    """What a call inherits from its tool, as a program's actions do (`carlang.lower`): being
    idempotent, and its reversibility (a `read_only` tool's calls are reversible, nothing to
    undo, unless the tool says otherwise)."""
    if tool is None:
        return {}
    inherited: dict[str, Any] = {}
    if tool.idempotent:
        inherited["idempotent"] = True
    if tool.reversibility is not None:
        inherited["reversibility"] = tool.reversibility
    elif tool.read_only:
        inherited["reversibility"] = Reversibility.REVERSIBLE
    return inherited


def _known(tools: Any, capability: str | None = None) -> dict[str, ToolSchema]:
    """Tools by name: given as schemas, or a `Program` or `Runtime`'s (those `capability`
    allows)."""
    if isinstance(tools, Program) or isinstance(getattr(tools, "tools", None), Mapping):
        from .specs import visible_tools

        return {schema.name: schema for schema in visible_tools(tools, capability)}
    if isinstance(tools, Mapping):
        return dict(tools)
    return {t.name: t for t in tools}


# -- shapes: which format a turn is written in ------------------------------------------------


def turn_shapes(message: Any) -> list[Shape]:
    """The formats a turn's tool calls are written in, as far as its shape shows: one `Shape`
    per format seen, the most specific first (LangChain's `AIMessage` from Anthropic's chat
    model holds LangChain `tool_calls` and Anthropic `tool_use` blocks both, and either reads
    it right), and the shapes no format reads (`Shape.readable`). A turn of text alone shows
    none: every format reads it alike. Paths are in the turn as given (a wrapped message's
    under `choices[0].message`, `kwargs` or `data`)."""
    inner, prefix, problem = _unwrap(_plain(message))
    if problem is not None:
        return [problem]
    shapes = (find(inner) for find in _SHAPES)
    return [replace(s, path=(*prefix, *s.path)) for s in shapes if s is not None]


def misread(message: Any, format: str) -> Shape | None:
    """What shows that a turn is written in another format than `format`, when it shows
    some format and not that one, or that no format reads it; None when `format` reads it
    (or nothing shows)."""
    shapes = turn_shapes(message)
    unreadable = [shape for shape in shapes if not shape.readable]
    if unreadable:
        return unreadable[0]
    if not shapes or any(shape.format == format for shape in shapes):
        return None
    return shapes[0]


def assistant_message(message: Any) -> Any:
    """The assistant message a turn is, as plain data: a wrapper's message unwrapped (see
    `_unwrap`), anything else as `_plain` gives it."""
    inner, _, _ = _unwrap(_plain(message))
    return inner


#: what a turn is, for the errors of turns that are none
_A_TURN = (
    "a turn is the model's assistant message (an object), or a list of its Anthropic content"
    " blocks or Responses output items"
)
#: LangChain message types (`type`, or the class in `dumpd`'s `id`) that are not the model's
_NOT_THE_MODELS = frozenset({"human", "system", "tool", "chat", "developer"})
_NOT_THE_MODELS_FIX = (
    "not the assistant's: a turn is the model's own message; the user's request is the"
    " prompt, and tool results are carlang's to send"
)


def _unwrap(plain: Any) -> tuple[Any, tuple[str | int, ...], Shape | None]:
    """The assistant message a wrapper holds and where, when that is plain: a Chat
    Completions response of one choice (`choices[0].message`, as a Responses response is read
    through its `output`), a LangChain message serialized by `dumpd` (`kwargs`) or by
    `message_to_dict` (`data`). A wrapper that holds no one assistant message (choices to pick
    from, a streamed chunk, another class) is a `Shape` no format reads."""
    if not isinstance(plain, Mapping):
        return plain, (), None
    choices = plain.get("choices")
    if isinstance(choices, list):
        return _unwrap_choices(choices, plain.get("object"))
    if plain.get("lc") == 1 and "type" in plain:
        return _unwrap_dumpd(plain)
    data = plain.get("data")
    if plain.get("type") in ("ai", "AIMessageChunk") and isinstance(data, Mapping):
        if not {"content", "tool_calls"} & plain.keys():
            return data, ("data",), None
    return plain, (), None


def _unwrap_choices(
    choices: list[Any], kind: Any
) -> tuple[Any, tuple[str | int, ...], Shape | None]:
    """A Chat Completions response's one message (see `_unwrap`)."""
    first = _plain(choices[0]) if choices else None
    if kind == "chat.completion.chunk" or (isinstance(first, Mapping) and "delta" in first):
        shape = Shape(
            "chunk",
            "",
            ("choices",),
            kind="a streamed Chat Completions chunk",
            fix="a part of a message: give the whole message (choices[0].message of the"
            " response, or its chunks' deltas joined) as the turn",
        )
        return None, (), shape
    message = _plain(first.get("message")) if isinstance(first, Mapping) else None
    if len(choices) != 1 or not isinstance(message, Mapping):
        many = f"{len(choices)} choices" if len(choices) != 1 else "a choice without a message"
        shape = Shape(
            "choices",
            "",
            ("choices",),
            kind=f"a Chat Completions response with {many}",
            fix="not one assistant message: give the message of the choice to play"
            " (choices[N].message) as the turn",
        )
        return None, (), shape
    return message, ("choices", 0, "message"), None


def _unwrap_dumpd(plain: Mapping[str, Any]) -> tuple[Any, tuple[str | int, ...], Shape | None]:
    """A LangChain AIMessage serialized by `dumpd`: its `kwargs` (see `_unwrap`)."""
    ids = plain.get("id")
    name = ids[-1] if isinstance(ids, list) and ids and isinstance(ids[-1], str) else ""
    kwargs = plain.get("kwargs")
    if plain.get("type") == "constructor" and isinstance(kwargs, Mapping):
        if name in ("AIMessage", "AIMessageChunk"):
            return kwargs, ("kwargs",), None
        if name.removesuffix("Chunk").removesuffix("Message").lower() in _NOT_THE_MODELS:
            shape = Shape("role", "", ("id",), f"a LangChain {name}", _NOT_THE_MODELS_FIX)
            return None, (), shape
    shape = Shape(
        "lc",
        json.dumps(name or plain.get("type")),
        ("id",) if name else ("type",),
        kind="a LangChain serialized object that is not an AIMessage",
        fix="not a model's assistant turn: give the AIMessage the model answered"
        " (`dumpd(message)`, `message.model_dump()` or `message_to_dict(message)`)",
    )
    return None, (), shape


def _first(items: Any, test: Callable[[Mapping[str, Any]], bool]) -> int | None:
    """The index of the first object of a list that passes `test`; None for anything else."""
    if not isinstance(items, list | tuple):
        return None
    for index, item in enumerate(items):
        item = _plain(item)
        if isinstance(item, Mapping) and test(item):
            return index
    return None


def _langchain_shape(plain: Any) -> Shape | None:
    """LangChain: a `tool_calls` entry with `args` (no `function`), or an invalid call."""
    if not isinstance(plain, Mapping):
        return None
    index = _first(plain.get("tool_calls"), lambda c: "args" in c or c.get("type") == "tool_call")
    if index is not None:
        return Shape("langchain", "a LangChain tool call (`args`)", ("tool_calls", index))
    index = _first(plain.get("invalid_tool_calls"), lambda c: True)
    if index is not None:
        return Shape("langchain", "a LangChain invalid tool call", ("invalid_tool_calls", index))
    return None


def _openai_shape(plain: Any) -> Shape | None:
    """OpenAI chat: a `tool_calls` entry with a `function`."""
    if not isinstance(plain, Mapping):
        return None
    index = _first(plain.get("tool_calls"), lambda c: "function" in c)
    if index is None:
        return None
    return Shape("openai", "an OpenAI chat tool call (`function`)", ("tool_calls", index))


def _responses_shape(plain: Any) -> Shape | None:
    """OpenAI Responses: a `function_call` item (of the `output` list, of a list, or the
    turn itself)."""
    prefix: tuple[str | int, ...] | None = ()
    if isinstance(plain, Mapping) and "output" in plain:
        items, prefix = plain["output"], ("output",)
    elif isinstance(plain, Mapping):
        items, prefix = [plain], None
    else:
        items = plain
    index = _first(items, lambda item: item.get("type") == "function_call")
    if index is None:
        return None
    path = () if prefix is None else (*prefix, index)
    return Shape("openai-responses", "a Responses `function_call` item", path)


def _anthropic_shape(plain: Any) -> Shape | None:
    """Anthropic: a `tool_use` content block (of the message's content, or of a list)."""
    prefix: tuple[str | int, ...] = ("content",) if isinstance(plain, Mapping) else ()
    blocks = plain.get("content") if isinstance(plain, Mapping) else plain
    index = _first(blocks, lambda block: block.get("type") == "tool_use")
    if index is None:
        return None
    return Shape("anthropic", "a `tool_use` content block", (*prefix, index))


def _proposal_shape(plain: Any) -> Shape | None:
    """A CAR proposal (`actions` naming tools): a plan, not a model's turn, though a script
    may hold one by mistake."""
    if not isinstance(plain, Mapping):
        return None
    index = _first(plain.get("actions"), lambda a: "tool" in a or a.get("type") == "tool_call")
    if index is None:
        return None
    fix = (
        f"not a model's assistant turn: a turn is an assistant message in one of the formats"
        f" {', '.join(FORMATS)} (a proposal is checked with `carlang verify`)"
    )
    return Shape("car", "an action", ("actions", index), "a CAR proposal", fix)


def _no_object_shape(plain: Any) -> Shape | None:
    """A turn that is no object or list (a number, a string, null): no message at all."""
    if isinstance(plain, Mapping | list | tuple):
        return None
    kind = "null" if plain is None else with_article(json_type_name(plain))
    return Shape("value", "", (), kind, f"not a model's assistant turn: {_A_TURN}")


def _legacy_shape(plain: Any) -> Shape | None:
    """OpenAI's legacy `function_call` (before `tool_calls`): no format reads it, and read as
    `openai` the call would be lost. (An empty one, or null, as some servers send beside
    `tool_calls`, calls nothing.)"""
    call = _plain(plain.get("function_call")) if isinstance(plain, Mapping) else None
    if not isinstance(call, Mapping) or not call:
        return None
    return Shape(
        "function_call",
        "",
        ("function_call",),
        kind="a legacy OpenAI function call",
        fix='which carlang does not read: write the call in `tool_calls`, as `{"id": ...,'
        ' "type": "function", "function": {"name": ..., "arguments": ...}}`',
    )


def _lone_call_shape(plain: Any) -> Shape | None:
    """A tool call given alone as the turn (OpenAI's `{type: "function", function}`, an
    Anthropic `tool_use` block, a LangChain `{name, args}`), not in a message: read as a
    message, it holds no calls. (A Responses `function_call` item alone is a turn.)"""
    if not isinstance(plain, Mapping) or plain.get("type") == "function_call":
        return None
    if isinstance(plain.get("function"), Mapping):
        path = "function"
    elif isinstance(plain.get("name"), str) and {"arguments", "args", "input"} & plain.keys():
        path = "name"
    else:
        return None
    fix = (
        "not a turn: a turn is the assistant message that holds its calls (OpenAI's"
        " `tool_calls`, Anthropic's `content` blocks, LangChain's `tool_calls`)"
    )
    return Shape("call", "", (path,), "a tool call alone", fix)


def _role_shape(plain: Any) -> Shape | None:
    """A message that is not the assistant's: another `role` (of the turn, or of an item of a
    turn that is a list), or a LangChain message `type` such as `human`."""
    if isinstance(plain, Mapping):
        found: list[tuple[tuple[str | int, ...], Any]] = [((), plain)]
    elif isinstance(plain, list | tuple):
        found = [((index,), _plain(item)) for index, item in enumerate(plain)]
    else:
        return None
    for path, item in found:
        if not isinstance(item, Mapping):
            continue
        role, kind = item.get("role"), item.get("type")
        if isinstance(role, str) and role != "assistant":
            key, value = "role", role
        elif isinstance(kind, str) and kind in _NOT_THE_MODELS:
            key, value = "type", kind
        else:
            continue
        # (the value shown as JSON: what a model wrote reaches no terminal unescaped)
        name = f"the {value}" if value.isidentifier() and len(value) <= 20 else "another role"
        shown = f"`{json.dumps(key)}: {json.dumps(value)}`"
        return Shape("role", shown, (*path, key), f"a message from {name}", _NOT_THE_MODELS_FIX)
    return None


#: in the order `turn_shapes` lists them: those no format reads first (a turn that shows one
#: is an error whatever else it shows), then the most specific format first
_SHAPES: tuple[Callable[[Any], Shape | None], ...] = (
    _no_object_shape,
    _lone_call_shape,
    _role_shape,
    _legacy_shape,
    _proposal_shape,
    _langchain_shape,
    _openai_shape,
    _responses_shape,
    _anthropic_shape,
)


# -- readers: message -> (text, [(id, name, arguments)]) --------------------------------------

_RawCall = tuple[Any, Any, Any]


def _plain(message: Any) -> Any:
    """An SDK object as plain data (pydantic models, LangChain messages), else as is."""
    dump = getattr(message, "model_dump", None)
    if callable(dump) and not isinstance(message, Mapping):
        return dump()
    if isinstance(message, Mapping | list | tuple | str) or message is None:
        return message
    data = {
        key: getattr(message, key)
        for key in (
            "content",
            "tool_calls",
            "invalid_tool_calls",
            "output",
            "role",
            "function_call",
        )
        if hasattr(message, key)
    }
    return data or message


def _mapping(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise TurnError(f"{what} must be an object, not {type(value).__name__}")
    return value


def _listed(value: Any, what: str) -> list[Any]:
    """`value`, a list of `what` (none: absent or null); `TurnError` for anything else (an
    object's keys would be read as its items)."""
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        raise TurnError(f"{what} must be a list, not {json_kind(value)}")
    return list(value)


def _text_of(content: Any) -> str:
    """The text of a message's content: a string, or the text parts of a part list (none:
    absent or null); `TurnError` for anything else (a number was taken for no text)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, (list, tuple)):
        parts = []
        for part in content:
            part = _plain(part)
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, Mapping) and isinstance(part.get("text"), str):
                parts.append(part["text"])
        return "".join(parts)
    raise TurnError(
        f"a message's `content` must be text or a list of content parts, not {json_kind(content)}"
    )


def _read_openai(message: Any) -> tuple[str, list[_RawCall]]:
    message = _mapping(message, "an OpenAI chat assistant message")
    calls: list[_RawCall] = []
    for raw in _listed(message.get("tool_calls"), "an OpenAI message's `tool_calls`"):
        raw = _mapping(_plain(raw), "an OpenAI tool call")
        function = _mapping(_plain(raw.get("function") or {}), "an OpenAI tool call's function")
        calls.append((raw.get("id"), function.get("name"), _json_arguments(function)))
    return _text_of(message.get("content")), calls


def _read_responses(message: Any) -> tuple[str, list[_RawCall]]:
    if isinstance(message, Mapping) and "output" in message:
        items = message["output"]
    elif isinstance(message, Mapping):
        items = [message]
    else:
        items = message
    if not isinstance(items, list):
        raise TurnError("an OpenAI Responses turn is a response, its `output` list or one item")
    text, calls = [], []
    for item in items:
        item = _mapping(_plain(item), "an OpenAI Responses output item")
        kind = item.get("type")
        if kind == "function_call":
            calls.append((item.get("call_id"), item.get("name"), _json_arguments(item)))
        elif kind == "message":
            text.append(_text_of(item.get("content")))
    return "".join(text), calls


def _read_anthropic(message: Any) -> tuple[str, list[_RawCall]]:
    blocks = message.get("content") if isinstance(message, Mapping) else message
    if isinstance(blocks, str):
        return blocks, []
    if not isinstance(blocks, list):
        raise TurnError("an Anthropic turn is an assistant message or its list of content blocks")
    text, calls = [], []
    for block in blocks:
        block = _mapping(_plain(block), "an Anthropic content block")
        if block.get("type") == "tool_use":
            calls.append((block.get("id"), block.get("name"), _Object(block, "input")))
        elif block.get("type") == "text":
            text.append(str(block.get("text", "")))
    return "".join(text), calls


def _read_langchain(message: Any) -> tuple[str, list[_RawCall]]:
    message = _mapping(message, "a LangChain AIMessage")
    calls: list[_RawCall] = []
    for raw in _listed(message.get("tool_calls"), "a LangChain message's `tool_calls`"):
        raw = _mapping(_plain(raw), "a LangChain tool call")
        calls.append((raw.get("id"), raw.get("name"), _Object(raw, "args")))
    # calls LangChain could not parse (their `args` the model's text): each is a call the
    # model made, to be answered with its problem, never dropped
    for raw in _listed(
        message.get("invalid_tool_calls"), "a LangChain message's `invalid_tool_calls`"
    ):
        raw = _mapping(_plain(raw), "a LangChain invalid tool call")
        calls.append((raw.get("id"), raw.get("name"), _Invalid(raw.get("args"), raw.get("error"))))
    return _text_of(message.get("content")), calls


def _json_arguments(holder: Mapping[str, Any]) -> Any:
    """`arguments` as the model sent it: a JSON string (kept as text to parse later), or
    already an object (some compatible servers send one)."""
    return holder.get("arguments", "{}")


class _Object:
    """Arguments a format sends as an object (Anthropic's `input`, LangChain's `args`), never
    as JSON text: a string there is a mistake to report as such, not text to parse."""

    __slots__ = ("value", "field")

    def __init__(self, holder: Mapping[str, Any], field: str) -> None:
        self.value = holder.get(field, {})
        self.field = field


class _Invalid:
    """A call LangChain marked invalid (`invalid_tool_calls`): its `args` text and LangChain's
    `error`. Always a problem: the one its text has, else LangChain's."""

    __slots__ = ("args", "error")

    def __init__(self, args: Any, error: Any) -> None:
        self.args = args
        self.error = error

    def problem(self) -> str:
        if isinstance(self.args, str):
            _, problem = _arguments(self.args)
            if problem is not None:
                return problem
        said = f": {self.error}" if isinstance(self.error, str) and self.error else ""
        return f"LangChain could not read this call{said}"


def _arguments(raw: Any) -> tuple[dict[str, Any] | None, str | None]:
    """Parsed arguments, or the problem with them. Text is read as JSON is, no more: NaN,
    Infinity, numbers beyond a double and nesting past `NESTING_LIMIT` levels are not JSON
    (Python's decoder reads the first three, and recurses on the last). An object (an SDK's)
    is held to the same: a float NaN or infinity in it, or nesting too deep, is refused."""
    if isinstance(raw, _Invalid):
        return None, raw.problem()
    if isinstance(raw, _Object):
        if raw.value is not None and not isinstance(raw.value, Mapping):
            kind = with_article(json_type_name(raw.value))
            return None, f"`{raw.field}` must be a JSON object of arguments, not {kind}"
        raw = raw.value
    if isinstance(raw, str):
        if not raw.strip():
            return {}, None
        try:
            raw = parse_json(raw)
        except JsonTextError as exc:
            return None, f"arguments are not JSON: {_json_problem(exc)}"
    elif raw is not None:
        problem = _not_json(raw)
        if problem is not None:
            return None, f"arguments are not JSON: {problem}"
    if raw is None:
        return {}, None
    if not isinstance(raw, Mapping):
        return None, f"arguments must be a JSON object, not {with_article(json_type_name(raw))}"
    return dict(raw), None


def _json_problem(exc: JsonTextError) -> str:
    """What `parse_json` found wrong and where, as one phrase: `the constant NaN is not JSON
    at column 23`."""
    message = exc.message.removeprefix("malformed JSON: ")
    line, column = exc.position.line, exc.position.column
    return f"{message} at " + (f"column {column}" if line == 1 else f"line {line}, column {column}")


_READERS = {
    "openai": _read_openai,
    "openai-responses": _read_responses,
    "anthropic": _read_anthropic,
    "langchain": _read_langchain,
}
