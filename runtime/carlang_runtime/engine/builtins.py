"""A few real tools, off unless asked for (`builtin_tools(...)`, `carlang run --builtins`).

    echo(text)                          the text back
    read_file(path)                     a file's text          } confined to a root directory:
    write_file(path, content)           write a file's text    } no absolute paths, no `..`,
    list_dir(path=".")                  a directory's entries  } no symlinks followed at all
    http_get(url, timeout_ms=10000)     GET a URL whose host is on an allow-list

Each refuses what it may not do with a clear `ToolError`, never by guessing. The file tools
walk their path one name at a time from a descriptor of the root, opening each with
`O_NOFOLLOW` relative to the one before: there is no moment between a check and a use in
which another process could swap a directory for a symlink out of the root.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from ..errors import CarlangRuntimeError
from .tools import ToolError

__all__ = ["builtin_tools", "BUILTIN_NAMES", "host_allowed", "is_host_name"]

BUILTIN_NAMES = ("echo", "read_file", "write_file", "list_dir", "http_get")
_MAX_READ = 1_000_000
_MAX_BODY = 200_000


_LABEL = r"[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?"
#: A host as a URL or a Host header names it: dot-separated labels of letters, digits, `-` and
#: `_` (a name, or an IPv4 address), or an IPv6 address in brackets.
_HOST_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?|\[[0-9a-f:.]*:[0-9a-f:.]*\]", re.IGNORECASE)


def is_host_name(text: str) -> bool:
    """Whether `text` is a host name or address as a URL holds it (`api.example.com`,
    `10.0.0.5`, `[::1]`): no scheme, port, path, space or user."""
    return _HOST_NAME.fullmatch(text) is not None


def _checked_hosts(allow_hosts: Sequence[str]) -> tuple[str, ...]:
    """`http_get`'s allow-list, each entry a host name, `*.` and a name, or an address (an
    IPv6 one with or without brackets); `CarlangRuntimeError` for one that never matches."""
    hosts = []
    for given in allow_hosts:
        entry = given.strip().rstrip(".")
        wildcard = entry.startswith("*.")
        bare = entry.removeprefix("*.")
        if ":" in bare and not bare.startswith("["):
            bare = f"[{bare}]"  # an IPv6 address as urlsplit gives it: without brackets
        # (`*.` goes before a name: an address has no hosts under it)
        if not is_host_name(bare) or (wildcard and (bare.startswith("[") or _is_ipv4(bare))):
            raise CarlangRuntimeError(
                f"--allow-host {given!r}: give a host name or address as a URL holds it,"
                " without scheme, port or path (like api.example.com, *.example.com,"
                " 10.0.0.5, ::1)"
            )
        hosts.append(entry.removeprefix("[").removesuffix("]"))
    return tuple(hosts)


def _is_ipv4(name: str) -> bool:
    """Whether `name` is written as an IPv4 address (four numbers)."""
    parts = name.split(".")
    return len(parts) == 4 and all(part.isdigit() for part in parts)


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
    `allow_hosts` (none: every URL is refused; `CarlangRuntimeError` for an entry that is no
    host name or address)."""
    root = Path(files_root).resolve()
    hosts = _checked_hosts(allow_hosts)

    def echo(text: str) -> str:
        """Return the text unchanged."""
        return text

    def read_file(path: str) -> str:
        """Read a UTF-8 text file inside the files root."""
        with _Confined(root, path) as place:
            descriptor = place.open_file(os.O_RDONLY | os.O_NONBLOCK)
            try:
                size = os.fstat(descriptor).st_size
                if size > _MAX_READ:  # checked before reading a byte
                    raise ToolError(f"file '{path}' is larger than {_MAX_READ} bytes")
                data = _read_all(descriptor, _MAX_READ + 1)
            finally:
                os.close(descriptor)
        if len(data) > _MAX_READ:
            raise ToolError(f"file '{path}' is larger than {_MAX_READ} bytes")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise ToolError(f"file '{path}' is not UTF-8 text") from None

    def write_file(path: str, content: str) -> dict[str, Any]:
        """Write a UTF-8 text file inside the files root (directories are created): a new
        file renamed over the name, never written through it (a hard link to a file outside
        the root stays as it was, and a reader never sees half a file)."""
        data = content.encode("utf-8")
        with _Confined(root, path, create=True) as place:
            place.replace_file(data)
        return {"path": path, "bytes": len(data)}

    def list_dir(path: str = ".") -> list[str]:
        """The names in a directory inside the files root (directories end with /)."""
        with _Confined(root, path, directory=True) as place:
            names = []
            for name in os.listdir(place.parent):
                info = os.stat(name, dir_fd=place.parent, follow_symlinks=False)
                names.append(name + ("/" if stat.S_ISDIR(info.st_mode) else ""))
        return sorted(names)

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


class _Confined:
    """A path inside a root, walked name by name from a descriptor of the root without
    following a symlink: `parent` is a descriptor of the directory holding the last name
    (of the directory itself with `directory=True`)."""

    def __init__(self, root: Path, path: str, *, create: bool = False, directory: bool = False):
        if Path(path).is_absolute():
            raise ToolError(f"path '{path}' is absolute; give a path inside the files root")
        parts = [part for part in path.replace("\\", "/").split("/") if part not in ("", ".")]
        if ".." in parts:  # (even one that stays inside: nothing is resolved by name)
            raise ToolError(
                f"path '{path}' holds '..': the file tools take no '..' (give the path from"
                " the files root without it)"
            )
        if not parts and not directory:
            raise ToolError(f"path '{path}' names no file")
        self.path = path
        self.root = root
        self.create = create
        self.names = parts if directory else parts[:-1]
        self.name = "" if directory else parts[-1]
        self.parent = -1

    def __enter__(self) -> _Confined:
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
        current = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for name in self.names:
                if self.create:
                    try:
                        os.mkdir(name, 0o755, dir_fd=current)
                    except FileExistsError:
                        pass
                following = self._open(name, flags, current)
                os.close(current)
                current = following
        except BaseException:
            os.close(current)
            raise
        self.parent = current
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self.parent >= 0:
            os.close(self.parent)

    def open_file(self, flags: int) -> int:
        """A descriptor of the last name, a regular file (opened without following) with no
        other name: a hard link may be a file from outside the files root."""
        descriptor = self._open(self.name, flags | os.O_NOFOLLOW, self.parent, 0o644)
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            os.close(descriptor)
            raise ToolError(f"'{self.path}' is not a regular file")
        if info.st_nlink > 1:
            os.close(descriptor)
            raise ToolError(_HARD_LINK.format(path=self.path))
        return descriptor

    def replace_file(self, data: bytes) -> None:
        """Put `data` at the last name: written to a new file beside it, then renamed over
        it. What is there must be a regular file, or nothing (a symlink or a directory is
        refused, as when reading)."""
        try:
            info = os.stat(self.name, dir_fd=self.parent, follow_symlinks=False)
        except FileNotFoundError:
            info = None
        if info is not None and stat.S_ISLNK(info.st_mode):
            raise ToolError(_SYMLINK.format(path=self.path))
        if info is not None and stat.S_ISDIR(info.st_mode):
            raise ToolError(f"'{self.path}' is a directory")
        if info is not None and not stat.S_ISREG(info.st_mode):
            raise ToolError(f"'{self.path}' is not a regular file")
        # (a short name of its own: the target's name may already be as long as names go)
        temporary = f".carlang-{os.urandom(8).hex()}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        # a new file gets the usual permissions (0644 less the umask); one replaced, its own
        descriptor = self._open(temporary, flags, self.parent, 0o600 if info else 0o644)
        try:
            try:
                if info is not None:
                    os.fchmod(descriptor, stat.S_IMODE(info.st_mode))
                view = memoryview(data)
                while view:
                    view = view[os.write(descriptor, view) :]
            finally:
                os.close(descriptor)
            os.rename(temporary, self.name, src_dir_fd=self.parent, dst_dir_fd=self.parent)
        except BaseException:
            try:
                os.unlink(temporary, dir_fd=self.parent)
            except OSError:
                pass
            raise

    def _open(self, name: str, flags: int, directory: int, mode: int = 0o777) -> int:
        try:
            return os.open(name, flags, mode, dir_fd=directory)
        except FileNotFoundError:
            raise ToolError(f"no file or directory '{self.path}'") from None
        except NotADirectoryError:
            if _is_symlink(name, directory):
                raise ToolError(_SYMLINK.format(path=self.path)) from None
            raise ToolError(
                f"'{self.path}' goes through something that is not a directory"
            ) from None
        except IsADirectoryError:
            raise ToolError(f"'{self.path}' is a directory") from None
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.EMLINK):
                raise ToolError(_SYMLINK.format(path=self.path)) from None
            raise ToolError(f"cannot open '{self.path}': {exc.strerror}") from None


_HARD_LINK = (
    "'{path}' has other names (hard links): it may be a file from outside the files root,"
    " which the file tools never read"
)
_SYMLINK = (
    "path '{path}' goes through a symlink, which the file tools never follow (it could lead"
    " out of the files root)"
)


def _is_symlink(name: str, directory: int) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=directory, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _read_all(descriptor: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    left = limit
    while left > 0:
        chunk = os.read(descriptor, min(left, 1 << 16))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
