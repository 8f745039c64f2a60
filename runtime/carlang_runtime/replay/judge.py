"""Re-deciding recorded actions with another program: the candidate's (and the baseline's)
policies, capabilities and budgets, each action with the state, scope and history it had when it
was decided (rebuilt from the log), in the recorded order.

`history` is rebuilt as the runtime holds it (engine/run.py): an action the recorded run
admitted (its decision was not a deny) is in it, status "running", from the moment it was
decided; when it ends, that same entry takes its final status. An action refused when decided,
or before, is in it once it ended. So an action decided alongside an admitted sibling that had
not ended sees it, as it did when it ran."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError

from ..capability import CapabilityCheck
from ..engine.limits import BUDGET_OWNER, BUDGET_SCOPE, SessionBudget
from ..ir import Action, ActionProposal, ActionType, Budget, Compensation, Program
from ..ir._base import construct
from ..paramcheck import parameter_defaults, with_defaults
from ..policy import (
    HISTORY_LIMIT,
    RUNNING,
    Decision,
    PolicyMatch,
    PolicySet,
    history_entry,
    keep_history,
)
from ..redact import REDACTED
from .log import RecordedProposal, without_gc

__all__ = ["Verdict", "Change", "Unjudged", "ReplayReport", "Judge", "replay"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """One program's decision about one action: the effect and who decided it."""

    decision: str
    policy: str | None = None
    reason: str = ""
    explanation: str | None = None
    loc: dict[str, Any] | None = None
    #: Every policy that decided it (`policy` is the first), when more than one did.
    also: tuple[str, ...] = ()
    #: where each policy that decided it is declared (`loc` is the first's), by name
    locs: Mapping[str, dict[str, Any]] = field(default_factory=dict, hash=False)

    @property
    def deciding(self) -> set[str]:
        """The names of the policies that decided it."""
        return set(self.policies)

    @property
    def policies(self) -> tuple[str, ...]:
        """The names of the policies that decided it, in order (`policy` first)."""
        return self.also if self.policy is None else (self.policy, *self.also)

    def loc_of(self, policy: str) -> dict[str, Any] | None:
        """Where `policy`, one of those that decided it, is declared (None: not known)."""
        return self.locs.get(policy) or (self.loc if policy == self.policy else None)

    def located(self, *sources: Mapping[str, dict[str, Any]]) -> Verdict:
        """This verdict with its policies' positions, each from the first of `sources` that
        has it."""
        locs = {}
        for name in self.policies:
            loc = next((source[name] for source in sources if name in source), None)
            if loc is not None:
                locs[name] = loc
        return replace(self, loc=locs.get(self.policy or ""), locs=locs)


@dataclass(frozen=True, slots=True)
class Change:
    """A recorded action whose decision changes."""

    run_id: str
    proposal_id: str
    action_id: str
    tool: str | None
    tenant: str | None
    time: float
    before: Verdict
    after: Verdict

    @property
    def category(self) -> str:
        """`allow -> deny` and so on."""
        return f"{self.before.decision} -> {self.after.decision}"

    @property
    def responsible(self) -> Verdict:
        """The verdict whose policy makes the change: the new one's when it refuses, else the
        old one's (a policy relaxed or removed)."""
        return self.after if self.after.decision != "allow" else self.before


@dataclass(frozen=True, slots=True)
class Unjudged:
    """A run replay cannot judge, and why."""

    run_id: str
    proposal_id: str
    reason: str
    #: the candidate (or baseline) cannot judge it: it no longer declares the run's tool,
    #: capability or budget, so those calls would now be refused (not a log's problem)
    dropped: bool = False
    #: the reason as it stands for every run it stops (without this run's action): the
    #: reports group runs by it
    cause: str = ""
    #: the file at fault: the program that dropped what the run uses (or cannot run it), or
    #: the log
    file: str | None = None
    #: whether `file` is a program (named from its project's root), not a log (named as the
    #: command line named it)
    in_program: bool = False


@dataclass
class ReplayReport:
    """What replay found: counts, the changes (all of them; formats show the first N of each
    category), the runs it could not judge, and what it could not reconstruct."""

    runs: int = 0
    judged_runs: int = 0
    actions: int = 0
    unchanged: int = 0
    changes: list[Change] = field(default_factory=list)
    unjudged: list[Unjudged] = field(default_factory=list)
    notes: Counter[str] = field(default_factory=Counter)
    shadow: Counter[tuple[str, str]] = field(default_factory=Counter)
    baseline: str = "recorded"
    #: the decisions judged, per tool
    tools: Counter[str] = field(default_factory=Counter)

    def categories(self) -> Counter[str]:
        """Changes per category."""
        return Counter(change.category for change in self.changes)

    def by_policy(self) -> Counter[tuple[str, str]]:
        """Changes per (category, responsible policy): a change two policies make counts
        under each."""
        return Counter(
            (c.category, policy)
            for c in self.changes
            for policy in c.responsible.policies or ("(no policy)",)
        )

    def by_tool(self) -> Counter[tuple[str, str]]:
        """Changes per (category, tool)."""
        return Counter((c.category, c.tool or "(no tool)") for c in self.changes)

    def gate_problems(self, fail_on: Iterable[str]) -> list[str]:
        """Why a CI gate with `--fail-on` fails (none: it passes): the changes it names;
        runs whose tool, capability or budget the candidate dropped (their calls would now
        be refused: a deny), when it names `deny` or `any`; runs, none of them judged; no
        run at all (an empty log, or one whose events belong to no run: a gate that read
        nothing passes nothing)."""
        wanted = set(fail_on)
        problems = []
        failing = self.failing(wanted)
        if failing:
            problems.append(f"{len(failing)} {'change' if len(failing) == 1 else 'changes'}")
        dropped = [u for u in self.failing_runs(wanted) if u.dropped]
        if dropped:
            runs = f"{len(dropped)} {'run' if len(dropped) == 1 else 'runs'}"
            problems.append(f"{runs} the candidate cannot run (it dropped what they use)")
        if self.runs and not self.judged_runs:
            problems.append("no run could be judged")
        if not self.runs:
            problems.append("the logs hold no run (a run's events carry its trace_id)")
        return problems

    def failing_runs(self, fail_on: Iterable[str]) -> list[Unjudged]:
        """The runs not judged that fail the gate (`gate_problems`): those whose tool,
        capability or budget the candidate dropped, when `--fail-on` names `deny` or `any`;
        every one, when none could be judged."""
        if self.runs and not self.judged_runs:
            return list(self.unjudged)
        if not set(fail_on) & {"deny", "any"}:
            return []
        return [u for u in self.unjudged if u.dropped]

    def failing(self, fail_on: Iterable[str]) -> list[Change]:
        """The changes `--fail-on` names: `deny` (to deny), `approval` (to require_approval),
        `allow` (to allow), `any`."""
        wanted = set(fail_on)
        targets = {"deny": "deny", "approval": "require_approval", "allow": "allow"}
        return [
            c
            for c in self.changes
            if "any" in wanted or any(targets.get(w) == c.after.decision for w in wanted)
        ]


class Judge:
    """One program's deciding parts, for replay: its policies (rate limits on the recorded
    clock), capabilities and budgets."""

    def __init__(self, program: Program, name: str, file: str | None = None) -> None:
        self.name = name
        #: the program's file, as its positions name it (`name` when not given)
        self.file = file or name
        self.now = 0.0
        self.policies = PolicySet(program.policies, tools=program.tools, clock=self.clock)
        self.tools = {tool.name for tool in program.tools}
        #: each tool's declared defaults: a recorded call is judged as this program's runtime
        #: would run it (`Runtime.filled`), with the defaults of what it left out
        self.defaults = {tool.name: parameter_defaults(tool.parameters) for tool in program.tools}
        self.capabilities = {c.name: CapabilityCheck(c) for c in program.capabilities}
        self.budgets = {b.name: b for b in program.budgets}
        #: what each session has spent of its budget, as this program would have let it
        #: (`SessionBudget`: the calls it let run), by session
        self.spent: dict[str, SessionBudget] = {}
        #: the calls it would have asked about, until their recorded end says if they ran
        self._asked: dict[tuple[int, str], SessionBudget] = {}
        #: where each policy is declared, and each budget and capability (by the name a
        #: refusal of theirs is reported under: `budget:NAME`, `capability:NAME`)
        self.locs: dict[str, dict[str, Any]] = {
            name: {"file": loc.file, "line": loc.line, "column": loc.column}
            for name, loc in (
                *((p.name, p.loc) for p in program.policies),
                *((f"budget:{b.name}", b.loc) for b in program.budgets),
                *((f"capability:{c.name}", c.loc) for c in program.capabilities),
            )
            if loc is not None
        }

    def clock(self) -> float:
        return self.now

    def problem(
        self, proposal: ActionProposal, undecided: Set[str] = frozenset()
    ) -> tuple[str, str | None] | None:
        """Why this program cannot judge the proposal at all, and the action it is about
        (None: the whole proposal), or None. The actions in `undecided` were refused before
        any decision when recorded (a tool the recording program did not declare either,
        say): nothing of this program's would judge them."""
        for action in proposal.actions:
            if action.id in undecided:
                continue
            if action.type is ActionType.TOOL_CALL and action.tool not in self.tools:
                return f"{self.name} does not declare tool '{action.tool}'", action.id
        if proposal.capability is not None and proposal.capability not in self.capabilities:
            return f"{self.name} does not declare capability '{proposal.capability}'", None
        if proposal.budget is not None and proposal.budget not in self.budgets:
            return f"{self.name} does not declare budget '{proposal.budget}'", None
        return None

    def redacted_reads(self, action: Action) -> list[tuple[str, str]]:
        """(policy, parameter) for each redacted parameter of `action` that one of this
        program's policies reads: its decision was made on `[REDACTED]`, not the value."""
        redacted = [name for name, value in action.parameters.items() if _holds_redacted(value)]
        if not redacted:
            return []
        return [
            (policy, name)
            for policy, reads in self.policies.parameter_readers(action.tool)
            for name in redacted
            if reads is None or name in reads
        ]

    def decide(
        self,
        action: Action,
        proposal: ActionProposal,
        context: _Context,
    ) -> Verdict:
        """What this program decides about `action` in `context`."""
        self.now = context.now
        capability = self.capabilities.get(proposal.capability) if proposal.capability else None
        if capability is not None and action.type is ActionType.TOOL_CALL and action.tool:
            denied = capability.tool_problem(action.tool)
            if denied is not None:
                return self.refusal(f"capability:{proposal.capability}", denied[1])
        budget = self.budgets.get(proposal.budget) if proposal.budget else None
        if budget is not None and context.session_budget is not None:
            return self._session_decide(action, proposal, context, budget)
        if budget is not None:
            if budget.max_actions is not None and context.started >= budget.max_actions:
                return self.refusal(f"budget:{budget.name}", "cost budget exceeded")
            if (
                budget.max_tool_calls is not None
                and action.type is ActionType.TOOL_CALL
                # the calls made, and those started and not ended (each holds its place)
                and context.tool_calls + len(context.reserved) >= budget.max_tool_calls
            ):
                return self.refusal(f"budget:{budget.name}", "cost budget exceeded")
        return self.verdict(self._evaluate(action, proposal, context))

    def _session_decide(
        self, action: Action, proposal: ActionProposal, context: _Context, budget: Budget
    ) -> Verdict:
        """The decision on a call whose budget is its session's: refused once the calls
        this program let run in the session spend it, as the proxy and the loop refuse it;
        a call it lets through spends it."""
        assert context.session_budget is not None
        spent = self.spent.get(context.session_budget)
        if spent is None or spent.budget is not budget:
            spent = SessionBudget(budget, per=context.budget_per)
            self.spent[context.session_budget] = spent
        if action.type is ActionType.TOOL_CALL:
            problem = spent.problem()
            if problem is not None:
                return self.refusal(f"budget:{budget.name}", problem)
        verdict = self.verdict(self._evaluate(action, proposal, context))
        if action.type is ActionType.TOOL_CALL:
            if verdict.decision == "allow":
                spent.spend(True, 0.0)
            elif verdict.decision == "require_approval":  # spent if it ran: the person's answer
                self._asked[(id(context), action.id)] = spent
        return verdict

    def ended(self, context: _Context, action_id: str, status: str) -> None:
        """An action ended as recorded: a call this program would have asked a person about
        spends its session's budget if it ran (the person said yes), as the proxy counts it."""
        spent = self._asked.pop((id(context), action_id), None)
        if spent is not None and status != "rejected":
            spent.spend(True, 0.0)

    def _evaluate(
        self, action: Action, proposal: ActionProposal, context: _Context, explain: bool = False
    ) -> Decision:
        """The policies' decision on `action` in the context it had when it was recorded."""
        defaults = self.defaults.get(action.tool or "")
        if defaults and action.type is ActionType.TOOL_CALL:
            filled = with_defaults(action.parameters, defaults)
            action = action.model_copy(update={"parameters": filled})
        return self.policies.evaluate(
            action,
            proposal_id=proposal.id,
            state=context.state,
            scope=context.scope,
            history=context.history,
            now=datetime.fromtimestamp(context.now, UTC),
            explain=explain,
            admit=not explain,  # explaining again must spend no rate-limit budget
            dropped=context.dropped,
        )

    def refusal(self, by: str, reason: str) -> Verdict:
        """A deny by a budget or a capability (`budget:NAME`), at its declaration."""
        return Verdict("deny", by, reason).located(self.locs)

    def verdict(self, decision: Decision) -> Verdict:
        if decision.allowed:
            return _ALLOW
        first, *more = decision.deciding
        verdict = Verdict(
            decision.effect.value, first.policy, first.reason, also=tuple(m.policy for m in more)
        )
        return verdict.located(self.locs)

    def retried(self, action: Action, context: _Context) -> None:
        """A recorded retry of `action`: another call of its tool, which takes its place in
        the rate limits' windows (`PolicySet.rate_refusal`), as at run time."""
        self.now = context.now
        self.policies.rate_refusal(action)

    def explain(
        self, action: Action, proposal: ActionProposal, context: _Context, verdict: Verdict
    ) -> Verdict:
        """`verdict` (what `decide` said) with the values that decided it (only for the
        examples shown: explaining costs more than deciding; deciding again would spend a
        rate limit's place twice)."""
        if verdict.policy is None or verdict.policy.startswith(("capability:", "budget:")):
            return verdict
        decision = self._evaluate(action, proposal, context, explain=True)
        match: PolicyMatch | None = next(
            (m for m in decision.deciding if m.policy == verdict.policy), None
        )
        if match is None or match.explanation is None:
            return verdict
        return replace(verdict, explanation=str(match.explanation))

    def shadow(self, action: Action, proposal: ActionProposal, context: _Context) -> list[str]:
        """The shadow policies that would decide otherwise than allow, with their effect."""
        shadow = self.policies.shadow
        if shadow is None:
            return []
        decision = shadow.evaluate(
            action,
            proposal_id=proposal.id,
            state=context.state,
            scope=context.scope,
            history=context.history,
            now=datetime.fromtimestamp(context.now, UTC),
            admit=False,
            dropped=context.dropped,
        )
        return [] if decision.allowed else [m.policy for m in decision.deciding]


_ALLOW = Verdict("allow")

#: An action the runtime refused before any policy saw it: a session's budget spent (the
#: assistant loop's, the MCP proxy's), an invalid call, an unknown session. What refused it
#: is not in the program, so it is counted, not re-decided.
_REJECTED_UNDECIDED = (
    "actions rejected before any policy decided (a capability, a session's budget, an invalid"
    " call): not re-decided"
)
_SKIPPED_UNDECIDED = (
    "actions skipped before any policy decided (a spent budget, an earlier abort): not"
    " re-decided (a candidate with a larger budget may run them)"
)


@dataclass(slots=True)
class _Context:
    state: dict[str, Any]
    scope: dict[str, Any]
    history: list[dict[str, Any]]
    now: float = 0.0
    started: int = 0
    tool_calls: int = 0
    #: the `history` entries of the actions admitted and not ended ("running"), by id
    running: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: the tool calls started and not ended: each holds its place in `max_tool_calls`
    reserved: set[str] = field(default_factory=set)
    #: the session whose budget the run's calls spend (`SessionBudget`: an MCP client's
    #: calls through the proxy, a model's in the loop), or None: the run's own budget
    session_budget: str | None = None
    #: what that budget is spent over: the session's calls, or its tenant's (`BUDGET_SCOPES`)
    budget_per: str = "session"
    #: how many earlier entries `history` lacks (a session's trimmed to its limit): the
    #: policies that read it fail closed, as the runtime's did
    dropped: int = 0


def replay(
    runs: Sequence[RecordedProposal],
    candidate: Judge,
    baseline: Judge | None = None,
    *,
    tools: Iterable[str] = (),
    since: float | None = None,
    until: float | None = None,
    run_ids: Iterable[str] = (),
    examples: int = 5,
) -> ReplayReport:
    """Re-decide every recorded action of `runs` with `candidate`, against the recorded
    decisions or, with `baseline`, against the baseline's decisions on the same actions.
    `tools`, `since`, `until` and `run_ids` narrow what is judged and reported; every run
    still rebuilds the state, history and budgets the judged ones see."""
    with without_gc():
        return _replay(runs, candidate, baseline, tools, since, until, set(run_ids), examples)


def _replay(
    runs: Sequence[RecordedProposal],
    candidate: Judge,
    baseline: Judge | None,
    tools: Iterable[str],
    since: float | None,
    until: float | None,
    run_ids: Set[str],
    examples: int,
) -> ReplayReport:
    report = ReplayReport(baseline=baseline.name if baseline is not None else "recorded")
    only_tools = set(tools)
    histories: dict[str, list[dict[str, Any]]] = {}
    dropped: dict[str, int] = {}  # by session: how many entries its history lost
    shown: Counter[str] = Counter()
    for run in runs:
        # A run `run_ids` leaves out is not reported, but it is replayed all the same: the
        # session's history and budget the chosen runs see hold its actions.
        counted = not run_ids or run.run_id in run_ids
        report.runs += counted
        proposal, problem = _proposal(run)
        if proposal is None:
            if counted:
                report.unjudged.append(
                    Unjudged(run.run_id, run.proposal_id, problem, False, problem, run.source)
                )
            continue
        undecided = {
            step[1]
            for step in run.steps
            if step[0] == "end" and step[2] == "rejected" and step[1] not in run.decisions
        }
        refusal = _dropped(run, proposal, undecided, candidate, baseline)
        if refusal is not None:
            if counted:
                report.unjudged.append(refusal)
            continue
        report.judged_runs += counted
        if counted and run.state is None:
            report.notes["runs whose starting state the log does not hold (judged on {})"] += 1
        if counted and run.redacted:
            report.notes["runs with redacted parameters (policies saw [REDACTED])"] += 1
        actions = {action.id: action for action in proposal.actions}
        session_key = run.session if run.session is not None else f"run:{run.run_id}"
        history = histories.setdefault(session_key, [])
        if run.session is not None:  # (as the runtime trims a session's, when a run starts)
            gone = keep_history(history, run.history_limit or HISTORY_LIMIT)
            dropped[session_key] = dropped.get(session_key, 0) + gone
        start = dict(run.state or {})
        context = _Context(dict(start), run.scope, history, dropped=dropped.get(session_key, 0))
        per = proposal.context.get(BUDGET_SCOPE)
        if run.session is not None and per == "session":
            context.session_budget = run.session
        elif per == "tenant":  # (every session of the tenant spends one budget)
            owner, tenant = proposal.context.get(BUDGET_OWNER), (run.scope or {}).get("tenant")
            context.session_budget = f"tenant:{owner!r}:{tenant!r}"
            context.budget_per = "tenant" if tenant is not None else "proxy"

        for step in run.steps:
            if step[0] == "end":
                if counted and step[1] not in run.decisions:
                    if step[2] == "rejected":
                        report.notes[_REJECTED_UNDECIDED] += 1
                    elif step[2] == "skipped":
                        report.notes[_SKIPPED_UNDECIDED] += 1
                _end(step, actions, context)
                for judge in (candidate, baseline):
                    if judge is not None:
                        judge.ended(context, step[1], step[2])
                continue
            if step[0] == "rollback":
                context.state.clear()
                context.state.update(start)
                continue
            if step[0] == "retry":
                retried = actions.get(step[1])
                if retried is not None:
                    context.now = step[2]
                    candidate.retried(retried, context)
                    if baseline is not None:
                        baseline.retried(retried, context)
                continue
            if step[0] == "undo":
                undo = _undo_step(actions, step[1], candidate.defaults)
                if undo is not None:
                    context.history.append(history_entry(undo, step[2]))
                continue
            action = actions.get(step[1])
            recorded = run.decisions.get(step[1])
            context.now = step[2]
            if action is None or recorded is None:
                continue
            judged = (
                counted
                and (not only_tools or action.tool in only_tools)
                and (since is None or context.now >= since)
                and (until is None or context.now <= until)
            )
            after = candidate.decide(action, proposal, context)
            if baseline is not None:
                before = baseline.decide(action, proposal, context)
            else:
                before = Verdict(  # (where its policies are: only for a change, below)
                    recorded.decision,
                    recorded.policies[0] if recorded.policies else None,
                    also=tuple(recorded.policies[1:]),
                )
            context.started += 1
            _admit(action, recorded.decision, context)
            if not judged:
                continue
            report.actions += 1
            report.tools[action.tool or "(no tool)"] += 1
            readers = (
                _note_redacted_reads(report, action, candidate, baseline) if run.redacted else set()
            )
            for policy in candidate.shadow(action, proposal, context):
                report.shadow[(policy, action.tool or "")] += 1
            if after.decision == before.decision:
                report.unchanged += 1
                continue
            deciding = before.deciding | after.deciding
            if deciding and deciding <= readers:
                # decided by policies that read `[REDACTED]`, not the value the recorded run
                # judged: no change can be told (a keyword rule that fired on the value now
                # sees no keyword). A change another policy makes is counted.
                report.notes[
                    f"decisions {before.decision} -> {after.decision} not counted as changes: a"
                    f" policy read a parameter the log redacted"
                ] += 1
                continue
            category = f"{before.decision} -> {after.decision}"
            if baseline is None and before.policies:
                # where the recording program declared them, as the log says (else where
                # the candidate does: an older log recorded no positions)
                before = before.located(recorded.locs, candidate.locs)
            if shown[category] < examples:
                shown[category] += 1
                after = candidate.explain(action, proposal, context, after)
                if baseline is not None:
                    before = baseline.explain(action, proposal, context, before)
            report.changes.append(
                Change(
                    run.run_id,
                    run.proposal_id,
                    action.id,
                    action.tool,
                    run.tenant,
                    context.now,
                    before,
                    after,
                )
            )
    return report


def _dropped(
    run: RecordedProposal,
    proposal: ActionProposal,
    undecided: Set[str],
    candidate: Judge,
    baseline: Judge | None,
) -> Unjudged | None:
    """The run, unjudged, when the candidate (or the baseline) does not declare a tool,
    capability or budget it uses; else None. It counts as dropped (its calls would now be
    refused) when the candidate lacks what the baseline, or the recording, has; a run that
    the baseline cannot run, the candidate able to or not, is only not judged (a trial: runs
    of a tool neither program declares read as "the candidate dropped what they use")."""
    ours = candidate.problem(proposal, undecided)
    theirs = baseline.problem(proposal, undecided) if baseline is not None else None
    if ours is None and theirs is None:
        return None
    if ours is not None:
        judge, (cause, action_id) = candidate, ours
    else:
        assert baseline is not None and theirs is not None
        judge, (cause, action_id) = baseline, theirs
    reason = cause if action_id is None else f"{cause} (action {action_id})"
    # dropped: the candidate lacks something the baseline (or the recording) has; the
    # baseline lacking the same is no drop (a review: one lacking another thing hid it)
    dropped = ours is not None and (
        theirs is None
        or baseline is None
        or theirs[0].removeprefix(baseline.name) != ours[0].removeprefix(candidate.name)
    )
    if not dropped:
        which = "neither program can run it" if ours is not None else "the baseline cannot run it"
        reason = f"{reason}; {which}"
    return Unjudged(
        run.run_id, run.proposal_id, reason, dropped, cause, judge.file, in_program=True
    )


def _note_redacted_reads(
    report: ReplayReport, action: Action, candidate: Judge, baseline: Judge | None
) -> set[str | None]:
    """Count the decisions a policy made on a parameter the log redacted: replay cannot know
    what the policy would have decided on the real value. The names of those policies."""
    found = set(candidate.redacted_reads(action))
    if baseline is not None:
        found.update(baseline.redacted_reads(action))
    for policy, name in sorted(found):
        report.notes[
            f"decisions where policy `{policy}` reads parameter `{name}`, which the log "
            f"redacted (judged on {REDACTED}, not its value)"
        ] += 1
    return {policy for policy, _ in found}


def _holds_redacted(value: Any) -> bool:
    """Whether a parameter value is, or holds somewhere inside, the redaction marker."""
    if value == REDACTED:
        return True
    if isinstance(value, dict):
        return any(_holds_redacted(item) for item in value.values())
    if isinstance(value, list):
        return any(_holds_redacted(item) for item in value)
    return False


def _context_of(document: dict[str, Any]) -> dict[str, Any]:
    """A recorded proposal's `context` (what replay reads of it: `BUDGET_SCOPE`)."""
    context = document.get("context")
    return dict(context) if isinstance(context, dict) else {}


def _proposal(run: RecordedProposal) -> tuple[ActionProposal | None, str]:
    document = run.document
    if document is None:
        return None, (
            "the log holds no proposal for it (was it written by a runtime without a sink?)"
        )
    try:
        # Built without validation (the runtime wrote it from a validated proposal): replay
        # reads only what deciding needs, and validating 100,000 actions would cost seconds.
        actions = [_action(entry) for entry in document["actions"]]
        return (
            construct(
                ActionProposal,
                {
                    **_PROPOSAL_DEFAULTS,
                    "id": str(document.get("id", run.proposal_id)),
                    "actions": actions,
                    "capability": document.get("capability"),
                    "budget": document.get("budget"),
                    "context": _context_of(document),
                },
            ),
            "",
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        pass
    try:
        return ActionProposal.model_validate(document), ""
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return None, f"the recorded proposal is not valid: {where}: {first['msg']}"


def _action(entry: dict[str, Any]) -> Action:
    # (absent: {}; null is no proposal the runtime wrote: a damaged log, which the validated
    # path below reports rather than a run judged on parameters it did not have)
    parameters = entry.get("parameters", {})
    metadata = entry.get("metadata", {})
    if not isinstance(parameters, dict) or not isinstance(metadata, dict):
        raise TypeError("parameters and metadata are maps")
    return construct(
        Action,
        {
            **_ACTION_DEFAULTS,
            "id": str(entry["id"]),
            "type": _TYPES[entry["type"]],
            "tool": entry.get("tool"),
            "parameters": parameters,
            "metadata": metadata,
            # (rare, so validated: what an undo step calls, `Action.undo_call`)
            "compensation": _COMPENSATION.validate_python(entry["compensation"])
            if entry.get("compensation") is not None
            else None,
            "max_retries": entry.get("max_retries", 3),
            "timeout_ms": entry.get("timeout_ms"),
        },
        _ACTION_FIELDS,
    )


_COMPENSATION: TypeAdapter[Compensation] = TypeAdapter(Compensation)


# Every field's default, made once (`construct` needs every field; replay changes none of
# the shared defaults).
_ACTION_DEFAULTS: dict[str, Any] = dict(Action(id="-", type=ActionType.TOOL_CALL).__dict__)
_ACTION_FIELDS = set(Action.model_fields)
_TYPES: dict[str, ActionType] = {kind.value: kind for kind in ActionType}
_PROPOSAL_DEFAULTS: dict[str, Any] = dict(ActionProposal(id="-", actions=[]).__dict__)


def _undo_step(
    actions: dict[str, Action], action_id: str, defaults: dict[str, dict[str, Any]]
) -> Action | None:
    """The undo step of `action_id` as the runtime ran it (`Action.undo_call`), with the
    defaults of the parameters it leaves out; None when the recorded proposal has none."""
    action = actions.get(action_id)
    undo = action.undo_call(actions.get) if action is not None else None
    if not isinstance(undo, Action):
        return None
    filled = with_defaults(undo.parameters, defaults.get(undo.tool or "") or {})
    return undo.model_copy(update={"parameters": filled})


def _end(step: tuple[Any, ...], actions: dict[str, Action], context: _Context) -> None:
    _, action_id, status, changes, called = step
    if isinstance(changes, dict):  # CAR's state_changes: {key: {"op": "set", "value": v}}
        for key, change in changes.items():
            if not isinstance(change, dict):
                continue
            if change.get("op") == "delete":
                context.state.pop(key, None)
            else:
                context.state[key] = change.get("value")
    action = actions.get(action_id)
    if action is None:
        return
    if called and action.type is ActionType.TOOL_CALL:
        context.tool_calls += 1
    context.reserved.discard(action_id)
    entry = context.running.pop(action_id, None)
    if entry is not None:
        entry["status"] = status  # the entry it had since it was admitted
        return
    context.history.append(history_entry(action, status))


def _admit(action: Action, decision: str, context: _Context) -> None:
    """After an action's decision, what the runtime's admission took: a tool call's place in
    `max_tool_calls` (from its start to its end, as `ProposalRun.settled` reserves it), and,
    unless the recorded run denied it, its `history` entry, "running" until it ends."""
    if action.type is ActionType.TOOL_CALL:
        context.reserved.add(action.id)
    if decision == "deny":
        return  # refused: in history once it ends ("rejected"), as the runtime has it
    entry = history_entry(action, RUNNING)
    context.running[action.id] = entry
    context.history.append(entry)
