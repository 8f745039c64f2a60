"""`compile()`: CEL text -> a `Program` that evaluates, and explains, against plain data."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import CarlangRuntimeError
from . import nodes as n
from .build import parse
from .cache import DEFAULT as DEFAULT_CACHE
from .cache import CompileCache, restored, stored_parts
from .codegen import Generated, generate, resolving_variant
from .cost import estimate
from .fold import fold
from .resolve import resolve
from .values import CelEvalError, ErrorKind, format_value

__all__ = [
    "Limits",
    "CelCompileError",
    "CelCostError",
    "Program",
    "Term",
    "Explanation",
    "compile",
]


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on one expression: `max_cost` for the static estimate (see `cost.py`, with lists
    of unknown size assumed to hold `assumed_size` elements), and at run time `max_steps` steps
    and `max_seconds` of wall time. A step is a macro iteration, a list element that `in`
    scans, or a character or element that the expression builds (`s + s`), so memory is
    bounded too. The run-time bounds hold however macros nest; they end the evaluation with a
    `CelLimitError`, which no `&&`, `||` or macro absorbs."""

    max_cost: int = 100_000
    assumed_size: int = 100
    max_steps: int = 1_000_000
    max_seconds: float = 0.25


class CelCompileError(CarlangRuntimeError):
    """An expression that cannot be compiled (other than a syntax error)."""


class CelCostError(CelCompileError):
    """An expression whose estimated cost is above `Limits.max_cost`."""

    def __init__(self, cost: int, limit: int) -> None:
        super().__init__(
            f"the condition is too expensive: estimated cost {cost} is above the limit {limit}"
            " (nested macros over lists multiply; lists of unknown size count as"
            " Limits.assumed_size elements)"
        )
        self.cost = cost
        self.limit = limit


# Python errors that escape only from values that are not CEL data (a set, an object) in the
# activation; they become CEL errors so that a policy fails closed instead of crashing.
_FOREIGN_ERRORS = (ArithmeticError, LookupError, TypeError, ValueError, RecursionError)


@dataclass(frozen=True, slots=True)
class Term:
    """A sub-expression that decided a result, with its value (a `CelEvalError` if it failed)."""

    text: str
    value: Any
    start: int
    end: int

    def __str__(self) -> str:
        return f"{self.text} -> {format_value(self.value)}"


@dataclass(frozen=True, slots=True)
class Explanation:
    """A result and the sub-expressions that decided it."""

    value: Any
    terms: tuple[Term, ...]

    def __str__(self) -> str:
        return "; ".join(str(term) for term in self.terms)


@dataclass
class Program:
    """A compiled CEL expression. `evaluate` is the fast path; `explain` runs a recording
    variant of the same code and reports what decided the result."""

    source: str
    # The tree, or (from the disk cache) its pickle, loaded when first needed: most programs
    # only ever evaluate, which needs the generated function alone.
    _tree: n.Expr | bytes = field(repr=False)
    cost: int
    limits: Limits
    declared: frozenset[str] | None
    generated: Generated
    _evaluate: Callable[..., Any] = field(repr=False)
    container: str = ""
    _explain: Callable[..., Any] | None = field(default=None, repr=False)
    _recorded: dict[int, n.Expr] = field(default_factory=dict, repr=False)

    @property
    def tree(self) -> n.Expr:
        """The checked and folded expression tree the code was generated from."""
        if type(self._tree) is bytes:
            import pickle

            self._tree = pickle.loads(self._tree)
        assert isinstance(self._tree, n.Expr)
        return self._tree

    @property
    def function(self) -> Callable[..., Any]:
        """The generated function: `function(activation)` is `evaluate` without its
        translation of foreign Python errors (see `as_error`), for callers that loop."""
        return self._evaluate

    @staticmethod
    def as_error(exc: BaseException) -> CelEvalError:
        """What an exception from `function` means as a CEL error; anything that is not a
        CEL error and not caused by foreign data in the activation is re-raised (a bug)."""
        if isinstance(exc, CelEvalError):
            return exc
        if isinstance(exc, _FOREIGN_ERRORS):
            return _foreign(exc)
        raise exc

    @property
    def variables(self) -> frozenset[str]:
        """The activation variables the expression reads."""
        return self.generated.variables

    @property
    def timed(self) -> bool:
        """Whether an evaluation can stop on the wall-clock limit (`Limits.max_seconds`, checked
        in macro loops): the same activation can then fail on a busy machine and not on an
        idle one."""
        return self.generated.has_macros

    @property
    def python_source(self) -> str:
        """The generated Python source (for debugging and curiosity)."""
        return self.generated.source

    def evaluate(self, activation: Mapping[str, Any]) -> Any:
        """The value of the expression; a CEL error raises `CelEvalError`."""
        try:
            return self._evaluate(activation)
        except CelEvalError:
            raise
        except _FOREIGN_ERRORS as exc:
            raise _foreign(exc) from None

    def explain(self, activation: Mapping[str, Any]) -> Explanation:
        """The value (or error) and the sub-expressions that decided it, e.g. for
        `a && b` that is false, the operand that was false."""
        run = self._explain_function()
        record: dict[int, Any] = {}
        try:
            value = run(activation, record)
        except CelEvalError as exc:
            value = exc
        except _FOREIGN_ERRORS as exc:
            value = _foreign(exc)
        terms = _Decider(self.source, record).decide(self.tree, value)
        return Explanation(value, tuple(terms))

    def _explain_function(self) -> Callable[..., Any]:
        if self._explain is None:
            generated = generate(
                self.tree,
                variables=self.declared,
                record=True,
                max_steps=self.limits.max_steps,
                max_seconds=self.limits.max_seconds,
                source=self.source,
                container=self.container,
            )
            self._explain = generated.function("<cel explain>")
        return self._explain


def _foreign(exc: BaseException) -> CelEvalError:
    return CelEvalError(
        ErrorKind.INVALID_ARGUMENT,
        f"the activation holds a value CEL cannot use ({type(exc).__name__})",
    )


def compile(  # noqa: A001 - the name the API promises, as re.compile
    source: str,
    declarations: Any = None,
    *,
    limits: Limits | None = None,
    container: str | None = None,
    cache: CompileCache | None = DEFAULT_CACHE,
) -> Program:
    """Compile CEL `source`. Raises `CelSyntaxError` (with line and column) if it does not
    parse, `CelCostError` if its estimated cost is above `limits.max_cost`, and, when
    `declarations` (a `Declarations`) are given, `CelCheckError` if the static checks find
    errors (warnings are on `Program.warnings`... see `check`).

    `container` (`com.example`) makes names resolve relative to it (cel-spec's name
    resolution, see `resolve.py`); it defaults to the declarations' container. Qualified
    names (`a.b.c` bound as a whole) resolve against the declarations, or without them
    against the activation at each evaluation.

    A compiled condition is kept in `cache` (in memory, and on disk for the next process: see
    `cache.py`); the same inputs then give the same `Program` without compiling again.
    `cache=None` compiles afresh."""
    limits = limits or Limits()
    if container is None:
        container = declarations.container if declarations is not None else ""
    if cache is None:
        return _compile(source, declarations, limits, container, None)
    key = cache.key(source, declarations, container, limits)
    program: Program | None = cache.get(
        key, lambda parts: _restore(source, parts, declarations, limits, container)
    )
    if program is None:
        stored: dict[str, Any] = {}
        program = _compile(source, declarations, limits, container, stored)
        cache.put(key, program, stored or None)
    return program


def _compile(
    source: str,
    declarations: Any,
    limits: Limits,
    container: str,
    stored: dict[str, Any] | None,
) -> Program:
    _check_container(container)
    tree = parse(source)
    try:
        # Each later stage walks the tree recursively too: a tree the parser accepts may
        # still be too deep for them (300 nested map literals, 400 chained macros).
        return _compile_tree(source, tree, declarations, limits, container, stored)
    except (RecursionError, SyntaxError, MemoryError):
        raise CelCompileError(
            "the condition nests too deeply to compile (about ten levels of && and || inside"
            " each other, or of macros inside macros, is the most Python can hold); split it"
            " into simpler conditions or several policies"
        ) from None


def _check_container(container: str) -> None:
    if container and not all(part.isidentifier() for part in container.split(".")):
        raise CelCompileError(
            f"the container {container!r} is not a qualified name; write it like"
            " `com.example` (identifiers joined by dots)"
        )


def _compile_tree(
    source: str,
    tree: n.Expr,
    declarations: Any,
    limits: Limits,
    container: str,
    stored: dict[str, Any] | None = None,
) -> Program:
    cost = estimate(tree, limits.assumed_size).cost
    if cost > limits.max_cost:
        raise CelCostError(cost, limits.max_cost)
    declared: frozenset[str] | None = None
    if declarations is not None:
        from .checker import check_tree

        if declarations.container != container:
            declarations = replace(declarations, container=container)
        tree = resolve(tree, declarations.variables, container)
        check_tree(source, tree, declarations).raise_errors()
        declared = frozenset(declarations.variables)
    tree = fold(tree)
    generated = generate(
        tree,
        variables=declared,
        max_steps=limits.max_steps,
        max_seconds=limits.max_seconds,
        source=source,
        container=container,
    )
    code = builtins.compile(generated.source, "<cel>", "exec")
    function = generated.bind(code)
    if stored is not None:
        import pickle

        stored.update(
            stored_parts(generated, code),
            tree=pickle.dumps(tree, pickle.HIGHEST_PROTOCOL),
            cost=cost,
            declared=declared,
        )
    return Program(source, tree, cost, limits, declared, generated, function, container)


def _restore(
    source: str, parts: dict[str, Any], declarations: Any, limits: Limits, container: str
) -> Program:
    """The program that a compile stored (see `cache.stored_parts`)."""
    declared: frozenset[str] | None = parts["declared"]
    generated = restored(
        parts,
        limits,
        lambda: resolving_variant(
            lambda: program.tree,
            variables=declared,
            max_steps=limits.max_steps,
            max_seconds=limits.max_seconds,
            source=source,
            container=container,
        ),
    )
    function = generated.bind(parts["code"])
    program = Program(
        source, parts["tree"], parts["cost"], limits, declared, generated, function, container
    )
    return program


class _Decider:
    """Which recorded sub-expressions decided a value."""

    def __init__(self, source: str, record: dict[int, Any]) -> None:
        self.source = source
        self.record = record

    def value_of(self, node: n.Expr) -> Any:
        return self.record.get(id(node), _NOT_EVALUATED)

    def decide(self, node: n.Expr, value: Any) -> list[Term]:
        if isinstance(node, (n.And, n.Or)):
            stop = False if isinstance(node, n.And) else True
            evaluated = [(op, self.value_of(op)) for op in node.operands]
            evaluated = [(op, v) for op, v in evaluated if v is not _NOT_EVALUATED]
            if value is stop:
                deciding = [(op, v) for op, v in evaluated if v is stop][:1]
            elif value is (not stop):
                deciding = evaluated
            else:
                failed = [(op, v) for op, v in evaluated if type(v) is not bool]
                deciding = failed[:1] or evaluated
            return [term for op, v in deciding for term in self.decide(op, v)]
        if isinstance(node, n.Conditional):
            condition = self.value_of(node.condition)
            terms = self.decide(node.condition, condition)
            branch = node.then if condition is True else node.otherwise
            if condition in (True, False):
                terms += self.decide(branch, self.value_of(branch))
            return terms
        return [Term(self.source[node.start : node.end], value, node.start, node.end)]


class _NotEvaluated:
    def __repr__(self) -> str:
        return "<not evaluated>"


_NOT_EVALUATED = _NotEvaluated()
