"""The carlang grammar's parse engine: grammar/carlang.lark compiled by lark into tables that
are checked in (carlang/grammar_tables.json) and run by `carlang_runtime.lalr` without lark.

Regenerate the tables after changing the grammar: `python -m carlang.syntax` (a test fails
while they are stale; until then a changed grammar is compiled with lark at start-up).
"""

from __future__ import annotations

from pathlib import Path

from carlang_runtime.lalr import Engine, Recovery, Tables, build_tables, load_tables

from .grammar import grammar_text

__all__ = ["DECLARATION_KEYWORDS", "RULE_KEYWORDS", "TABLES_PATH", "engine", "fresh_tables"]

TABLES_PATH = Path(__file__).resolve().parent / "grammar_tables.json"

#: Keywords that start a built-in rule (each named by its keyword: `deny_tool:shell`).
RULE_KEYWORDS = frozenset(
    {
        "deny_tool",
        "deny_keyword",
        "deny_tool_param",
        "allow_tool_param",
        "deny_tool_param_matching",
        "rate_limit_tool",
        "require_state",
    }
)
#: Keywords that start a top-level declaration; error recovery resumes at one of them when it
#: is the first thing on its line.
DECLARATION_KEYWORDS = RULE_KEYWORDS | frozenset(
    {
        "tool",
        "mcp_server",
        "state",
        "capability",
        "budget",
        "policy",
        "redact",
        "proposal",
        "plan",
        "test",
        "import",
    }
)

_ENGINE: Engine | None = None


def fresh_tables() -> Tables:
    """The grammar's tables, built now with lark."""
    return build_tables(grammar_text(), "start", maybe_placeholders=True)


def engine() -> Engine:
    """The process-wide engine for the carlang grammar."""
    global _ENGINE
    if _ENGINE is None:
        tables = load_tables(TABLES_PATH, grammar_text(), "start", maybe_placeholders=True)
        _ENGINE = Engine(
            tables,
            ident="IDENT",
            comment="COMMENT",
            recovery=Recovery(DECLARATION_KEYWORDS, probe="TOOL", marker="proposal_decl"),
        )
    return _ENGINE


if __name__ == "__main__":
    TABLES_PATH.write_text(fresh_tables().to_json(), encoding="utf-8")
    print(f"wrote {TABLES_PATH}")
