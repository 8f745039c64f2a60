"""`carlang repl`: CEL expressions evaluated one per line in a policy's context, with the
context changed by commands (`:tool`, `:params`, `:state`, `:scope`, `:history`), completion
of variables, fields and functions, and a history file (readline, when the input is a
terminal)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TextIO

from carlang_runtime import ir
from carlang_runtime.cel.functions import FUNCTIONS
from carlang_runtime.errors import CarlangRuntimeError

from .evaluate import (
    EvalContext,
    EvalOutcome,
    eval_context,
    evaluate,
    parse_history,
    parse_json_object,
)

__all__ = ["Repl", "COMMANDS", "render_outcome"]

COMMANDS = {
    ":tool": ":tool NAME         decide a call of this tool (`:tool` alone: any action)",
    ":params": ":params JSON       the call's parameters (over the tool's defaults)",
    ":state": ":state JSON        the state (over the program's initial state)",
    ":scope": ":scope JSON        the run's scope (`scope.tenant`, ...)",
    ":history": ":history JSON      the run's earlier actions, a JSON array of entries",
    ":vars": ":vars              the variables and their types",
    ":tools": ":tools             the program's tools",
    ":help": ":help              this list",
    ":quit": ":quit              leave (or end of input)",
}


def render_outcome(outcome: EvalOutcome) -> str:
    """`value : type`, or the errors; warnings after."""
    lines = (
        [f"{outcome.shown} : {outcome.type}"]
        if outcome.ok
        else [f"error: {e}" for e in outcome.errors]
    )
    lines += [f"warning: {w}" for w in outcome.warnings]
    return "\n".join(lines)


class Repl:
    """The loop's state: the program and the current context."""

    def __init__(self, program: ir.Program, tool: str | None = None) -> None:
        self.program = program
        self.tool = tool
        self.params: dict[str, Any] = {}
        self.state: dict[str, Any] = {}
        self.scope: dict[str, Any] = {}
        self.history: list[dict[str, Any]] = []
        self.context: EvalContext = eval_context(program, tool)

    def _rebuild(self) -> None:
        self.context = eval_context(
            self.program, self.tool, self.params, self.state, self.scope, self.history
        )

    def handle(self, line: str) -> str | None:
        """The answer to one line (None: quit)."""
        line = line.strip()
        if not line or line.startswith("#"):
            return ""
        if not line.startswith(":"):
            return render_outcome(evaluate(self.context, line))
        command, _, rest = line.partition(" ")
        rest = rest.strip()
        try:
            return self._command(command, rest)
        except CarlangRuntimeError as exc:
            return f"error: {exc}"

    def _command(self, command: str, rest: str) -> str | None:
        if command in (":quit", ":q", ":exit"):
            return None
        if command == ":help":
            return "\n".join(COMMANDS.values())
        if command == ":tools":
            return "\n".join(t.name for t in self.program.tools) or "(no tools)"
        if command == ":vars":
            return "\n".join(
                f"{name}: {kind}" for name, kind in self.context.declarations.variables.items()
            )
        if command == ":tool":
            previous = self.tool
            self.tool = rest or None
            try:
                self._rebuild()
            except CarlangRuntimeError:
                self.tool = previous
                raise
            return f"deciding a call of `{self.tool}`" if self.tool else "deciding any action"
        if command in (":params", ":state", ":scope", ":history"):
            name = command[1:]
            value: Any = (
                parse_history(rest or "[]", name)
                if name == "history"
                else parse_json_object(rest or "{}", name)
            )
            previous = getattr(self, name)
            setattr(self, name, value)
            try:
                self._rebuild()
            except CarlangRuntimeError:
                setattr(self, name, previous)  # a refused value leaves the context as it was
                raise
            # (params and state as a policy sees them: over the defaults and initial state)
            shown = getattr(self.context, name) if name in ("params", "state") else value
            return f"{name} = {json.dumps(shown)}"
        return f"error: unknown command `{command}` (:help lists them)"

    def completions(self, text: str) -> list[str]:
        """Completions of the word being written: commands, variables, fields, functions."""
        if text.startswith(":"):
            return [c for c in COMMANDS if c.startswith(text)]
        if text.startswith(":tool "):
            return []
        member = re.fullmatch(r"(.*)\.(\w*)", text)
        if member is not None:
            subject, prefix = member.groups()
            fields = self._fields(subject)
            methods = [n for n, f in FUNCTIONS.items() if any(o.receiver for o in f.overloads)]
            return [f"{subject}.{n}" for n in sorted({*fields, *methods}) if n.startswith(prefix)]
        functions = [
            n for n, f in FUNCTIONS.items() if f.named and any(not o.receiver for o in f.overloads)
        ]
        names = [*self.context.declarations.variables, *functions]
        return sorted(n for n in names if n.startswith(text))

    def _fields(self, subject: str) -> Iterable[str]:
        from carlang_runtime.cel import CelSyntaxError
        from carlang_runtime.cel.checker import check

        try:
            kind = check(subject, self.context.declarations).type
        except CelSyntaxError:
            return ()
        return kind.fields or ()

    def loop(self, read: Callable[[str], str], write: Callable[[str], None]) -> None:
        """Read lines until `:quit` or the end of input."""
        while True:
            try:
                line = read("cel> ")
            except EOFError:
                return
            except KeyboardInterrupt:
                write("")
                continue
            answer = self.handle(line)
            if answer is None:
                return
            if answer:
                write(answer)


def interactive(repl: Repl, history: Path | None) -> None:
    """Run the loop on the terminal with readline: history and tab completion."""
    import readline

    if history is not None:
        try:
            readline.read_history_file(history)
        except OSError:
            pass
    readline.set_completer_delims(" \t\n()[]{},!=<>&|+-*/%?:")
    matches: list[str] = []

    def complete(text: str, state: int) -> str | None:
        nonlocal matches
        if state == 0:
            buffer = readline.get_line_buffer()
            start = readline.get_begidx()
            word = buffer[:start].rsplit(" ", 1)[-1] + text if buffer.startswith(":") else text
            matches = repl.completions(word if word.startswith(":") else text)
        return matches[state] if state < len(matches) else None

    readline.set_completer(complete)
    readline.parse_and_bind("tab: complete")
    try:
        repl.loop(input, print)
    finally:
        if history is not None:
            try:
                readline.write_history_file(history)
            except OSError:
                pass


def piped(repl: Repl, stream: TextIO, write: Callable[[str], None]) -> None:
    """Run the loop over lines that are not from a terminal (no prompt)."""
    lines = iter(stream)

    def read(_prompt: str) -> str:
        try:
            return next(lines)
        except StopIteration:
            raise EOFError from None

    repl.loop(read, write)
