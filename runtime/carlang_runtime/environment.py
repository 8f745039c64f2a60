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

__all__ = [
    "DEFAULT_INHERITED_ENV",
    "MCP_INHERITED_ENV",
    "expand_references",
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
