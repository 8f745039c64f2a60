"""`PolicySet`: every policy that applies to one action, evaluated into one decision.

The decision is the strongest effect among the policies that match: deny > require_approval >
allow. A CEL condition that cannot be evaluated (a missing field, a type error) counts as a
match of a deny or require_approval policy, with the error in the reason: a policy that cannot
say "allow" does not allow. An `allow` policy makes an allow-list for the tools it targets: a
call of one of them is denied unless some allow policy matches it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final, cast

from ..cel import CelEvalError, ErrorKind, Explanation, Limits, Program
from ..cel import compile as compile_cel
from ..cel.cache import DEFAULT as DEFAULT_CACHE
from ..cel.values import CelTimestamp
from ..errors import CarlangRuntimeError
from ..globs import GlobSet
from ..ir import (
    Action,
    ActionType,
    CelPolicy,
    DenyKeywordRule,
    Policy,
    PolicyEffect,
    RateLimitToolRule,
    ToolSchema,
)
from ..jsonvalue import texts_of
from .activation import VARIABLES, action_activation, parameters_read, policy_declarations
from .rules import ON_PARAMS, ON_TIME, NativeRule, native_rule

__all__ = ["PolicySet", "Decision", "PolicyMatch", "PolicyTrace", "PolicyLoadError"]

_STRENGTH = {PolicyEffect.ALLOW: 0, PolicyEffect.REQUIRE_APPROVAL: 1, PolicyEffect.DENY: 2}


class PolicyLoadError(CarlangRuntimeError):
    """A policy that cannot be loaded (its condition does not compile): the whole set fails,
    as a security rule that silently fails to load is a control believed in and absent."""

    def __init__(self, policy: str, message: str) -> None:
        super().__init__(f"policy {policy}: {message}")
        self.policy = policy
        self.message = message


@dataclass(frozen=True, slots=True)
class PolicyMatch:
    """A policy that matched, what it does, and why (`error` when its condition failed)."""

    policy: str
    effect: PolicyEffect
    reason: str
    error: CelEvalError | None = None
    explanation: Explanation | None = None
    #: The variables the verdict depended on (`action`, `params`, `state`, `scope`,
    #: `history`, `now`): a verdict that read only `action` and `params` holds for every run
    #: of the same action, which is what lets a plan be judged before it runs.
    reads: frozenset[str] = frozenset(VARIABLES)

    @property
    def policies(self) -> tuple[str, ...]:
        """The policies this match stands for: its one policy, or each allow policy of an
        allow list that none of them matched (`policy` names them all, `a, b`: policy names
        are identifiers, so the comma and space part them unambiguously)."""
        return tuple(self.policy.split(", "))


@dataclass(frozen=True, slots=True)
class Decision:
    """The effect for one action and every policy that contributed to it."""

    effect: PolicyEffect
    matches: tuple[PolicyMatch, ...] = ()

    @property
    def allowed(self) -> bool:
        """True when the action may run without asking anyone."""
        return self.effect is PolicyEffect.ALLOW

    @property
    def denied(self) -> bool:
        """True when the action must not run."""
        return self.effect is PolicyEffect.DENY

    @property
    def needs_approval(self) -> bool:
        """True when the action may run once approved."""
        return self.effect is PolicyEffect.REQUIRE_APPROVAL

    @property
    def deciding(self) -> tuple[PolicyMatch, ...]:
        """The matches with the decision's effect (the ones to report)."""
        return tuple(m for m in self.matches if m.effect is self.effect)

    def reason(self) -> str:
        """The reasons of the deciding matches, one line."""
        return "; ".join(f"{m.policy}: {m.reason}" for m in self.deciding)


ALLOW = Decision(PolicyEffect.ALLOW)


@dataclass(frozen=True, slots=True)
class PolicyTrace:
    """What one policy made of one action: whether it applies (targets the action's tool),
    whether it matched, why, and for a CEL condition the values that decided it."""

    policy: str
    rule: str
    effect: PolicyEffect
    applies: bool
    matched: bool
    reason: str | None = None
    error: CelEvalError | None = None
    explanation: Explanation | None = None


class _CelRule:
    __slots__ = ("policy", "program", "run", "targets", "message", "match", "reads")

    def __init__(self, policy: CelPolicy, program: Program | None) -> None:
        self.policy = policy
        self.program = program
        # The generated function itself: PolicySet does Program.evaluate's error handling.
        self.run = program.function if program is not None else None
        self.targets = GlobSet(policy.tools) if policy.tools else None
        effect = policy.effect
        default = {
            PolicyEffect.DENY: f"denied by policy {policy.name}",
            PolicyEffect.REQUIRE_APPROVAL: f"policy {policy.name} requires approval",
            PolicyEffect.ALLOW: f"allowed by policy {policy.name}",
        }[effect]
        self.message = policy.message or default
        # Targeting is by tool name, part of the action: a rule without a condition reads it.
        self.reads = program.variables if program is not None else frozenset({"action"})
        # Matches without an error or an explanation are all alike: made once.
        self.match = PolicyMatch(policy.name, effect, self.message, reads=self.reads)

    def applies(self, tool: str | None) -> bool:
        if self.targets is None:
            return True
        return tool is not None and self.targets.matches(tool)


@dataclass(frozen=True, slots=True)
class _ForTool:
    """The rules that apply to calls of one tool, in declaration order, found once."""

    rules: tuple[_CelRule | tuple[Policy, NativeRule], ...]
    allows: tuple[_CelRule, ...]
    reads_now: bool
    needs_activation: bool


_THE_ACTION: Final = frozenset({"action", "params"})


def _reads_the_action(rule: _CelRule | tuple[Policy, NativeRule]) -> bool:
    """Whether a rule's verdict depends on the action judged (not only on the state, the
    scope, history or the time, which a declared effect shares with its call)."""
    if isinstance(rule, _CelRule):
        return rule.program is not None and bool(rule.program.variables & _THE_ACTION)
    return bool(rule[1].reads & _THE_ACTION)


def _judges_effects(rule: _CelRule | tuple[Policy, NativeRule]) -> bool:
    """Whether a rule that applies to every action judges a declared effect apart from its
    call: it reads the action, and can match a state write (a keyword rule reads only the
    parameters of tool calls)."""
    return _reads_the_action(rule) and (isinstance(rule, _CelRule) or not rule[1].calls_only)


class _EffectWrite:
    """A tool call's declared effect as the `state_write` policies judge (only what they
    read of an action: made per effect, so not a pydantic model)."""

    __slots__ = ("id", "type", "tool", "parameters", "metadata", "expected_effects")

    def __init__(self, call: Action, key: str, value: Any) -> None:
        self.id = call.id
        self.type = ActionType.STATE_WRITE
        self.tool = None
        self.parameters = {"key": key, "value": value}
        self.metadata = call.metadata
        self.expected_effects: dict[str, Any] = {}


def _on_effect(match: PolicyMatch, key: str) -> PolicyMatch:
    """`match`, made on the state write of a declared effect, saying so."""
    reason = f"{match.reason} (on its declared effect `{key}`, a state write)"
    return replace(match, reason=reason)


def _policy(rule: _CelRule | tuple[Policy, NativeRule]) -> Policy:
    return rule.policy if isinstance(rule, _CelRule) else rule[0]


def _bundle_name(policies: Sequence[Policy]) -> str:
    """What tells a set's bundle of compiled conditions apart from other sets': the sources of
    its conditions (a condition compiled under other declarations or limits is another entry
    of the same bundle, found by its own key)."""
    return "\0".join(p.when for p in policies if isinstance(p, CelPolicy) and p.when)


class PolicySet:
    """Policies compiled once and evaluated per action.

    `tools` are the schemas of the tools the policies may target; with `check=True` every CEL
    condition is also checked against them (unknown fields, type mismatches) and a finding of
    error level fails the load. `clock` (seconds, monotonic) drives rate limits.
    """

    def __init__(
        self,
        policies: Iterable[Policy] = (),
        *,
        tools: Iterable[ToolSchema] = (),
        limits: Limits | None = None,
        check: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits or Limits()
        self.tools = {tool.name: tool for tool in tools}
        self.check = check
        self.clock = clock
        self._rules: list[_CelRule | tuple[Policy, NativeRule]] = []
        self._by_tool: dict[str | None, _ForTool] = {}
        #: rule positions by the tool each names exactly, and those of the others
        #: (`_candidates`); None until first needed, and after a rule is added
        self._by_name: tuple[dict[str, list[int]], list[int]] | None = None
        #: `reads`' answers, by variable, until a rule is added
        self._reads: dict[str, bool] = {}
        self._effect_rules: _ForTool | None = None
        #: The shadow policies, evaluated apart (`evaluate` never sees them): their decision
        #: is recorded, never enforced.
        self.shadow: PolicySet | None = None
        policies = list(policies)
        # (their conditions from one file of the compile cache, not one file each)
        with DEFAULT_CACHE.bundle(_bundle_name(policies)):
            for policy in policies:
                self.add(policy)

    @property
    def names(self) -> list[str]:
        """Every policy's name, in the order added."""
        return [_policy(rule).name for rule in self._rules]

    def __len__(self) -> int:
        return len(self._rules) + (len(self.shadow) if self.shadow is not None else 0)

    @property
    def declared(self) -> list[Policy]:
        """Every policy, enforced then shadow (shadow ones with the flag off)."""
        shadow = self.shadow.declared if self.shadow is not None else []
        return [_policy(rule) for rule in self._rules] + shadow

    def policy(self, name: str) -> Policy | None:
        """The policy called `name` (enforced or shadow), or None."""
        for rule in self._rules:
            if _policy(rule).name == name:
                return _policy(rule)
        return self.shadow.policy(name) if self.shadow is not None else None

    def reads(self, variable: str) -> bool:
        """Whether some condition reads `variable` (the runtime keeps `history` only then),
        shadow policies' included."""
        if self.shadow is not None and self.shadow.reads(variable):
            return True
        found = self._reads.get(variable)
        if found is None:  # (asked per proposal and per run: found once per set of rules)
            found = self._reads[variable] = any(
                isinstance(rule, _CelRule)
                and rule.program is not None
                and variable in rule.program.variables
                for rule in self._rules
            )
        return found

    def judges_state(self) -> bool:
        """Whether some policy's verdict depends on the state (a condition that reads
        `state`, `require_state`), shadow policies' included."""
        if self.shadow is not None and self.shadow.judges_state():
            return True
        return self.reads("state") or any(
            not isinstance(rule, _CelRule) and "state" in rule[1].reads for rule in self._rules
        )

    def depends_on_time(self) -> bool:
        """Whether deciding the same action, parameters, state and scope again can turn out
        differently: a condition that reads `now` or `history`, one that can stop on the
        wall-clock limit (a macro loop), or a rate limit; shadow policies' included (what
        they would decide is logged)."""
        if self.shadow is not None and self.shadow.depends_on_time():
            return True
        for rule in self._rules:
            if isinstance(rule, _CelRule):
                if rule.reads & ON_TIME or (rule.program is not None and rule.program.timed):
                    return True
            elif rule[1].reads & ON_TIME:
                return True
        return False

    def add(self, policy: Policy) -> None:
        """Add a policy; raises `PolicyLoadError` if its condition does not compile. A
        shadow policy goes to `shadow`."""
        if policy.shadow:
            if self.shadow is None:
                self.shadow = PolicySet(
                    tools=self.tools.values(),
                    limits=self.limits,
                    check=self.check,
                    clock=self.clock,
                )
            self.shadow.add(policy.model_copy(update={"shadow": False}))
            return
        if isinstance(policy, CelPolicy):
            self._rules.append(_CelRule(policy, self._compile(policy)))
        else:
            self._rules.append((policy, native_rule(policy, self.clock)))
        self._by_tool.clear()
        self._by_name = None
        self._reads.clear()
        self._effect_rules = None

    def caught_parameters(self, action: Action) -> set[str]:
        """The parameters of `action` whose values a built-in rule exists to catch and does
        catch here (`deny_tool_param`, `deny_tool_param_matching`, `deny_keyword`): those
        values must never be written down, not even in the proposal a journal keeps."""
        caught: set[str] = set()
        if action.tool is None or not action.parameters:
            return caught
        if self.shadow is not None:
            caught |= self.shadow.caught_parameters(action)
        for rule in self._for_tool(action.tool).rules:
            if isinstance(rule, _CelRule):
                continue
            policy, native = rule
            if native.reads != ON_PARAMS:
                continue
            if isinstance(policy, DenyKeywordRule):
                keywords = [k for k in policy.keywords if k]
                caught.update(
                    name
                    for name, value in action.parameters.items()
                    if any(k in text for text in texts_of(value) for k in keywords)
                )
            elif native.check(action, {}, False) is not None:
                caught.add(getattr(policy, "param", ""))
        caught.discard("")
        return caught

    def rate_refusal(self, action: Action) -> str | None:
        """Why the rate limits (`rate_limit_tool`) refuse one more call of `action`'s tool now,
        or None, the call then taking its place in the window: asked before each retry, which
        calls the tool again (an agent's `retry 1000` must not get past `1 per 1h`)."""
        for rule in self._for_tool(action.tool).rules:
            if isinstance(rule, _CelRule) or not isinstance(rule[0], RateLimitToolRule):
                continue
            refused = rule[1].check(action, {}, True)
            if refused is not None:
                return f"{rule[0].name}: {refused}"
        return None

    def parameter_readers(self, tool: str | None) -> list[tuple[str, frozenset[str] | None]]:
        """Each policy (enforced, then shadow) that decides calls of `tool` by their
        parameters: its name and the parameters it reads by name (None: any of them)."""
        found: list[tuple[str, frozenset[str] | None]] = []
        selected = self._for_tool(tool)
        for rule in (*selected.rules, *selected.allows):
            if isinstance(rule, _CelRule):
                program = rule.program
                if program is not None and not {"params", "action"}.isdisjoint(program.variables):
                    found.append((rule.policy.name, parameters_read(program.tree)))
            elif rule[1].reads == ON_PARAMS:
                param = getattr(rule[0], "param", None)
                found.append((rule[0].name, frozenset({param}) if param else None))
        if self.shadow is not None:
            found += self.shadow.parameter_readers(tool)
        return found

    def _compile(self, policy: CelPolicy) -> Program | None:
        if policy.when is None:
            return None
        declarations = None
        if self.check:
            targets = None
            if policy.tools:
                globs = GlobSet(policy.tools)
                targets = [t for name, t in self.tools.items() if globs.matches(name)]
            declarations = policy_declarations(targets)
        try:
            return compile_cel(policy.when, declarations, limits=self.limits)
        except CarlangRuntimeError as exc:
            raise PolicyLoadError(policy.name, str(exc)) from None

    def _candidates(self, tool: str | None) -> list[_CelRule | tuple[Policy, NativeRule]]:
        """The rules that may apply to `tool`, in declaration order: those naming it exactly
        and those with a pattern or no target, found from an index by name (every rule
        checked for every tool made a program of 3,000 tools and policies quadratic)."""
        if self._by_name is None:
            by_name: dict[str, list[int]] = {}
            general: list[int] = []
            for index, rule in enumerate(self._rules):
                names = _exact_targets(rule)
                if names is None:
                    general.append(index)
                for name in names or ():
                    by_name.setdefault(name, []).append(index)
            self._by_name = (by_name, general)
        by_name, general = self._by_name
        named = by_name.get(tool, ()) if tool is not None else ()
        indices = sorted({*named, *general}) if named else general
        return [self._rules[index] for index in indices]

    def _for_tool(self, tool: str | None) -> _ForTool:
        found = self._by_tool.get(tool)
        if found is None:
            rules: list[_CelRule | tuple[Policy, NativeRule]] = []
            allows: list[_CelRule] = []
            for rule in self._candidates(tool):
                if isinstance(rule, _CelRule):
                    if not rule.applies(tool):
                        continue
                    if rule.policy.effect is PolicyEffect.ALLOW:
                        allows.append(rule)
                        continue
                elif rule[1].tool is not None and rule[1].tool != tool:
                    continue
                rules.append(rule)
            cel = [r for r in [*rules, *allows] if isinstance(r, _CelRule)]
            reads_now = any(r.program is not None and "now" in r.program.variables for r in cel)
            found = _ForTool(tuple(rules), tuple(allows), reads_now, bool(cel))
            self._by_tool[tool] = found
        return found

    def evaluate(
        self,
        action: Action,
        *,
        proposal_id: str = "",
        state: Mapping[str, Any] | None = None,
        scope: Mapping[str, Any] | None = None,
        history: Sequence[Mapping[str, Any]] | None = None,
        now: datetime | CelTimestamp | None = None,
        explain: bool = False,
        admit: bool = True,
        dropped: int = 0,
    ) -> Decision:
        """The decision for `action`. `explain` adds, to each CEL match, the sub-expressions
        that decided it; `admit=False` is a dry run that spends no rate-limit budget.

        `dropped`: how many earlier entries `history` lacks (a session's is trimmed to its
        last calls, `keep_history`). A condition that reads `history` and does not match
        could then have matched on what is gone: it cannot be decided, and applies (fail
        closed), as a condition that fails does; an allow that reads it does not allow.

        A tool call's declared effects (`expected_effects`, committed to state when it
        succeeds) are state writes: each is judged as the `state_write` of its key and value
        would be, by the policies that apply to every action, so that a rule against writing
        a key (`deny when action.type == "state_write" && params.key == "admin"`) holds
        however the write is made."""
        found = self._by_tool.get(action.tool) or self._for_tool(action.tool)
        matches = self._matches(
            found, action, proposal_id, state, scope, history, now, explain, admit, dropped
        )
        if action.expected_effects:
            on_writes = self._for_effects()
            if on_writes.rules or on_writes.allows:
                for key, value in action.expected_effects.items():
                    write = cast(Action, _EffectWrite(action, key, value))
                    found_on = self._matches(
                        on_writes,
                        write,
                        proposal_id,
                        state,
                        scope,
                        history,
                        now,
                        explain,
                        admit,
                        dropped,
                    )
                    matches.extend(_on_effect(match, key) for match in found_on)
        if not matches:
            return ALLOW
        effect = max((m.effect for m in matches), key=_STRENGTH.__getitem__)
        return Decision(effect, tuple(matches))

    def _for_effects(self) -> _ForTool:
        """The rules that judge a declared effect as a state write: those that apply to
        every action and read the action or its parameters (the others judge the write as
        they judged the call that declares it), and the allow-list of every action when one
        of its rules does."""
        found = self._effect_rules
        if found is None:
            every = self._for_tool(None)
            rules = tuple(rule for rule in every.rules if _judges_effects(rule))
            allows = every.allows if any(map(_reads_the_action, every.allows)) else ()
            cel = [r for r in [*rules, *allows] if isinstance(r, _CelRule)]
            reads_now = any(r.program is not None and "now" in r.program.variables for r in cel)
            found = self._effect_rules = _ForTool(rules, allows, reads_now, bool(cel))
        return found

    def _matches(
        self,
        found: _ForTool,
        action: Action,
        proposal_id: str,
        state: Mapping[str, Any] | None,
        scope: Mapping[str, Any] | None,
        history: Sequence[Mapping[str, Any]] | None,
        now: datetime | CelTimestamp | None,
        explain: bool,
        admit: bool,
        dropped: int = 0,
    ) -> list[PolicyMatch]:
        """The policies of `found` that match `action` itself (`evaluate`)."""
        state = state if state is not None else {}
        activation: dict[str, Any] = {}
        if found.needs_activation:
            if now is None and found.reads_now:
                now = CelTimestamp(time.time_ns())
            activation = action_activation(
                action, proposal_id=proposal_id, state=state, scope=scope, history=history, now=now
            )
        matches: list[PolicyMatch] = []
        for rule in found.rules:
            if isinstance(rule, _CelRule):
                # Inline, the common cases first: most conditions are false.
                run = rule.run
                if run is None:
                    matches.append(rule.match)
                    continue
                try:
                    value = run(activation)
                except Exception as exc:  # noqa: BLE001 - _failed re-raises what is a bug
                    matches.append(self._failed(rule, exc, activation, explain))
                    continue
                if value is False:
                    continue
                if value is True and not explain:
                    matches.append(rule.match)
                    continue
                match = self._valued(rule, value, activation, explain)
                if match is not None:
                    matches.append(match)
                continue
            policy, native = rule
            reason = native.check(action, state, admit)
            if reason is not None:
                if policy.message:  # (the program's words first, then what the rule found)
                    reason = f"{policy.message} ({reason})"
                matches.append(
                    PolicyMatch(policy.name, PolicyEffect.DENY, reason, reads=native.reads)
                )
        if dropped:  # (after the loop: a session within its limit pays nothing for this)
            matches.extend(_undecidable(found.rules, matches, dropped))
        if found.allows:
            matches.extend(self._allow_list(found.allows, activation, explain, dropped))
        return matches

    def trace(
        self,
        action: Action,
        *,
        proposal_id: str = "",
        state: Mapping[str, Any] | None = None,
        scope: Mapping[str, Any] | None = None,
        history: Sequence[Mapping[str, Any]] | None = None,
        now: datetime | CelTimestamp | None = None,
        explained: bool = True,
    ) -> tuple[Decision, list[PolicyTrace]]:
        """The decision for `action` and, for every policy in order, what it made of it
        (matched or not, with the values that decided it; `explained=False`: without those
        values, for a caller that only counts matches, such as test coverage: explaining
        every policy for every case was most of `carlang test`'s time). A dry run: no
        rate-limit budget is spent."""
        state = state if state is not None else {}
        activation = action_activation(
            action,
            proposal_id=proposal_id,
            state=state,
            scope=scope,
            history=history,
            now=now or CelTimestamp(time.time_ns()),
        )
        decision = self.evaluate(
            action,
            proposal_id=proposal_id,
            state=state,
            scope=scope,
            history=history,
            now=activation["now"],
            explain=True,
            admit=False,
        )
        matched = {m.policy: m for m in decision.matches}
        traces = []
        for rule in self._rules:
            policy = _policy(rule)
            if isinstance(rule, _CelRule):
                traces.append(self._trace_cel(rule, action, activation, matched, explained))
                continue
            applies = rule[1].tool is None or rule[1].tool == action.tool
            match = matched.get(policy.name)
            traces.append(
                PolicyTrace(
                    policy.name,
                    policy.rule,
                    PolicyEffect.DENY,
                    applies,
                    match is not None,
                    match.reason if match else None,
                )
            )
        return decision, traces

    @staticmethod
    def _trace_cel(
        rule: _CelRule,
        action: Action,
        activation: dict[str, Any],
        matched: Mapping[str, PolicyMatch],
        explained: bool = True,
    ) -> PolicyTrace:
        policy, effect = rule.policy, rule.policy.effect
        if not rule.applies(action.tool):
            return PolicyTrace(policy.name, policy.rule, effect, False, False)
        program = rule.program
        match = matched.get(policy.name)
        if match is not None and match.explanation is not None:
            # what decided the match: on a declared effect, the state write it was judged as,
            # not the call's own values
            explanation = match.explanation if explained else None
        else:
            explanation = program.explain(activation) if program and explained else None
        if effect is PolicyEffect.ALLOW:
            failure = None  # (a condition that fails allows nothing: it fails closed)
            if program is None:
                allowed = True
            else:
                try:
                    allowed = program.evaluate(activation) is True
                except CelEvalError as exc:
                    allowed, failure = False, exc
            reason = rule.message if allowed else None
            return PolicyTrace(
                policy.name, policy.rule, effect, True, allowed, reason, failure, explanation
            )
        return PolicyTrace(
            policy.name,
            policy.rule,
            effect,
            True,
            match is not None,
            match.reason if match else None,
            match.error if match else None,
            explanation,
        )

    def _failed(
        self, rule: _CelRule, exc: Exception, activation: dict[str, Any], explain: bool
    ) -> PolicyMatch:
        """The match of a condition that raised `exc`: fail closed, a deny or approval policy
        that cannot be evaluated applies."""
        program = rule.program
        assert program is not None
        error = program.as_error(exc)
        effect = rule.policy.effect
        if error.kind == ErrorKind.COST_LIMIT:
            # A condition stopped by its limits denies, whatever its effect: approving a
            # call nobody could evaluate is no safer. Explaining would run it again.
            reason = f"policy {rule.policy.name} exceeded its evaluation limit: {error.message}"
            return PolicyMatch(rule.policy.name, PolicyEffect.DENY, reason, error, None, rule.reads)
        reason = f"{rule.message} (its condition failed: {error.message})"
        explanation = program.explain(activation) if explain else None
        return PolicyMatch(rule.policy.name, effect, reason, error, explanation, rule.reads)

    def _valued(
        self, rule: _CelRule, value: Any, activation: dict[str, Any], explain: bool
    ) -> PolicyMatch | None:
        """The match (None: no match) of a condition that evaluated to `value`."""
        program = rule.program
        assert program is not None
        effect = rule.policy.effect
        if value is True:
            if not explain:
                return rule.match
            explanation = program.explain(activation)
            return PolicyMatch(
                rule.policy.name, effect, rule.message, None, explanation, rule.reads
            )
        if value is not False:
            error = CelEvalError("no_matching_overload", "the condition is not a bool")
            reason = f"{rule.message} (its condition is not a bool)"
            return PolicyMatch(rule.policy.name, effect, reason, error, None, rule.reads)
        return None

    def _allow_list(
        self,
        allows: tuple[_CelRule, ...],
        activation: dict[str, Any],
        explain: bool,
        dropped: int = 0,
    ) -> list[PolicyMatch]:
        errors: list[str] = []
        limited = False
        for rule in allows:
            if rule.program is None:
                return []
            if dropped and "history" in rule.reads:  # allowed on part of it: no allow
                errors.append(f"{rule.policy.name}: {_incomplete(dropped)}")
                continue
            try:
                if rule.program.evaluate(activation) is True:
                    return []
            except CelEvalError as exc:  # fail closed: an allow that fails does not allow
                if exc.kind == ErrorKind.COST_LIMIT:
                    limited = True
                    errors.append(
                        f"{rule.policy.name} exceeded its evaluation limit: {exc.message}"
                    )
                else:
                    errors.append(f"{rule.policy.name}: {exc.message}")
        names = ", ".join(rule.policy.name for rule in allows)
        # the allow policies' own words, when they have some (`message "only bank.example"`)
        said = "; ".join(dict.fromkeys(r.policy.message for r in allows if r.policy.message))
        reason = f"not allowed: {said or 'no allow policy matches this call'} ({names})"
        if errors:
            reason += "; failed: " + "; ".join(errors)
        first = allows[0].program
        explained = explain and first is not None and not limited
        explanation = first.explain(activation) if explained and first is not None else None
        reads = frozenset().union(*(rule.reads for rule in allows))
        return [PolicyMatch(names, PolicyEffect.DENY, reason, None, explanation, reads)]


def _incomplete(dropped: int) -> str:
    """Why a condition that reads `history` cannot be decided on a trimmed one."""
    return (
        f"it reads `history`, and {dropped} earlier call(s) of this session are no longer"
        " kept (the runtime's history_limit): a rule over the whole session cannot be decided"
        " on part of it; start a new session, or raise history_limit"
    )


def _undecidable(
    rules: Iterable[_CelRule | tuple[Policy, NativeRule]],
    matched: Sequence[PolicyMatch],
    dropped: int,
) -> list[PolicyMatch]:
    """The deny and approval rules that read `history` and did not match it: on a history
    that lacks `dropped` earlier entries they cannot be decided, and apply (fail closed: a
    "once per session" rule must not forget the first call after a thousand others)."""
    decided = {match.policy for match in matched}
    out = []
    for rule in rules:
        if not isinstance(rule, _CelRule) or "history" not in rule.reads:
            continue
        if rule.policy.name in decided:
            continue
        error = CelEvalError(ErrorKind.INVALID_ARGUMENT, _incomplete(dropped))
        reason = f"{rule.message} ({_incomplete(dropped)})"
        out.append(
            PolicyMatch(rule.policy.name, rule.policy.effect, reason, error, None, rule.reads)
        )
    return out


def _exact_targets(rule: _CelRule | tuple[Policy, NativeRule]) -> tuple[str, ...] | None:
    """The tool names a rule applies to when it names them all exactly (no pattern), else
    None (it may apply to any tool: a pattern, or no target)."""
    if isinstance(rule, _CelRule):
        targets = rule.targets
        if targets is None or not targets.exact_only:
            return None
        return targets.patterns
    tool = rule[1].tool
    return (tool,) if tool is not None else None
