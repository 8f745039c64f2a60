"""`carlang run`'s approval question, through a real pseudo-terminal (pexpect): the live
display is paused while it asks, the question shows the tool, its parameters (secrets
redacted) and the policy, and y/n/a/q work."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from carlang.cli.approval_prompt import REDACTED, describe_request, redact_parameters
from tests.conftest import ROOT

pexpect = pytest.importorskip(
    "pexpect", reason="pexpect is not installed (pip install -e '.[test]')"
)

PROGRAM = """\
tool pay(amount: int, account: string)
policy big: require_approval pay when params.amount > 10
  message "payments over 10 need a human"

proposal payday {
  a = pay(amount: 20, account: "acme")
  b = pay(amount: 30, account: "bolt")
  c = pay(amount: 40, account: "coda")
}
"""

TOOLS = """\
import time

def pay(amount, account):
    time.sleep(0.05)
    return f"paid {amount} to {account}"

TOOLS = {"pay": pay}
"""

PROMPT = r"approve\? \[y\]es / \[N\]o / \[a\]ll / \[q\]uit: "


def spawn(tmp_path: Path, columns: int) -> pexpect.spawn:
    (tmp_path / "pay.car").write_text(PROGRAM)
    (tmp_path / "tools.py").write_text(TOOLS)
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'runtime'}", "TERM": "xterm"}
    env.pop("NO_COLOR", None)
    return pexpect.spawn(
        sys.executable,
        ["-m", "carlang", "run", "pay.car", "--tools", "tools.py:TOOLS"],
        cwd=str(tmp_path),
        env=env,
        dimensions=(40, columns),
        encoding="utf-8",
        timeout=30,
    )


def quiet_while_asking(child: pexpect.spawn) -> None:
    """Nothing is drawn over the question while it waits (the live bar redraws at 10 Hz)."""
    with pytest.raises(pexpect.TIMEOUT):
        child.read_nonblocking(size=1000, timeout=0.6)


@pytest.mark.slow
@pytest.mark.parametrize("columns", [220, 120])
def test_the_question_shows_the_call_and_is_not_overwritten(tmp_path: Path, columns: int) -> None:
    child = spawn(tmp_path, columns)
    child.expect(r"approval needed: action ([abc]) of proposal payday")
    first = child.match.group(1)
    child.expect(r"tool: +pay")
    child.expect(r"amount: (\d+)")
    child.expect(r'account: "\w+"')
    child.expect(r"policy: big: payments over 10 need a human")
    child.expect(PROMPT)
    quiet_while_asking(child)
    child.sendline("maybe")
    child.expect("answer y, n, a or q")
    child.expect(PROMPT)
    child.sendline("y")
    child.expect(r"approval needed: action ([abc])")
    assert child.match.group(1) != first
    child.expect(PROMPT)
    quiet_while_asking(child)
    child.sendline("a")  # this one and the rest of the run
    child.expect(pexpect.EOF)
    child.close()
    output = child.before
    assert "approval needed" not in output  # the third was not asked
    assert "3 succeeded" in output
    assert child.exitstatus == 0


@pytest.mark.slow
def test_no_refuses_the_action(tmp_path: Path) -> None:
    child = spawn(tmp_path, 100)
    child.expect(PROMPT)
    child.sendline("n")
    child.expect(pexpect.EOF)
    child.close()
    assert "refused at the terminal" in child.before and "1 rejected" in child.before
    assert child.exitstatus == 1


@pytest.mark.slow
def test_quit_refuses_this_and_every_later_request(tmp_path: Path) -> None:
    child = spawn(tmp_path, 100)
    child.expect(PROMPT)
    child.sendline("q")
    child.expect(pexpect.EOF)
    child.close()
    assert "approval needed" not in child.before
    assert "refused at the terminal (quit)" in child.before and child.exitstatus == 1


def test_secret_parameters_are_redacted_in_the_question() -> None:
    schema = {
        "type": "object",
        "properties": {
            "account": {"type": "string"},
            "token": {"type": "string", "writeOnly": True},
            "auth": {
                "type": "object",
                "properties": {"key": {"type": "string", "x-carlang-secret": True}},
            },
        },
    }
    params = {"account": "acme", "token": "sk-live-123", "auth": {"key": "k-9", "user": "bo"}}
    assert redact_parameters(params, schema) == {
        "account": "acme",
        "token": REDACTED,
        "auth": {"key": REDACTED, "user": "bo"},
    }
    action = SimpleNamespace(id="a", tool="pay", parameters=params, type=None)
    match = SimpleNamespace(policy="big", reason="payments over 10 need a human")
    request = SimpleNamespace(action=action, proposal_id="payday", policies=(match,))
    text = describe_request(request, {"pay": schema})
    assert "sk-live-123" not in text and "k-9" not in text
    assert 'token: "[REDACTED]"' in text and "policy: big: payments over 10 need a human" in text
