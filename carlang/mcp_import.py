"""`carlang mcp import`: an MCP server's tools as carlang declarations.

The server is started (or reached), its tools listed, and a .car file written: the
`mcp_server` and one tool per server tool, named `server.tool` (characters a name cannot hold
become `_`, with `remote "..."` keeping the server's name), with its description and its
input schema written out exactly (`schema {...}`), so the runtime's schema pinning compares
like with like. The annotations become `read_only` / `reversibility` only where that is sound,
and the file says they are the server's hints.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from carlang_runtime.ir import McpServer
from carlang_runtime.mcp import McpClient, McpError
from carlang_runtime.mcp.client import shown_json, written_out_credential
from carlang_runtime.redact import shown_url

from .fmt import format_source, format_value
from .project import ProjectError, find_project
from .source import Source

__all__ = [
    "import_server",
    "import_directory",
    "server_name_for",
    "is_server_name",
    "render_import",
    "local_tool_name",
    "renamed_tools",
    "tool_names",
    "malformed_tools",
    "unusable_tools",
]

_NOT_NAME = re.compile(r"[^A-Za-z0-9_]")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def is_server_name(text: str) -> bool:
    """Whether `text` can name an `mcp_server` (a carlang name: ASCII letters, digits and
    `_`, not starting with a digit; no `.`, which separates it from a tool's name)."""
    return _NAME.fullmatch(text) is not None


def server_name_for(
    command: Sequence[str] | None, url: str | None, info: Mapping[str, Any] | None = None
) -> str:
    """The default name of a server (`--name` chooses another): the name it gives itself
    (`info`, its initialize `serverInfo`) when that says something, else what its command
    runs or its URL's path, else `server`. Launchers and their options are passed over
    (`npx -y`, `uvx --from X`, `uv run`, `python -m`, `node`, `docker run -i --rm`...), an npm
    scope, a version and a file's extension are dropped, and so are `mcp` and `server` at
    either end: `npx -y @modelcontextprotocol/server-filesystem /tmp` -> `filesystem`,
    `python -m mcp_server_git` -> `git`, `node ~/weather-server/build/index.js` -> `weather`,
    `@playwright/mcp` -> `playwright`; a serverInfo `mcp-time` -> `time` (`FastMCP`, the SDK's
    default, says nothing). The result is a carlang name."""
    own = _name_of_server_info(info.get("name")) if info else None
    if own is None:
        own = _name_of_command(command) if command else _name_of_url(url)
    if own is None:
        return "server"
    return own if own[0].isalpha() or own[0] == "_" else "_" + own


#: `mcp` and `server` at either end of a name say nothing of what the server does.
_AFFIXES = frozenset({"mcp", "server", "servers", "modelcontextprotocol"})

#: Names (and path segments) that say nothing of what a server does, passed over for the
#: next one: an entry point's file, a build folder, an SDK's default server name.
_GENERIC = frozenset(
    {
        "", "app", "bin", "build", "cli", "default", "demo", "dist", "example", "examples",
        "fastmcp", "http", "index", "lib", "main", "node_modules", "out", "run", "sdk", "sse",
        "src", "start", "stdio", "streamable", "target", "test", "api", "stream", "v1", "v2",
    }
)  # fmt: skip

#: File extensions a server's entry point has.
_EXTENSIONS = re.compile(
    r"\.(js|mjs|cjs|ts|mts|py|pyz|jar|dll|exe|cmd|bat|ps1|sh|rb|php|pl|git)$", re.IGNORECASE
)

#: Programs that start another, with the subcommands they take before it and the options
#: that take a value (`--from X`): passed over to reach what they start.
_LAUNCHERS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    name: (frozenset(subs.split()), frozenset(values.split()))
    for name, subs, values in [
        ("npx", "", "-p --package -c --call --cache --registry --userconfig"),
        ("pnpx", "", "-p --package"),
        ("bunx", "", "-p --package"),
        ("npm", "exec x", "-p --package -w --workspace --prefix"),
        ("pnpm", "dlx exec", "--package -C --dir"),
        ("yarn", "dlx exec", "-p --package"),
        ("bun", "x run", "--cwd"),
        ("node", "", "-r --require --import --loader --experimental-loader"),
        ("nodejs", "", "-r --require --import --loader --experimental-loader"),
        ("deno", "run", "--config -c --import-map --env-file"),
        ("tsx", "", ""),
        ("ts-node", "", ""),
        (
            "uvx",
            "",
            "--from --with --with-editable --with-requirements --python -p --index"
            " --index-url --extra-index-url --directory --env-file",
        ),
        (
            "uv",
            "run tool",
            "--from --with --with-editable --with-requirements --python -p --index --index-url"
            " --extra-index-url --directory --project --package --env-file --extra --group",
        ),
        ("pipx", "run", "--spec --python --pip-args --index-url"),
        ("poetry", "run", "-C --directory -P --project"),
        ("hatch", "run", "-e --env"),
        ("pdm", "run", "-p --project"),
        ("pixi", "run", "-e --environment --manifest-path"),
        ("rye", "run", ""),
        ("conda", "run", "-n --name -p --prefix"),
        ("mamba", "run", "-n --name -p --prefix"),
        ("micromamba", "run", "-n --name -p --prefix"),
        (
            "docker",
            "run container",
            "-e --env --env-file -v --volume -p --publish --name --network --net -w --workdir"
            " -u --user --mount --entrypoint --platform -l --label -m --memory --cpus"
            " --add-host --pull --restart -h --hostname",
        ),
        (
            "podman",
            "run container",
            "-e --env --env-file -v --volume -p --publish --name --network --net -w --workdir"
            " -u --user --mount --entrypoint --platform -l --label -m --memory --cpus"
            " --add-host --pull --restart -h --hostname",
        ),
        ("java", "", "-cp -classpath --class-path"),
        ("dotnet", "run exec", "-c --configuration -f --framework"),
        ("go", "run", ""),
        ("env", "", "-u --unset -C --chdir"),
        ("cmd", "/c /k /s /q", ""),
        ("exec", "", ""),
        ("nohup", "", ""),
    ]
}

_PYTHON = re.compile(r"(python|pypy|py)(\d+(\.\d+)*)?[mtw]?")
_SHELLS = frozenset({"sh", "bash", "zsh", "dash", "fish"})


def _name_of_command(command: Sequence[str]) -> str | None:
    """The name of what `command` runs, launchers passed over (None: nothing that says)."""
    import shlex

    words = list(command)
    for _ in range(20):  # (each turn passes over one launcher)
        if not words:
            return None
        program = _EXTENSIONS.sub("", re.split(r"[/\\]", words[0])[-1].lower())
        rest = words[1:]
        if _PYTHON.fullmatch(program):
            return _name_of_python(rest)
        if program in _SHELLS and "-c" in rest[:-1]:
            try:
                words = shlex.split(rest[rest.index("-c") + 1])
            except ValueError:
                return None
            continue
        launcher = _LAUNCHERS.get(program)
        if launcher is None:
            if words[0].lower() in ("mcp-remote", "supergateway"):  # a bridge to a URL
                url = next((w for w in rest if "://" in w), None)
                return _name_of_url(url) if url else None
            return _name_of_word(words[0])
        words = _past_options(rest, *launcher)
        while words and "=" in words[0] and not words[0].startswith("-"):  # env NAME=value
            words = words[1:]
    return None


def _past_options(
    words: list[str], subcommands: frozenset[str], takes_value: frozenset[str]
) -> list[str]:
    """`words` from the first that is not a launcher's subcommand or option."""
    index = 0
    while index < len(words):
        word = words[index]
        if word == "--" or word.lower() in subcommands:
            index += 1
        elif word.startswith("-") and len(word) > 1:
            index += 2 if word in takes_value else 1
        else:
            break
    return words[index:]


def _name_of_python(words: list[str]) -> str | None:
    """What `python ARGS` runs: `-m module`, or a script (None: `-c`, or nothing)."""
    index = 0
    while index < len(words):
        word = words[index]
        if word == "-m" and index + 1 < len(words):
            return _name_of_word(words[index + 1].replace(".", "/"))
        if word.startswith("-m") and len(word) > 2:
            return _name_of_word(word[2:].replace(".", "/"))
        if word == "-c" or word.startswith("-c"):
            return None
        if word.startswith("-"):
            index += 2 if word in ("-W", "-X") else 1
            continue
        return _name_of_word(word)
    return None


def _name_of_word(word: str) -> str | None:
    """The name in a package, module, image or path: its last segment that says something
    (`@playwright/mcp` -> `playwright`, `build/index.js` -> the folder above), without a
    version, tag or extension."""
    text = re.sub(r"^(npm|jsr|pypi|docker|git\+\w+):(//)?", "", word)
    text = re.split(r"[=<>~!;\[]", text, maxsplit=1)[0]  # a Python requirement's version
    segments = [s for s in re.split(r"[/\\]", text) if s not in ("", ".", "..", "~")]
    if segments:
        last = segments[-1]
        if "@" in last[1:]:  # a version (`pkg@1.2`) or a digest
            last = last[0] + last[1:].split("@", 1)[0]
        segments[-1] = _EXTENSIONS.sub("", last.split(":", 1)[0])  # an image's tag
    for segment in reversed(segments):
        name = _plain(segment.lstrip("@"))
        if name is not None:
            return name
    return None


def _name_of_url(url: str | None) -> str | None:
    """The name in a server's URL: its path's last segment that says something
    (`/github/mcp` -> `github`), else its host unless it is this machine. Nothing else of the
    URL reaches the name: not its user or password, query, fragment or path parameters
    (`;token=...`), nor a segment that looks like a key (`/mcp/sk-ak-3f9a.../sse`)."""
    from urllib.parse import unquote, urlsplit

    if not url:
        return None
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
    except ValueError:  # (`http://[::1`: not a URL)
        return None
    for segment in reversed(parts.path.split("/")):
        segment = re.split(r"[;,=?#&@]", unquote(segment), maxsplit=1)[0]
        if _looks_like_a_key(segment):
            continue
        name = _plain(segment)
        if name is not None:
            return name
    if host in ("localhost", "127.0.0.1", "::1", "0.0.0.0") or re.fullmatch(r"[\d.]+", host):
        return None
    labels = [label for label in host.split(".")[:-1] if label not in ("www", "mcp", "api")]
    if not labels or _looks_like_a_key(labels[-1]):
        return None
    return _plain(labels[-1])


def _looks_like_a_key(text: str) -> bool:
    """Whether `text` holds what may be a credential or an id rather than a name: a run of
    letters and digits 8 long with 2 of each (`ABCDEF123`, a UUID's part), or 20 long."""
    for run in re.findall(r"[A-Za-z0-9]+", text):
        digits = sum(c.isdigit() for c in run)
        if len(run) >= 20 or (len(run) >= 8 and digits >= 2 and len(run) - digits >= 2):
            return True
        if len(run) >= 8 and digits == len(run):
            return True
    return False


def _name_of_server_info(name: Any) -> str | None:
    """The name a server gives itself, as a carlang name (None: it says nothing)."""
    if not isinstance(name, str):
        return None
    for segment in reversed(name.split("/")):
        plain = _plain(segment.lstrip("@"))
        if plain is not None:
            return plain
    return None


def _plain(text: str) -> str | None:
    """`text` as a lower-case carlang name, `mcp` and `server` off its ends; None when
    nothing is left that says something."""
    words = [w for w in re.split(r"[^a-z0-9]+", text.lower()) if w]
    while words and words[0] in _AFFIXES:
        words.pop(0)
    while words and words[-1] in _AFFIXES:
        words.pop()
    name = "_".join(words)
    return None if name in _GENERIC else name


def _plain_name(text: str) -> str:
    name = _NOT_NAME.sub("_", text).strip("_") or "server"
    return name if not name[0].isdigit() else "_" + name


def local_tool_name(server: str, remote: str, taken: set[str]) -> str:
    """`server.tool`, with the tool part made a name, unique among `taken`."""
    base = f"{server}.{_plain_name(remote)}"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    return name


def tool_names(
    server: str, tools: Sequence[Mapping[str, Any]], unusable: Mapping[str, str] | None = None
) -> list[tuple[Mapping[str, Any], str]]:
    """Each tool to import (those in `unusable` left out), sorted by its name, with its
    carlang name. A tool whose name is a carlang name keeps it exactly (`server.get_env`):
    those are given out first, so that a tool renamed because its name is not one
    (`get-env`) can never take the name of another (it gets `server.get_env_2`): a policy
    naming `server.get_env` means the server's `get_env`, whatever else it lists."""
    unusable = unusable or {}
    chosen = [t for t in sorted(tools, key=_remote) if _remote(t) not in unusable]
    names: list[str | None] = [None] * len(chosen)
    taken: set[str] = set()
    for index, tool in enumerate(chosen):
        exact = f"{server}.{_remote(tool)}"
        if _NAME.fullmatch(_remote(tool)) and exact not in taken:
            names[index] = exact
            taken.add(exact)
    for index, tool in enumerate(chosen):
        if names[index] is None:
            names[index] = local_tool_name(server, _remote(tool), taken)
    return [(tool, name) for tool, name in zip(chosen, names, strict=True) if name is not None]


def renamed_tools(
    server: str, tools: Sequence[Mapping[str, Any]], unusable: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The tools imported under another name than their own (it is not a carlang name):
    the server's name -> the carlang name (`get-env` -> `server.get_env_2`)."""
    return {
        _remote(tool): name
        for tool, name in tool_names(server, tools, unusable)
        if name != f"{server}.{_remote(tool)}"
    }


def _remote(tool: Mapping[str, Any]) -> str:
    """A tool's name on its server."""
    return str(tool.get("name", ""))


def import_directory(output: Path | None, started_in: Path | None = None) -> str:
    """The `cwd` an imported server is declared with: the directory it was started in for the
    import (`started_in`, default: the working directory), where it is known to work (a
    command or argument may name something there: `python server.py`, `python -m pkg`, a
    project file `uv run` or `npm` reads). A relative `cwd` is read from the folder of the
    file that declares it, so it is written relative to `output`'s folder when the directory
    is inside `output`'s project (as `carlang check` finds it: the two move together), with
    `/`; else absolute. Without `output` (the text goes to standard output), relative to the
    working directory: `.` when started there."""
    here = Path.cwd().resolve()
    started = (started_in or here).resolve()
    if output is None:
        return _relative(started, here)
    folder = output.resolve().parent
    try:
        root = find_project(folder, working=here).root
    except ProjectError:  # (an unreadable carlang.toml: `check` says so; the folder will do)
        root = folder
    if started.is_relative_to(root) or started.is_relative_to(folder):
        return _relative(started, folder)
    return str(started)


def _relative(path: Path, start: Path) -> str:
    """`path` relative to `start`, with `/` (the .car file works on any system), or absolute
    when there is no such path (another drive)."""
    try:
        return Path(os.path.relpath(path, start)).as_posix()
    except ValueError:
        return str(path)


def import_server(server: McpServer, timeout: float = 60.0) -> tuple[dict[str, Any], list[Any]]:
    """Start or reach the server and list its tools: (its serverInfo, every entry of its
    tools/list as sent: `malformed_tools` sorts out those that are not tools). Raises
    `McpError`, with what the server wrote on standard error (or, not JSON-RPC, on standard
    output), when it cannot be started, fails, or does not answer within `timeout`."""
    client = McpClient(server, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout  # one bound for starting and listing together
    try:
        client.start(timeout)
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        return client.server_info, client.listed_tools(left)
    except TimeoutError:
        from carlang_runtime.mcp.provider import what_to_check

        raise McpError(
            f"MCP server '{server.name}' did not answer within {timeout:g}s (--timeout):"
            f" {client.scrubbed(what_to_check(server))}{client.said()}"
        ) from None
    except McpError as exc:
        raise McpError(f"{exc}{client.said()}") from None
    finally:
        client.close()


def render_import(
    server: McpServer,
    info: dict[str, Any],
    tools: list[dict[str, Any]],
    unusable: Mapping[str, str] | None = None,
    malformed: Sequence[str] = (),
) -> str:
    """The .car text declaring `server` and its `tools`, formatted as `carlang fmt` writes it;
    the tools in `unusable` (`unusable_tools`, found here when not given) are left out, each
    with a comment saying why, and so are the `malformed` entries of its list (what
    `malformed_tools` says of each)."""
    # (what the server says of itself goes into a comment: one line, nothing that ends it)
    said = [x for x in (info.get("name"), info.get("version")) if isinstance(x, str)]
    label = " ".join(_one_line(x) for x in said if x.strip()) or server.name
    lines = [
        f"# MCP server `{server.name}` ({label}), imported by `carlang mcp import`.",
        "# read_only and reversibility below come from the server's annotations:",
        "# they are its hints, not verified. Review them before relying on them.",
    ]
    if server.url is not None and shown_url(server.url) != server.url:
        lines += [
            "# Its url holds a credential (a password or a key in the query): keep this file",
            "# out of version control, or import it again with the credential left out.",
        ]
    if any(written_out_credential(name, value) for name, value in server.headers.items()):
        lines += [
            "# Its headers hold a credential written out: keep this file out of version",
            "# control, or import it again with the value taken from a variable",
            "# (--header 'Authorization: Bearer ${TOKEN}', in single quotes).",
        ]
    lines += ["", f"mcp_server {server.name} {{"]
    if server.url is not None:
        lines.append(f"  url {format_value(server.url)}")
        if server.headers:  # (as declared: a `${VAR}` stays a reference, never its value)
            lines.append(f"  headers {format_value(dict(server.headers))}")
    else:
        lines.append(f"  command {format_value(server.command)}")
        if server.args:
            lines.append(f"  args {format_value(list(server.args))}")
        if server.env:
            lines.append(f"  env {format_value(dict(server.env))}")
        if server.cwd:
            lines.append(f"  cwd {format_value(server.cwd)}")
    lines.append("}")
    for problem in malformed:
        lines.extend(["", f"# not imported: {_one_line(problem, None)}"])
    if unusable is None:
        unusable = unusable_tools(tools)
    names = {id(tool): name for tool, name in tool_names(server.name, tools, unusable)}
    for tool in sorted(tools, key=_remote):
        remote = _remote(tool)
        if remote in unusable:  # a declaration `carlang check` refuses: left out, said why
            why = f"`{_one_line(remote)}`: {_one_line(unusable[remote], None)}"
            lines.extend(["", f"# not imported: {why}"])
            continue
        name = names[id(tool)]
        lines.append("")
        if name != f"{server.name}.{remote}":
            lines.append(f"# renamed: the server's `{_one_line(remote)}` is not a carlang name")
        lines.append(f"tool {name}() {{")
        description = _text(tool.get("description")) or _text(tool.get("title"))
        if description:
            lines.append(f"  description {format_value(description)}")
        annotations = tool.get("annotations")
        hints = _hint_items(annotations) if isinstance(annotations, dict) else []
        lines.extend("  " + item for item in hints)
        if name != f"{server.name}.{remote}":
            lines.append(f"  remote {format_value(remote)}")
        lines.append(f"  schema {format_value(_input_schema(tool))}")
        lines.append("}")
    text = "\n".join(lines) + "\n"
    return format_source(Source("import.car", text))


def _text(value: Any) -> str:
    """A tool's description (or title) as the server sent it, stripped: "" when it is not
    text (a server may send anything)."""
    return value.strip() if isinstance(value, str) else ""


def malformed_tools(entries: Sequence[Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """The entries of a server's tools/list that are tools (objects with a string `name`),
    and what is wrong with each other one (`tools/list entry 2: ...`): those cannot be
    named, so they cannot be imported."""
    tools: list[dict[str, Any]] = []
    problems: list[str] = []
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict):
            problems.append(
                f"tools/list entry {number}: it is not a tool (an object) but"
                f" {shown_json(entry, 80)}"
            )
        elif not isinstance(entry.get("name"), str):
            name = entry.get("name")
            has = (
                "no `name`"
                if name is None
                else f"a `name` that is not text ({shown_json(name, 80)})"
            )
            problems.append(f"tools/list entry {number}: it has {has}: {shown_json(entry, 80)}")
        else:
            tools.append(entry)
    return tools, problems


def _one_line(text: str, limit: int | None = 80) -> str:
    """`text` as one line of printable characters (at most `limit`): nothing of it can end
    a comment and start a declaration."""
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())[:limit]


def unusable_tools(tools: list[dict[str, Any]]) -> dict[str, str]:
    """The server's tools carlang cannot call: name -> the problem. One whose input schema
    carlang cannot check calls against (MCP asks for an object JSON Schema; some servers
    publish other things), and one that must be called as a task (`execution.taskSupport:
    "required"`, MCP 2025-11-25: a plain `tools/call` of it is refused), which carlang does
    not do."""
    from .lower import schema_problem

    unusable = {}
    for tool in tools:
        problem = _number_problem(_input_schema(tool)) or schema_problem(_input_schema(tool))
        if problem is not None:
            unusable[str(tool.get("name", ""))] = f"its input schema is not usable: {problem}"
        elif _task_required(tool):
            unusable[str(tool.get("name", ""))] = (
                "it must be called as a task (execution.taskSupport: required), which carlang"
                " does not do: a call of it would be refused"
            )
    return unusable


def _number_problem(value: Any, path: str = "") -> str | None:
    """What in a schema carlang cannot write (a .car number is JSON's, in 64 bits): an integer
    outside -2^63..2^64-1 or a number that is not finite, with where it is; or None."""
    where = f" at {path}" if path else ""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        if -(2**63) <= value < 2**64:
            return None
        digits = str(value)
        shown = digits if len(digits) <= 30 else f"{digits[:12]}...{digits[-6:]}"
        return f"the integer {shown}{where} is out of range (carlang's integers fit in 64 bits)"
    if isinstance(value, float):
        return None if math.isfinite(value) else f"the number {value}{where} is not finite"
    if isinstance(value, Mapping):
        items: Iterable[tuple[Any, Any]] = value.items()
    elif isinstance(value, list | tuple):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        if isinstance(key, int):
            step = f"[{key}]"
        else:  # ("" is a property's name JSON Schema allows)
            text = _one_line(str(key), 40) or '""'
            step = f".{text}" if path else text
        found = _number_problem(item, path + step)
        if found is not None:
            return found
    return None


def _task_required(tool: Mapping[str, Any]) -> bool:
    """Whether the server says a tool can only be called as a task."""
    execution = tool.get("execution")
    return isinstance(execution, Mapping) and execution.get("taskSupport") == "required"


def _input_schema(tool: dict[str, Any]) -> Any:
    return tool.get("inputSchema") or {"type": "object"}


def _hint_items(annotations: dict[str, Any]) -> list[str]:
    """carlang items for the hints that say something sound: a read-only tool changes nothing
    (reversible; calls of one turn may run in parallel); a destructive one cannot be undone.
    `idempotentHint` is not mapped: MCP means "no further effect", while carlang's `idempotent`
    lets the runtime answer a repeated call from its first result (a clock would stop)."""
    items = []
    read_only = annotations.get("readOnlyHint") is True
    if read_only:
        items.extend(["read_only", "reversibility reversible"])
    elif annotations.get("destructiveHint") is True:
        items.append("reversibility irreversible")
    return items
