"""A Pygments lexer for carlang (`pygmentize -l carlang file.car`; registered as the entry
point `pygments.lexers: carlang`), with a policy's `when` condition lexed as CEL. Pygments comes
with rich (the CLI's output), so the lexer needs nothing more."""

from __future__ import annotations

from typing import ClassVar

from pygments.lexer import RegexLexer, bygroups, include, words
from pygments.token import (
    Comment,
    Keyword,
    Name,
    Number,
    Operator,
    Punctuation,
    String,
    Text,
    Whitespace,
)

__all__ = ["CarlangLexer"]

_DECLARATIONS = (
    "import",
    "tool",
    "state",
    "capability",
    "budget",
    "policy",
    "proposal",
    "plan",
    "test",
)
_RULES = (
    "deny_tool_param_matching", "deny_tool_param", "allow_tool_param", "deny_tool",
    "deny_keyword", "rate_limit_tool", "require_state",
)  # fmt: skip
_KEYWORDS = (
    "description", "idempotent", "cache", "rate", "per", "reversibility", "reversible",
    "compensable", "irreversible", "tools", "max_actions", "max_tool_calls", "max_duration",
    "approval_timeout",
    "message", "equals", "contains", "from", "under", "context", "after", "requires", "reads",
    "effects", "retry", "on_failure", "timeout", "compensate", "with", "meta", "mode", "abort",
    "skip", "one_shot", "streaming", "long_running", "set", "read", "assert", "exists", "not",
    "candidates", "cost_weight", "target", "tool_calls", "actions", "duration", "action", "scope",
    "history", "now", "expect", "by", "valid", "invalid", "codes", "winner", "where",
    "deny", "require_approval", "allow",
)  # fmt: skip
_TYPES = ("string", "int", "float", "bool", "any", "object", "list", "map")


class CarlangLexer(RegexLexer):  # type: ignore[misc]  # pygments has no types
    """carlang plans and policies (`.car`)."""

    name = "carlang"
    aliases: ClassVar[list[str]] = ["carlang", "car"]
    filenames: ClassVar[list[str]] = ["*.car"]
    mimetypes: ClassVar[list[str]] = ["text/x-carlang"]
    url = "https://github.com/carlang/carlang"

    tokens: ClassVar[dict[str, list]] = {  # type: ignore[type-arg]
        "root": [
            (r"[ \t\r\f]+", Whitespace),
            (r"\n", Whitespace),
            (r"#.*?$", Comment.Single),
            (r"\bwhen\b", Keyword, "cel"),
            (r'"(?:[^"\\\n]|\\.)*"', String.Double),
            (r"\d+(?:ms|s|m|h)\b", Number),
            (r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?", Number),
            (r"\$[A-Za-z_]\w*", Name.Variable),
            (words(("true", "false", "null"), suffix=r"\b"), Keyword.Constant),
            (
                r"\b(tool|capability|budget|proposal|plan)(\s+)([A-Za-z_][\w.]*)",
                bygroups(Keyword.Declaration, Whitespace, Name.Class),
            ),
            (
                r"\b(policy)(\s+)([A-Za-z_]\w*)",
                bygroups(Keyword.Declaration, Whitespace, Name.Class),
            ),
            (words(_DECLARATIONS, prefix=r"\b", suffix=r"\b"), Keyword.Declaration),
            (words(_RULES, prefix=r"\b", suffix=r"\b"), Keyword.Declaration),
            (words(_TYPES, prefix=r"\b", suffix=r"\b(?!\s*\()"), Keyword.Type),
            (words(_KEYWORDS, prefix=r"\b", suffix=r"\b"), Keyword),
            (r"[A-Za-z_][\w.]*(?=\s*\()", Name.Function),
            (r"[A-Za-z_*][A-Za-z0-9_.*]*", Name),
            (r"->|==|!=|>=|<=|[<>=|?-]", Operator),
            (r"[{}()\[\],:]", Punctuation),
        ],
        # A policy condition: CEL to the end of the line or a comment; brackets may continue it.
        "cel": [
            (r"[ \t]+", Whitespace),
            (r"(?=#)|\n", Whitespace, "#pop"),
            include("cel-expression"),
        ],
        "cel-group": [
            (r"[)\]]", Punctuation, "#pop"),
            (r"\s+", Whitespace),
            include("cel-expression"),
        ],
        "cel-expression": [
            (r"[(\[]", Punctuation, "cel-group"),
            (r'"(?:[^"\\\n]|\\.)*"', String.Double),
            (r"'(?:[^'\\\n]|\\.)*'", String.Single),
            (r"\d+(?:\.\d+)?(?:[eE][+-]?\d+)?u?", Number),
            (words(("true", "false", "null"), suffix=r"\b"), Keyword.Constant),
            (r"\bin\b", Operator.Word),
            (
                words(("action", "params", "state", "scope", "history", "now"), suffix=r"\b"),
                Name.Builtin,
            ),
            (r"[A-Za-z_]\w*(?=\s*\()", Name.Function),
            (r"[A-Za-z_]\w*", Name),
            (r"&&|\|\||==|!=|<=|>=|[<>!+\-*/%?:]", Operator),
            (r"[.,{}]", Punctuation),
            (r"[^\s]", Text),
        ],
    }
