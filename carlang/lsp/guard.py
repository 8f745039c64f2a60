"""The server's answer to its own bugs: every handler registered on the server runs inside one
guard, so that an unexpected exception neither takes the server down nor shows the user a
Python traceback.

A request that fails answers an LSP `InternalError` whose message says what failed and asks
for a report, with no `data` (pygls would put the traceback there); a notification that fails
answers nothing, as notifications do. Either way the failure is reported once (`Report`): the
user-facing text is one line, the traceback goes to the server's stderr log. Exceptions the
handlers raise on purpose (`JsonRpcException`: a refused rename) pass through untouched.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from typing import Any, Protocol, TypeVar, cast

from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcException

__all__ = ["Report", "internal_error_text", "log_traceback", "is_request", "guarded"]

logger = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])
#: How much of an exception's message the user sees (a repr of a whole AST is no help).
_MESSAGE_LIMIT = 200


class Report(Protocol):
    """Tells the user about a failure (`what` failed with `exc`); the text said."""

    def __call__(self, what: str, exc: Exception) -> str: ...


def internal_error_text(what: str, exc: Exception) -> str:
    """The one line the user sees: what failed, the exception's type and the first line of its
    message (no traceback), and a request to report it."""
    lines = str(exc).strip().splitlines()
    detail = lines[0] if lines else ""
    if len(detail) > _MESSAGE_LIMIT:
        detail = detail[: _MESSAGE_LIMIT - 3] + "..."
    name = type(exc).__name__
    described = f"{name}: {detail}" if detail else name
    return (
        f"internal error in carlang's language server: {what} failed with {described};"
        " please report it"
    )


def log_traceback(what: str, exc: Exception) -> None:
    """Put the whole traceback in the server's stderr log, where a bug report can copy it."""
    logger.error("%s failed", what, exc_info=exc)


def is_request(method: str) -> bool:
    """Whether the client waits for an answer to `method` (a method LSP does not define is
    taken for a request: the client is then told, rather than left waiting)."""
    types = lsp.METHOD_TO_TYPES.get(method)
    return types is None or types[1] is not None


def guarded(method: str, handler: F, report: Report) -> F:
    """`handler` (sync or async) with its unexpected exceptions reported and turned into an
    `InternalError` answer (a request) or into nothing (a notification)."""
    request = is_request(method)

    def failed(exc: Exception) -> None:
        text = report(method, exc)
        if request:
            # No `data`: pygls's own InternalError carries the traceback there.
            raise JsonRpcException(text, lsp.ErrorCodes.InternalError) from None

    if asyncio.iscoroutinefunction(handler):

        @functools.wraps(handler)
        async def guard_async(*args: Any, **kwargs: Any) -> Any:
            try:
                return await handler(*args, **kwargs)
            except JsonRpcException:
                raise
            except Exception as exc:  # noqa: BLE001 - the guard's whole point
                failed(exc)
                return None

        return cast(F, guard_async)

    @functools.wraps(handler)
    def guard(*args: Any, **kwargs: Any) -> Any:
        try:
            return handler(*args, **kwargs)
        except JsonRpcException:
            raise
        except Exception as exc:  # noqa: BLE001 - the guard's whole point
            failed(exc)
            return None

    return cast(F, guard)
