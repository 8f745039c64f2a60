"""cel-python as the reference for carlang's CEL: `reference_evaluate` runs celpy with
carlang's documented deliberate differences (docs/cel.md, "Differences from cel-python")
applied.

Each difference is a place where celpy disagrees with cel-spec or with itself; the patches
make celpy follow the rule carlang follows, so the differential tests compare everything else
exactly. Nothing here is used by carlang itself.
"""

from __future__ import annotations

import operator
from datetime import datetime, timedelta
from typing import Any

import celpy
from carlang_runtime.cel import CelEvalError, ErrorKind
from celpy import celtypes

from .celpy_values import from_celpy, same, to_celpy

__all__ = [
    "reference_evaluate",
    "ReferenceError_",
    "ERROR_KINDS",
    "ALL_KINDS",
    "from_celpy",
    "to_celpy",
    "same",
]

# -- the reference evaluator -----------------------------------------------------------------

# celpy reports errors with the Python exception class that caused them; these are the CEL
# error kinds each class can stand for.
ERROR_KINDS = {
    TypeError: {ErrorKind.NO_MATCHING_OVERLOAD},
    AttributeError: {ErrorKind.NO_MATCHING_OVERLOAD},
    KeyError: {ErrorKind.NO_SUCH_FIELD, ErrorKind.NO_SUCH_KEY, ErrorKind.UNDECLARED_REFERENCE},
    ZeroDivisionError: {ErrorKind.DIVISION_BY_ZERO},
    ValueError: {ErrorKind.OVERFLOW, ErrorKind.INVALID_ARGUMENT},
    OverflowError: {ErrorKind.OVERFLOW},
    IndexError: {ErrorKind.INVALID_ARGUMENT},
}


class ReferenceError_(Exception):
    """celpy's error, as the set of CEL kinds it may stand for."""

    def __init__(self, kinds: set[str], detail: str) -> None:
        super().__init__(detail)
        self.kinds = kinds


def _value_kind(value: Any) -> str:
    kind = _number_kind(value)
    if kind != "other":
        return kind
    for cls, name in (
        (celtypes.StringType, "string"),
        (str, "string"),
        (celtypes.BytesType, "bytes"),
        (bytes, "bytes"),
        (list, "list"),
        (celtypes.TimestampType, "timestamp"),
        (celtypes.DurationType, "duration"),
    ):
        if isinstance(value, cls):
            return name
    return "other"


_SAME = {(kind, kind) for kind in ("int", "uint", "double")}
_ARITHMETIC = {
    "_+_": _SAME
    | {(k, k) for k in ("string", "bytes", "list", "duration")}
    | {("timestamp", "duration"), ("duration", "timestamp")},
    "_-_": _SAME
    | {("duration", "duration"), ("timestamp", "timestamp"), ("timestamp", "duration")},
    "_*_": _SAME,
    "_/_": _SAME,
    "_%_": _SAME,
}


def _equality_kind(value: Any) -> str:
    kind = _value_kind(value)
    if kind in ("int", "uint", "double"):
        return "number"
    if isinstance(value, celtypes.MapType):
        return "map"
    if value is None:
        return "null"
    if kind == "other":
        return type(value).__name__
    return kind


def _key_kind(value: Any) -> str:
    if isinstance(value, celtypes.BoolType):
        return "bool"
    return "number" if isinstance(value, (int, float)) else "other"


def _number_kind(value: Any) -> str:
    for cls, name in (
        (celtypes.BoolType, "bool"),
        (bool, "bool"),
        (celtypes.UintType, "uint"),
        (int, "int"),
        (float, "double"),
    ):
        if isinstance(value, cls):
            return name
    return "other"


def _numeric(value: Any) -> bool:
    return isinstance(value, (celtypes.IntType, celtypes.UintType, celtypes.DoubleType)) and not (
        isinstance(value, celtypes.BoolType)
    )


def _patched_functions() -> dict[str, Any]:
    """celpy functions overridden to follow carlang's deliberate differences."""
    from celpy import evaluation

    base_eq = evaluation.base_functions["_==_"]
    base_ne = evaluation.base_functions["_!=_"]
    base_in = evaluation.base_functions["_in_"]
    base_index = evaluation.base_functions["_[_]"]
    base_string = evaluation.base_functions["string"]
    base_bool = evaluation.base_functions["bool"]

    def mixed_bool_number(a: Any, b: Any) -> bool:
        # Difference 1: a bool is never equal to a number (celpy: `true == 1` is true, but
        # `1 == true` is an error); carlang: both are errors.
        return (isinstance(a, celtypes.BoolType) and _numeric(b)) or (
            isinstance(b, celtypes.BoolType) and _numeric(a)
        )

    def composite_with_null(a: Any, b: Any) -> bool:
        composite = (celtypes.ListType, celtypes.MapType)
        return (isinstance(a, composite) and b is None) or (isinstance(b, composite) and a is None)

    def deep(check: Any, a: Any, b: Any) -> bool:
        if check(a, b):
            return True
        if isinstance(a, celtypes.ListType) and isinstance(b, celtypes.ListType):
            return len(a) == len(b) and any(deep(check, x, y) for x, y in zip(a, b, strict=True))
        return False

    def equal(a: Any, b: Any) -> bool:
        # Difference 1: heterogeneous equality (cel-spec langdef, "Equality"): values of
        # different types are unequal, numbers compare by value, lists and maps element by
        # element (celpy: `1 == "1"`, `1 == 1.0` and `dyn(1) == null` are errors, `true == 1`
        # is true).
        kind_a, kind_b = _equality_kind(a), _equality_kind(b)
        if kind_a == "number" and kind_b == "number":
            return bool(a == b)  # the numbers as patched: by value, as doubles if one is
        if kind_a != kind_b:
            return False
        if kind_a == "list":
            return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b, strict=True))
        if kind_a == "map":
            if len(a) != len(b):
                return False
            for key, value in a.items():
                found = [v for k, v in b.items() if equal(key, k)]
                if not found or not equal(value, found[0]):
                    return False
            return True
        return bool(base_eq(a, b))

    def eq(a: Any, b: Any) -> Any:
        if isinstance(a, evaluation.CELEvalError) or isinstance(b, evaluation.CELEvalError):
            return base_eq(a, b)
        return celtypes.BoolType(equal(a, b))

    def ne(a: Any, b: Any) -> Any:
        # Difference 2: `!=` is the negation of `==`.
        if isinstance(a, evaluation.CELEvalError) or isinstance(b, evaluation.CELEvalError):
            return base_ne(a, b)
        return celtypes.BoolType(not equal(a, b))

    def contains(item: Any, container: Any) -> Any:
        # Difference 3: `in` needs a list or a map (celpy also searches strings and bytes).
        if isinstance(container, (celtypes.StringType, celtypes.BytesType)):
            return evaluation.CELEvalError("no such overload", TypeError, ())
        if isinstance(item, evaluation.CELEvalError):
            return base_in(item, container)
        if isinstance(container, (celtypes.ListType, celtypes.MapType)):
            return celtypes.BoolType(any(equal(item, element) for element in container))
        return base_in(item, container)

    def index(container: Any, key: Any) -> Any:
        # Difference 4: no negative or bool list positions and no indexing of strings or
        # bytes (celpy uses Python's).
        if isinstance(container, (celtypes.StringType, celtypes.BytesType, str, bytes)):
            raise TypeError("no such overload")
        if isinstance(container, celtypes.ListType) and isinstance(key, celtypes.BoolType):
            raise TypeError("no such overload")  # (celpy: Python's True is 1)
        if isinstance(container, celtypes.ListType) and isinstance(key, int) and key < 0:
            raise IndexError("list index out of range")
        if isinstance(container, celtypes.MapType) and isinstance(key, (int, float)):
            # A bool key finds only a bool and a number any number of its value (celpy:
            # Python lets true find 1, and a double key is refused).
            for stored, value in container.items():
                if _key_kind(stored) == _key_kind(key) and stored == key:
                    return value
            raise KeyError(key)
        return base_index(container, key)

    def arithmetic(name: str) -> Any:
        base = evaluation.base_functions[name]

        def apply(a: Any, b: Any) -> Any:
            # Difference 7: arithmetic only on the type pairs cel-spec defines (celpy lets
            # Python mix int, uint, bool and double, and scale durations: `1 + 1u` is 2,
            # `1.5 + 1` is 2.5 and `duration("1s") * 2.0` is 2s, while `1 + 1.5` is an error).
            pair = (_value_kind(a), _value_kind(b))
            if pair not in _ARITHMETIC[name]:
                raise TypeError("no such overload")
            kinds = set(pair)
            if name == "_/_" and kinds == {"double"} and b == 0.0:
                # Difference 11: IEEE 754 division by zero: 0.0/0.0 is NaN, -1.0/0.0 is
                # -inf (celpy: every double divided by zero is +inf).
                from carlang_runtime.cel.ops import div

                return celtypes.DoubleType(div(float(a), float(b)))
            result = base(a, b)
            # celpy's string concatenation returns a plain str, whose methods are Python's
            # (and double arithmetic a plain float).
            if type(result) is float:
                return celtypes.DoubleType(result)
            if type(result) is list:
                return celtypes.ListType(result)
            if type(result) is timedelta:
                return celtypes.DurationType(result)
            if type(result) is datetime:
                return celtypes.TimestampType(result)
            if type(result) is str:
                return celtypes.StringType(result)
            if type(result) is bytes:
                return celtypes.BytesType(result)
            return result

        return apply

    def string(value: Any) -> Any:
        # Difference 5: string(bool) is "true"/"false" (celpy: "True"), string() of null, a
        # list or a map is an error (celpy: Python's str()), string() of a duration or a
        # timestamp keeps the fraction of a second (celpy: drops it).
        if isinstance(value, celtypes.BoolType):
            return celtypes.StringType("true" if value else "false")
        if value is None or isinstance(value, (celtypes.ListType, celtypes.MapType)):
            raise TypeError("no such overload")
        if isinstance(value, celtypes.DurationType):
            from carlang_runtime.cel.values import format_duration

            return celtypes.StringType(format_duration(from_celpy(value)))
        if isinstance(value, celtypes.TimestampType):
            from carlang_runtime.cel.values import format_timestamp

            return celtypes.StringType(format_timestamp(from_celpy(value)))
        return base_string(value)

    def to_bool(value: Any) -> Any:
        # Difference 6: bool() takes a bool or a string (celpy also takes ints, keeping 5,
        # and null).
        if isinstance(value, (celtypes.BoolType, celtypes.StringType)):
            return base_bool(value)
        raise TypeError("no such overload")

    base_duration = evaluation.base_functions["duration"]

    def to_duration(value: Any) -> Any:
        # Difference 12: duration() takes a string or a duration (celpy also takes a number
        # of seconds, and so `true`).
        if isinstance(value, int) or value is None:
            raise TypeError("no such overload")
        # Difference 14: "0" is a duration, as in Go (celpy wants a unit: "0s").
        if isinstance(value, str) and value in ("0", "+0", "-0"):
            return celtypes.DurationType(0)
        return base_duration(value)

    numbers = (celtypes.IntType, celtypes.UintType, celtypes.DoubleType, celtypes.StringType)
    accepted = {
        "int": (*numbers, celtypes.TimestampType),
        "uint": numbers,
        "double": numbers,
        "bytes": (celtypes.BytesType, celtypes.StringType),
        "timestamp": (celtypes.TimestampType, celtypes.StringType),
    }

    def conversion(name: str) -> Any:
        base = evaluation.base_functions[name]

        def convert(value: Any) -> Any:
            # Difference 13: a conversion takes only the types cel-spec lists (celpy: int(null)
            # is 0, int(true) is 1, bytes([]) is b"", ...).
            if not isinstance(value, accepted[name]) or isinstance(value, celtypes.BoolType):
                raise TypeError("no such overload")
            if (
                name == "uint"
                and isinstance(value, celtypes.DoubleType)
                and not 0 <= float(value) < 2.0**64
            ):
                # Difference 25: a double outside uint64's range is a range error, as in
                # cel-spec's conformance tests and cel-go (celpy: uint(-0.5) is 0u)
                raise OverflowError("uint out of range")
            if name == "int" and isinstance(value, celtypes.TimestampType):
                # Difference 15: whole seconds since the epoch, rounded down as Go's Unix()
                # (celpy truncates a float toward zero, and loses precision doing so).
                from carlang_runtime.cel.values import unix_seconds

                return celtypes.IntType(unix_seconds(from_celpy(value)))
            return base(value)

        return convert

    def ordering(name: str) -> Any:
        base = evaluation.base_functions[name]

        def compare(a: Any, b: Any) -> Any:
            # Difference 1 again: a bool and a number are not ordered (celpy: `false <= 0`).
            if mixed_bool_number(a, b):
                raise TypeError("no such overload")
            return base(a, b)

        return compare

    base_milliseconds = evaluation.base_functions["getMilliseconds"]

    def milliseconds(value: Any, *zone: Any) -> Any:
        # Known cel-python deviation: a duration's getMilliseconds() is its milliseconds
        # *component* (cel-spec conformance timestamps/get_milliseconds: 123.321456789s ->
        # 321); celpy returns the total (123321).
        if isinstance(value, celtypes.DurationType) and not zone:
            from carlang_runtime.cel.functions import FUNCTIONS

            return celtypes.IntType(FUNCTIONS["getMilliseconds"].impl(from_celpy(value)))
        return base_milliseconds(value, *zone)

    base_contains = evaluation.base_functions["contains"]

    def contains_method(container: Any, item: Any) -> Any:
        # Difference 3 again, for the method: `.contains()` takes a string, a list or a map
        # (celpy also searches bytes, by Python's `in`: `b"ab".contains(0)` is false).
        if isinstance(container, celtypes.BytesType):
            raise TypeError("no such overload")
        if isinstance(container, (celtypes.ListType, celtypes.MapType)):
            # Difference 1 again: membership by heterogeneous equality.
            return celtypes.BoolType(any(equal(item, element) for element in container))
        return base_contains(container, item)

    return {
        "contains": contains_method,
        "getMilliseconds": milliseconds,
        "int": conversion("int"),
        "uint": conversion("uint"),
        "double": conversion("double"),
        "bytes": conversion("bytes"),
        "timestamp": conversion("timestamp"),
        "_<_": ordering("_<_"),
        "_<=_": ordering("_<=_"),
        "_>_": ordering("_>_"),
        "_>=_": ordering("_>=_"),
        "duration": to_duration,
        "_==_": eq,
        "_!=_": ne,
        "_in_": contains,
        "_[_]": index,
        "string": string,
        "bool": to_bool,
        "_+_": arithmetic("_+_"),
        "_-_": arithmetic("_-_"),
        "_*_": arithmetic("_*_"),
        "_/_": arithmetic("_/_"),
        "_%_": arithmetic("_%_"),
    }


def _patch_numbers() -> None:
    """Difference 8: int, uint and double compare by value, with each other too, for `==`,
    `!=`, `<`, ... and so in lists, maps and `in` (cel-spec's conformance tests; celpy orders
    some pairs, `dyn(1u) < 2`, and reports an error for others, `1 == 1.0`, `1 < 2.0`)."""
    numbers = (celtypes.IntType, celtypes.UintType, celtypes.DoubleType)

    def plain(value: Any) -> Any:
        return float(value) if isinstance(value, float) else int(value)

    def numeric(value: Any) -> bool:
        return isinstance(value, numbers) and not isinstance(value, celtypes.BoolType)

    comparisons = {
        "__eq__": operator.eq,
        "__ne__": operator.ne,
        "__lt__": operator.lt,
        "__le__": operator.le,
        "__gt__": operator.gt,
        "__ge__": operator.ge,
    }
    for cls in numbers:
        for name, python in comparisons.items():
            base = getattr(cls, name)

            def compare(self: Any, other: Any, base: Any = base, python: Any = python) -> Any:
                if numeric(self) and numeric(other):
                    left, right = plain(self), plain(other)
                    if type(left) is not type(right):
                        # An int with a double compares as doubles (cel-spec's conformance
                        # tests, comparisons/*_lossy_double).
                        left, right = float(left), float(right)
                    return python(left, right)
                return base(self, other)

            setattr(cls, name, compare)
        cls.__hash__ = lambda self: hash(plain(self))  # type: ignore[method-assign]


def _patch_map_literals() -> None:
    """Difference 9: an error inside a map literal is the map's error, as in a list literal
    (celpy keeps it inside the map: `{"a": 1/0}.size()` is 1)."""
    from celpy import evaluation

    def mapinits(self: Any, tree: Any) -> Any:
        keys_values = self.visit_children(tree)
        for part in keys_values:
            if isinstance(part, evaluation.CELEvalError):
                return part
        result = celtypes.MapType()
        for key, value in zip(keys_values[0::2], keys_values[1::2], strict=True):
            if key in result:
                raise ValueError(f"Duplicate key {key!r}")
            result[key] = value
        return result

    evaluation.Evaluator.mapinits = mapinits


def _patch_macro_ranges() -> None:
    """Difference 10: a macro ranges over a list or a map (celpy also iterates over the
    characters of a string and the bytes of bytes, and fails with a Python error on others)."""
    from celpy import evaluation

    base = evaluation.Evaluator.member_dot_arg
    macros = {"map", "filter", "all", "exists", "exists_one"}

    def member_dot_arg(self: Any, tree: Any) -> Any:
        if tree.children[1].value in macros:
            target = self.visit(tree.children[0])
            if isinstance(target, evaluation.CELEvalError):
                return target
            if isinstance(target, celtypes.ListType):
                # A list that holds an error (what celpy's map() makes of a failing body) is
                # that error; celpy raises it from inside the macro, past `false && ...`.
                failed = [item for item in target if isinstance(item, evaluation.CELEvalError)]
                if failed:
                    return failed[0]
            if not isinstance(target, (celtypes.ListType, celtypes.MapType)):
                return evaluation.CELEvalError("no such overload", TypeError, ())
            try:
                return base(self, tree)
            except evaluation.CELEvalError as exc:
                return exc  # raised from a macro's body: an error value, as everywhere else
        return base(self, tree)

    evaluation.Evaluator.member_dot_arg = member_dot_arg


def _patch_has() -> None:
    """Known cel-python deviation: `has(e.f)` is an error unless `e` is a map (cel-spec
    langdef "Field Selection": "In all other cases, has(e.f) evaluates to an error"), and an
    error in `e` is the result (celpy: false for both, `has(m.a.b)` with `m.a` an int)."""
    from celpy import evaluation

    def macro_has_eval(self: Any, exprlist: Any) -> Any:
        node = exprlist
        while node.data != "member_dot" and len(node.children) == 1:
            node = node.children[0]
        if node.data != "member_dot":
            return evaluation.CELEvalError("no such overload", TypeError, ())
        operand = self.visit(node.children[0])
        if isinstance(operand, evaluation.CELEvalError):
            return operand
        if isinstance(operand, celtypes.MapType):
            return celtypes.BoolType(celtypes.StringType(node.children[1].value) in operand)
        return evaluation.CELEvalError("no such overload", TypeError, ())

    evaluation.Evaluator.macro_has_eval = macro_has_eval


def _safe_eq(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except TypeError:
        return False


ALL_KINDS = frozenset(value for name, value in vars(ErrorKind).items() if name.isupper())
# Made at import: celpy raises the recursion limit when it builds its parser, and hypothesis
# warns about a limit changed during a test.
_ENV = celpy.Environment()
_FUNCTIONS = _patched_functions()
_patch_numbers()
_patch_map_literals()
_patch_macro_ranges()
_patch_has()


def reference_evaluate(expression: str, activation: dict[str, Any], container: str = "") -> Any:
    """Evaluate with celpy (differences applied; `container` is celpy's `package`); the value
    as carlang data, or raise `ReferenceError_` with the CEL error kinds celpy's error may
    stand for."""
    env = celpy.Environment(package=container) if container else _ENV
    try:
        tree = env.compile(expression)
        program = env.program(tree, functions=_FUNCTIONS)
        result = program.evaluate({k: to_celpy(v) for k, v in activation.items()})
        _raise_contained_error(result)
    except celpy.CELEvalError as exc:
        cause = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], type) else None
        if "evaluation.CELEvalError'>" in str(exc.args[0]):
            # celpy passed an error on to an operator, which reported "no matching overload"
            # and lost the original: CEL propagates the original, of a kind celpy no longer
            # tells. Any kind is accepted.
            raise ReferenceError_(set(ALL_KINDS), str(exc.args[0])) from None
        kinds = next(
            (kinds for cls, kinds in ERROR_KINDS.items() if cause and issubclass(cause, cls)),
            {ErrorKind.INVALID_ARGUMENT},
        )
        raise ReferenceError_(set(kinds), str(exc.args[0])) from None
    except Exception as exc:
        # celpy let a Python exception escape (double() of a list, uint() of infinity): the
        # CEL error its class stands for.
        kinds = next(
            (kinds for cls, kinds in ERROR_KINDS.items() if isinstance(exc, cls)),
            {ErrorKind.INVALID_ARGUMENT},
        )
        raise ReferenceError_(set(kinds), repr(exc)) from None
    return from_celpy(result)


def _raise_contained_error(value: Any) -> None:
    # celpy builds lists and maps that hold an error value; CEL propagates the error.
    if isinstance(value, celpy.CELEvalError):
        raise value
    if isinstance(value, (list, tuple)):
        for item in value:
            _raise_contained_error(item)
    if isinstance(value, dict):
        for key, item in value.items():
            _raise_contained_error(key)
            _raise_contained_error(item)


def carlang_outcome(program: Any, activation: dict[str, Any]) -> tuple[str, Any]:
    """("value", v) or ("error", kind) from a carlang program."""
    try:
        return ("value", program.evaluate(activation))
    except CelEvalError as exc:
        return ("error", exc.kind)
