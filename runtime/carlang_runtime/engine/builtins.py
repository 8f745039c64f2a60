"""A few real tools, off unless asked for (`builtin_tools(...)`, `carlang run --builtins`).

    echo(text)                          the text back
    read_file(path)                     a file's text          } confined to a root directory:
    write_file(path, content)           write a file's text    } no absolute paths, no `..`,
    list_dir(path=".")                  a directory's entries  } no symlinks out of it
    http_get(url, timeout_ms=10000)     GET a URL whose host is on an allow-list

Each refuses what it may not do with a clear `ToolError`, never by guessing.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .tools import ToolError

__all__ = ["builtin_tools", "BUILTIN_NAMES", "host_allowed"]

BUILTIN_NAMES = ("echo", "read_file", "write_file", "list_dir", "http_get")
_MAX_READ = 1_000_000
_MAX_BODY = 200_000


def host_allowed(host: str, allowed: Sequence[str]) -> bool:
    """Whether `host` is on the allow-list: equal to an entry, or under a `*.example.com`."""
    host = host.lower().rstrip(".")
    for entry in allowed:
        entry = entry.lower().rstrip(".")
        if entry.startswith("*."):
            if host.endswith(entry[1:]) and host != entry[2:]:
                return True
        elif host == entry:
            return True
    return False


def builtin_tools(
    files_root: str | Path, allow_hosts: Sequence[str] = ()
) -> dict[str, Callable[..., Any]]:
    """The built-in tools by name: file tools confined to `files_root`, `http_get` limited to
    `allow_hosts` (none: every URL is refused)."""
    root = Path(files_root).resolve()
    hosts = tuple(allow_hosts)

    def inside(path: str) -> Path:
        candidate = Path(path)
        if candidate.is_absolute():
            raise ToolError(f"path '{path}' is absolute; give a path inside the files root")
        resolved = (root / candidate).resolve()
        if resolved != root and root not in resolved.parents:
            raise ToolError(f"path '{path}' leaves the files root")
        return resolved

    def echo(text: str) -> str:
        """Return the text unchanged."""
        return text

    def read_file(path: str) -> str:
        """Read a UTF-8 text file inside the files root."""
        target = inside(path)
        if not target.is_file():
            raise ToolError(f"no file '{path}'")
        data = target.read_bytes()
        if len(data) > _MAX_READ:
            raise ToolError(f"file '{path}' is larger than {_MAX_READ} bytes")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise ToolError(f"file '{path}' is not UTF-8 text") from None

    def write_file(path: str, content: str) -> dict[str, Any]:
        """Write a UTF-8 text file inside the files root (directories are created)."""
        target = inside(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        data = content.encode("utf-8")
        target.write_bytes(data)
        return {"path": path, "bytes": len(data)}

    def list_dir(path: str = ".") -> list[str]:
        """The names in a directory inside the files root (directories end with /)."""
        target = inside(path)
        if not target.is_dir():
            raise ToolError(f"no directory '{path}'")
        return sorted(p.name + ("/" if p.is_dir() else "") for p in target.iterdir())

    def http_get(url: str, timeout_ms: int = 10_000) -> dict[str, Any]:
        """GET a URL (http or https) whose host is on the allow-list."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ToolError(f"'{url}' is not an http(s) URL")
        if not host_allowed(parts.hostname, hosts):
            raise ToolError(f"host '{parts.hostname}' is not on the allow-list (--allow-host)")
        request = urllib.request.Request(url, headers={"User-Agent": "carlang"})
        try:
            with urllib.request.urlopen(request, timeout=timeout_ms / 1000.0) as response:  # noqa: S310
                body = response.read(_MAX_BODY + 1)
                status = response.status
                content_type = response.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            return {"status": exc.code, "body": "", "truncated": False}
        except (urllib.error.URLError, OSError) as exc:
            raise ToolError(f"GET {url} failed: {exc}") from None
        truncated = len(body) > _MAX_BODY
        return {
            "status": status,
            "content_type": content_type,
            "body": body[:_MAX_BODY].decode("utf-8", "replace"),
            "truncated": truncated,
        }

    return {
        "echo": echo,
        "read_file": read_file,
        "write_file": write_file,
        "list_dir": list_dir,
        "http_get": http_get,
    }
