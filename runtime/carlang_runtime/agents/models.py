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
from pathlib import Path
from typing import Any

from ..errors import CarlangRuntimeError
from ..jsontext import JsonTextError, parse_json
from ..redact import Scrubber, shown_url
from .turns import FORMATS

__all__ = ["GeneratorError", "OpenAIChatGenerator", "ScriptedGenerator"]


class GeneratorError(CarlangRuntimeError):
    """The model could not give a next message (the loop ends with status `error`)."""


class ScriptedGenerator:
    """Replays a list of assistant turns, one per call, in `format`; asking for more turns
    than the script has is an error."""

    def __init__(self, turns: Sequence[Any], format: str = "openai") -> None:
        if format not in FORMATS:
            raise CarlangRuntimeError(
                f"unknown tool-call format '{format}' (use one of {', '.join(FORMATS)})"
            )
        self.turns = list(turns)
        self.format = format
        self.requests: list[tuple[list[Any], list[dict[str, Any]]]] = []

    @classmethod
    def from_file(cls, path: str | Path, format: str | None = None) -> ScriptedGenerator:
        """A script from a JSON file: a list of turns, or `{"format": ..., "turns": [...]}`
        (`format` given here wins; the default is `openai`). It is read as JSON is: NaN,
        Infinity and nesting past 128 levels are not JSON."""
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
        if isinstance(data, Mapping):
            turns = data.get("turns")
            format = format or data.get("format")
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
        return cls(turns, format or "openai")

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


def _check_model_url(url: str) -> None:
    """`CarlangRuntimeError` for a base URL the client cannot ask: not http(s) with a host,
    or holding a user and password (urllib does not send them, and a message would show
    them: the API key goes in the environment)."""
    try:
        parts = urllib.parse.urlsplit(url)
        user = parts.username or parts.password
        host = parts.hostname if parts.port or parts.port is None else None
    except ValueError:  # a port that is not a number, a bracket left open
        parts, user, host = None, None, None
    shown = shown_url(url)
    if parts is None or parts.scheme not in ("http", "https") or not host:
        raise CarlangRuntimeError(
            f"the model URL {shown!r} is not an http:// or https:// URL with a host"
            " (like http://localhost:8000/v1)"
        )
    if user:
        raise CarlangRuntimeError(
            f"the model URL {shown} holds a user or password, which is never sent: give the"
            " API key in the environment (--api-key-env, $OPENAI_API_KEY by default)"
        )
