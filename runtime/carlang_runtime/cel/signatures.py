"""The signatures of CEL functions: what the code generator, the checker and the cost estimate
read about each function, standard or extension."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Overload", "Function", "global_overload", "method_overload"]


@dataclass(frozen=True, slots=True)
class Overload:
    """One signature: `receiver` kind for a method (None for a global call), argument kinds,
    result kind. Kinds are CEL type names, `dyn` for any, `list`/`map` for any list/map."""

    receiver: str | None
    args: tuple[str, ...]
    result: str


@dataclass(frozen=True, slots=True)
class Function:
    """A standard function: its implementation (receiver first for methods) and overloads."""

    name: str
    impl: Callable[..., Any]
    overloads: tuple[Overload, ...]
    # Relative evaluation cost, for the static estimate (a regex match is dearer than size()).
    cost: int = 1
    # Run-time charges in a budgeted expression (see codegen): `linear`, the size of the
    # receiver or first argument (the work is proportional to it); `grows`, the size of the
    # result (a string or list it builds).
    linear: bool = False
    grows: bool = False
    # For a function whose result may be far larger than its operands (`lists.range(n)`,
    # `replace`, `join`): the size of the result, computed cheaply from the operands, charged
    # before the result is built.
    precharge: Callable[..., int] | None = None

    @property
    def helper(self) -> str:
        """The name of the implementation in generated code."""
        # `_?._` and `_[?_]` (optional selection) have symbols in their names.
        name = self.name.replace(".", "_")
        return "_f_" + (name if name.isidentifier() else name.encode().hex())

    @property
    def named(self) -> bool:
        """Whether CEL text calls it by its name (`_?._` is written `a.?b`): what completion
        and suggestions offer."""
        return self.name.replace(".", "_").isidentifier()

    def accepts(self, method: bool, argc: int) -> bool:
        """Whether some overload takes this call form and number of arguments."""
        return any(
            (o.receiver is not None) == method and len(o.args) == argc for o in self.overloads
        )


def global_overload(args: str, result: str) -> Overload:
    """A global call's signature: `global_overload("string int", "bool")`."""
    return Overload(None, tuple(args.split()), result)


def method_overload(receiver: str, args: str, result: str) -> Overload:
    """A method call's signature: `method_overload("string", "int", "string")`."""
    return Overload(receiver, tuple(args.split()), result)
