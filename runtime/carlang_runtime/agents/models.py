"""Model generators for `AgentLoop`: the next assistant message from the history and tools.

`ScriptedGenerator` replays recorded assistant turns (tests, demos); `OpenAIChatGenerator`
asks any server that speaks OpenAI's chat-completions API (stdlib HTTP, no SDK).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CarlangRuntimeError
from ..jsontext import JsonTextError, locate, parse_json
from ..redact import Scrubber, shown_url
from .turns import FORMATS, Shape, TurnError, parse_turn, turn_shapes

__all__ = ["GeneratorError", "OpenAIChatGenerator", "ScriptedGenerator"]


class GeneratorError(CarlangRuntimeError):
    """The model could not give a next message (the loop ends with status `error`)."""


class ScriptedGenerator:
    """Replays a list of assistant turns, one per call, in `format`: given, else the one its
    turns' tool calls are written in (`turn_shapes`), else `openai` (turns of text alone read
    alike in every format). A turn written in another format, one that no format reads (see
    `turn_shapes`) or one the format cannot read (not an object, say) is an error here,
    before any turn is played: read anyway, its calls would be lost and the loop would end on
    it as if the model had answered in text, or fail halfway. Asking for more turns than the
    script has is an error."""

    def __init__(self, turns: Sequence[Any], format: str | None = None) -> None:
        _check_format(format)
        self.turns = list(turns)
        chosen, problem = _script_format(self.turns, format)
        if problem is not None:
            raise CarlangRuntimeError(problem.message(None, "format={!r}"))
        self.format = chosen
        self.requests: list[tuple[list[Any], list[dict[str, Any]]]] = []

    @classmethod
    def from_file(cls, path: str | Path, format: str | None = None) -> ScriptedGenerator:
        """A script from a JSON file: a list of turns, or `{"format": ..., "turns": [...]}`.
        Its format is `format` given here, else the file's, else the one its turns are
        written in, else `openai`; a turn in another is an error at its line and column. It
        is read as JSON is: NaN, Infinity and nesting past 128 levels are not JSON."""
        try:
            text = Path(path).read_bytes()
        except OSError as exc:
            raise CarlangRuntimeError(f"{path}: cannot read the script: {exc.strerror}") from exc
        try:
            data = parse_json(text)
        except JsonTextError as exc:
            where = f"{exc.position.line}:{exc.position.column}"
            message = exc.message.removeprefix("malformed JSON: ")
            raise CarlangRuntimeError(
                f"{path}:{where}: the script is not JSON: {message}"
            ) from None
        prefix: list[str | int] = []
        source = None
        if isinstance(data, Mapping):
            turns, prefix = data.get("turns"), ["turns"]
            if format is None and data.get("format") is not None:
                format, source = data["format"], 'the script\'s "format"'
                at = locate(text.decode("utf-8"), ["format"])
                _check_format(format, f"{path}:{at.line}:{at.column}: ")
        else:
            turns = data
        if not isinstance(turns, list):
            raise CarlangRuntimeError(
                f"{path}: a script is a list of assistant turns,"
                ' or {"format": ..., "turns": [...]}'
            )
        if not turns:
            raise CarlangRuntimeError(
                f"{path}: the script has no turns (the last one, without tool calls, is the"
                " final answer)"
            )
        chosen, problem = _script_format(turns, format)
        if problem is not None:
            at = locate(text.decode("utf-8"), [*prefix, problem.index, *problem.path])
            raise CarlangRuntimeError(
                f"{path}:{at.line}:{at.column}: {problem.message(source, '--turn-format {}')}"
            )
        return cls(turns, chosen)

    def generate(self, messages: Sequence[Any], tools: Sequence[Mapping[str, Any]]) -> Any:
        """The next scripted turn."""
        self.requests.append((list(messages), [dict(t) for t in tools]))
        index = len(self.requests) - 1
        if index >= len(self.turns):
            raise GeneratorError(f"the script has no turn {index + 1} (it has {len(self.turns)})")
        return self.turns[index]


class OpenAIChatGenerator:
    """A client of an OpenAI-compatible `POST {base_url}/chat/completions` (temperature 0,
    the whole history, the tools); the reply's first choice's message is the next turn."""

    format = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout: float = 120.0,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        _check_model_url(base_url)
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.api_key = api_key
        self.timeout = timeout
        self.options = dict(options or {})

    def generate(self, messages: Sequence[Any], tools: Sequence[Mapping[str, Any]]) -> Any:
        """Ask the server for the next assistant message."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": list(messages),
            "temperature": 0,
            **self.options,
        }
        if tools:
            body["tools"] = list(tools)
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(
            self.url, data=json.dumps(body).encode(), headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                answer = response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read(65536).decode("utf-8", "replace")
            if self.api_key:  # a server that echoes the request must not print the key
                detail = Scrubber([self.api_key]).text(detail)  # (before the cut: a key cut
            detail = detail[:500]  # in two would be found by neither half)
            raise GeneratorError(f"{shown_url(self.url)} answered {exc.code}: {detail}") from exc
        except (urllib.error.URLError, OSError, ValueError) as exc:  # (http.client's
            # InvalidURL is a ValueError)
            reason = getattr(exc, "reason", exc)
            raise GeneratorError(f"cannot reach {shown_url(self.url)}: {reason}") from exc
        try:  # as JSON is read: nesting past 128 levels is refused, not a RecursionError
            reply: Any = parse_json(answer)
        except JsonTextError as exc:
            message = exc.message.removeprefix("malformed JSON: ")
            raise GeneratorError(f"{shown_url(self.url)} did not answer JSON: {message}") from None
        try:
            return reply["choices"][0]["message"]
        except (KeyError, IndexError, TypeError) as exc:
            raise GeneratorError(f"{self.url} answered no choices[0].message") from exc


def _check_format(format: Any, where: str = "") -> None:
    """`CarlangRuntimeError` unless `format` is None (to be found) or one of `FORMATS`."""
    if format is not None and format not in FORMATS:
        shown = f"'{format}'" if isinstance(format, str) else json.dumps(format)
        raise CarlangRuntimeError(
            f"{where}unknown tool-call format {shown} (use one of {', '.join(FORMATS)})"
        )


@dataclass(frozen=True)
class _Misread:
    """A turn of a script that the script's format does not read: its index (from 0), what
    shows its own format, the script's format and, when that format was found rather than
    given, the index of the turn it was found in."""

    index: int
    shape: Shape
    format: str
    found_in: int | None = None

    @property
    def path(self) -> tuple[str | int, ...]:
        """Where in the turn the problem shows."""
        return self.shape.path

    def message(self, source: str | None, give: str) -> str:
        """What is wrong and how to put it right: `give` is how a format is given
        (`--turn-format {}`, a `str.format` template), `source` where the script's format
        came from when not from there (`the script's "format"`)."""
        turn = f"turn {self.index + 1}"
        if not self.shape.readable:  # (no format reads it: no format to suggest)
            return f"{turn} is {self.shape.refusal()}"
        if self.found_in is not None:
            return (
                f"{turn} is {self.shape.named()}, but turn {self.found_in + 1} is in the"
                f" {self.format} format: a script's turns are all in one format"
            )
        fix = "give " + give.format(self.shape.format)
        if source is not None:
            fix = f"correct {source}, or {fix}"
        return (
            f"{turn} is {self.shape.named()}; read as {self.format}"
            f" ({source or give.format(self.format)}), its tool calls would be lost ({fix})"
        )


@dataclass(frozen=True)
class _Unreadable:
    """A turn of a script that its format cannot read (`TurnError`): its index (from 0),
    the format and the reader's problem."""

    index: int
    format: str
    problem: str
    path: tuple[str | int, ...] = ()

    def message(self, source: str | None, give: str) -> str:
        """What is wrong (`source` and `give` as `_Misread.message` takes them)."""
        return f"turn {self.index + 1} cannot be read as {self.format}: {self.problem}"


def _script_format(
    turns: Sequence[Any], format: str | None
) -> tuple[str, _Misread | _Unreadable | None]:
    """The format of a script's turns: `format` when given, else that of the first turn
    that shows one (`turn_shapes`), else `openai`; and the first turn that is wrong: one
    that no format reads, one that format does not read (it shows another), or one whose
    reading fails (`parse_turn`), or None. Every turn is checked, before any is played."""
    found_in: int | None = None
    for index, turn in enumerate(turns):
        shapes = turn_shapes(turn)
        unreadable = [shape for shape in shapes if not shape.readable]
        if unreadable:
            return format or "openai", _Misread(index, unreadable[0], format or "openai")
        if not shapes:
            continue
        if format is None:
            format, found_in = shapes[0].format, index
        elif all(shape.format != format for shape in shapes):
            return format, _Misread(index, shapes[0], format, found_in)
    chosen = format or "openai"
    for index, turn in enumerate(turns):
        try:
            parse_turn(turn, chosen, turn=index + 1)
        except TurnError as exc:
            return chosen, _Unreadable(index, chosen, str(exc))
    return chosen, None


def _check_model_url(url: str) -> None:
    """`CarlangRuntimeError` for a base URL the client cannot ask: not http(s) with a host,
    or holding a user and password (urllib does not send them, and a message would show
    them: the API key goes in the environment)."""
    shown = shown_url(url)
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname
    except ValueError:  # a bracket left open
        parts, host = None, None
    if parts is None or parts.scheme not in ("http", "https") or not host:
        raise CarlangRuntimeError(
            f"the model URL {shown!r} is not an http:// or https:// URL with a host"
            " (like http://localhost:8000/v1)"
        )
    try:
        port = parts.port
    except ValueError:  # not a number, or past 65535
        port = 0
    if port == 0:
        raise CarlangRuntimeError(
            f"the model URL {shown!r} has no valid port: give a number from 1 to 65535"
            " (like http://localhost:8000/v1)"
        )
    user = parts.username or parts.password
    if user:
        raise CarlangRuntimeError(
            f"the model URL {shown} holds a user or password, which is never sent: give the"
            " API key in the environment (--api-key-env, $OPENAI_API_KEY by default)"
        )
