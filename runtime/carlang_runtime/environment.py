"""The environment a program carlang starts gets: an allow-list, never carlang's own whole
environment, so that the host's credentials (an API key, the MCP proxy's own bearer token)
reach a subprocess tool or an MCP server only when a program names them.

A declared value may take one from carlang's environment by name, `${GITHUB_TOKEN}` (as the
MCP configurations of editors and agents write it): the program's text then holds the name,
never the secret."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import NamedTuple

__all__ = [
    "DEFAULT_INHERITED_ENV",
    "MCP_INHERITED_ENV",
    "Misreference",
    "expand_references",
    "misreferences",
    "references_written",
    "tool_environment",
]

#: The variables a subprocess tool gets from the runtime's environment unless told otherwise:
#: enough to find programs and speak the locale, never the host's credentials.
DEFAULT_INHERITED_ENV: tuple[str, ...] = (
    "PATH",
    "HOME",
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
    "SYSTEMROOT",
)

#: What an MCP server started as a subprocess gets: the tools' list, and what the official
#: MCP SDK's stdio client passes (`npx` and `uvx` need no more).
MCP_INHERITED_ENV: tuple[str, ...] = (*DEFAULT_INHERITED_ENV, "LOGNAME", "SHELL", "TERM", "USER")

_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NAME_CHARACTERS = re.compile(r"[A-Za-z0-9_]*")
#: A `$NAME` that reads as a variable meant: the name in capitals (`$SRV_TOKEN`, `$HOME`),
#: as environment variables are written; `$5`, `$name` and `$Foo` are text.
_CAPITALS = re.compile(r"[A-Z_][A-Z0-9_]*")


def tool_environment(
    env: Mapping[str, str] | None, inherit: Sequence[str] | None
) -> dict[str, str]:
    """A subprocess tool's environment: the variables named in `inherit` (default
    `DEFAULT_INHERITED_ENV`) taken from this process's environment, then `env` on top."""
    names = DEFAULT_INHERITED_ENV if inherit is None else tuple(inherit)
    environment = {name: os.environ[name] for name in names if name in os.environ}
    environment.update(env or {})
    return environment


def expand_references(
    values: Mapping[str, str], source: Mapping[str, str] | None = None
) -> tuple[dict[str, str], list[str], list[str]]:
    """`values` with each `${NAME}` replaced by NAME's value in `source` (default: this
    process's environment); the names referred to that `source` does not have (their
    references are left as written); and the values taken (secrets to keep out of what is
    shown, on their own as within the values: `Bearer ${TOKEN}`). Other text, a lone `$`
    included, is kept as it is."""
    source = os.environ if source is None else source
    unset: list[str] = []
    taken: list[str] = []

    def value_of(reference: re.Match[str]) -> str:
        name = reference.group(1)
        if name in source:
            taken.append(source[name])
            return source[name]
        unset.append(name)
        return reference.group()

    expanded = {key: _REFERENCE.sub(value_of, value) for key, value in values.items()}
    return expanded, list(dict.fromkeys(unset)), list(dict.fromkeys(taken))


class Misreference(NamedTuple):
    """A `$` form in a declared value that reads as a variable of carlang's environment meant
    but is not a reference carlang takes (it is sent as written): `written`, as it is in the
    value (`$SRV_TOKEN`, `${SRV_TOKEN`, `${ SRV_TOKEN }`, `${1BAD}`, `${}`); `fix`, the
    reference meant (`${SRV_TOKEN}`), or None when no variable's name can be read from it;
    `why`, what is wrong with it; `start`, where it is in the value."""

    written: str
    fix: str | None
    why: str
    start: int

    def message(self) -> str:
        """What a diagnostic says of it: `$SRV_TOKEN` is not a reference ...: write ..."""
        said = f"write `{self.fix}`" if self.fix is not None else self.why
        return f"`{self.written}` is not a reference carlang takes from the environment: {said}"

    def help(self) -> str:
        """What to do, and what happens as it is."""
        if self.fix is None:
            do = (
                "write the variable's name in braces, `${NAME}`: letters, digits and `_`, not"
                " starting with a digit"
            )
        else:
            do = self.why
        return f"{do}; as written, `{self.written}` is sent as it is, not a variable's value"


def misreferences(value: str) -> list[Misreference]:
    """The forms in `value` that look like a reference to a variable of carlang's environment
    but are not one (`expand_references` leaves them as written), in order:

    - any `${` that does not start a `${NAME}` (NAME: letters, digits and `_`, not starting
      with a digit): `${SRV_TOKEN` (not closed), `${ SRV_TOKEN }`, `${1BAD}`, `${}`,
      `${NAME:-default}` (no shell forms);
    - `$NAME` without braces where NAME, as far as letters, digits and `_` go, is written in
      capitals with at least one letter (`$SRV_TOKEN`, `$T`, `$HOME`; also `$SRV_TOKEN}`).

    Anything else with a `$` is text: `price $5`, `$name`, `$Foo`, a `$` alone, and a `$NAME`
    right after `$` or `\\` (`$$HOME`, `\\$HOME`: written so as to be taken literally)."""
    found: list[Misreference] = []
    at = value.find("$")
    while at >= 0:
        end = at + 1
        if value.startswith("${", at):
            if _REFERENCE.match(value, at):
                end = value.index("}", at) + 1
            else:
                problem = _bad_braces(value, at)
                found.append(problem)
                end = at + len(problem.written)
        elif at == 0 or value[at - 1] not in "$\\":
            name = _NAME_CHARACTERS.match(value, at + 1).group()  # type: ignore[union-attr]
            if _CAPITALS.fullmatch(name) and any(c.isalpha() for c in name):
                closed = value.startswith("}", at + 1 + len(name))  # (`$NAME}`: `{` left out)
                written = f"${name}" + ("}" if closed else "")
                why = "carlang takes a variable only in braces, `${NAME}`"
                found.append(Misreference(written, f"${{{name}}}", why, at))
                end = at + len(written)
        at = value.find("$", end)
    return found


def _bad_braces(value: str, at: int) -> Misreference:
    """The `${` at `at` that does not start a `${NAME}`: as far as it goes, and what is meant."""
    close = value.find("}", at + 2)
    again = value.find("${", at + 2)
    if close < 0 or 0 <= again < close:  # not closed: `${SRV_TOKEN`, `${A ${B}`
        lead = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)").match(value, at + 2)
        if lead is None:
            return Misreference("${", None, "it is not closed and names no variable", at)
        written = value[at : lead.end()]
        return Misreference(written, f"${{{lead.group(1)}}}", "its `{` is not closed", at)
    written = value[at : close + 1]
    inner = value[at + 2 : close]
    if not inner.strip():
        return Misreference(written, None, "it names no variable", at)
    if _NAME.fullmatch(inner.strip()):
        return Misreference(written, f"${{{inner.strip()}}}", "a reference has no spaces", at)
    if re.fullmatch(r"\s*[0-9][A-Za-z0-9_]*\s*", inner):
        why = "a variable's name does not start with a digit"
    else:
        why = "it takes `${NAME}` alone (no default, no other shell form)"
    return Misreference(written, None, why, at)


def references_written(value: str) -> list[str]:
    """Each `${...}` written in `value`, a reference or a malformed one (`${PW}`, `${PW`), in
    order: in a value that takes none (a url), they all say a variable was meant."""
    written: list[str] = []
    at = value.find("${")
    while at >= 0:
        reference = _REFERENCE.match(value, at)
        text = reference.group() if reference else _bad_braces(value, at).written
        written.append(text)
        at = value.find("${", at + len(text))
    return written
