"""What `verify` returns: CAR's `VerifyResult` keys, with a `code` and `check` on every issue."""

# No `from __future__ import annotations`: pydantic reads the annotations to define each
# model's fields, and evaluating them from text would cost every start-up (issue 18).
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..ir import SourceLoc
from ..ir._base import omit_none
from .codes import Severity, Tier

__all__ = ["VerifyIssue", "CheckRecord", "Evidence", "VerifyResult"]


class VerifyIssue(BaseModel):
    """One finding. `action_id` is `"proposal"` for proposal-level findings, as in CAR."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    action_id: str
    severity: Severity
    message: str
    tier: Tier = "decision_procedure"
    check: str
    code: str
    #: Where the action was written, when the proposal came from carlang source.
    loc: SourceLoc | None = Field(default=None, exclude_if=omit_none)
    #: A hint for fixing it ("did you mean 'fetch'?"); kept out of `message`, which stays
    #: word for word CAR's.
    help: str | None = Field(default=None, exclude_if=omit_none)
    #: What inside the action the finding is about, as an IR path (`parameters.url`,
    #: `preconditions[0]`, `depends_on[1]`, `state_key:build.ok`), for mapping back to source.
    path: str | None = Field(default=None, exclude_if=omit_none)

    def __str__(self) -> str:
        return f"{self.severity}[{self.code}] {self.action_id}: {self.message}"


class CheckRecord(BaseModel):
    """What one check verifies, what it cannot, whether it ran and how many findings it made.

    Frozen, like `VerifyIssue`: a record states a fact of one verification, and verify shares
    the records of checks without findings between results (16 models a verify need not make)."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    name: str
    ran: bool
    verifies: str
    cannot_verify: str
    findings: int
    tier: Tier


class Evidence(BaseModel):
    """The verifier's declared scope, so a `valid` verdict says what was and was not checked."""

    model_config = ConfigDict(defer_build=True)

    checks: list[CheckRecord]
    assumptions: list[str]
    residual_risks: list[str]


class VerifyResult(BaseModel):
    """The verdict. `valid` is false exactly when some issue is an error."""

    model_config = ConfigDict(defer_build=True)

    valid: bool
    issues: list[VerifyIssue]
    simulated_state: dict[str, Any]
    execution_levels: list[list[str]]
    conflicts: list[tuple[str, str, str]]
    evidence: Evidence

    def errors(self) -> list[VerifyIssue]:
        """The issues of severity error."""
        return [i for i in self.issues if i.severity == "error"]

    def warnings(self) -> list[VerifyIssue]:
        """The issues of severity warning."""
        return [i for i in self.issues if i.severity == "warning"]

    def codes(self) -> list[str]:
        """The codes of all issues, in order."""
        return [i.code for i in self.issues]
