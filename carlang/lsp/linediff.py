"""The lines `fmt` changes, as blocks small enough to format a range of lines with.

`difflib` gives one block for a run of changed lines: `tool t(x: int)   {}` and the `tool u`
under it, both reformatted, are one block of two lines, and a range over `tool u` alone would
rewrite `tool t` too. Formatting changes layout, not what is written, so a block is cut where
its old and new lines hold the same text apart from whitespace, on both sides of the cut
(`cut_block`); a range then takes the pieces that lie inside it (`changed_lines`).
"""

from __future__ import annotations

import difflib

__all__ = ["Block", "changed_lines", "changed_by_characters", "cut_block"]

#: `(a1, a2, b1, b2)`: old lines `a1..a2` (end excluded) become new lines `b1..b2`.
Block = tuple[int, int, int, int]


def changed_lines(
    old: list[str], new: list[str], first: int, last: int, *, bare: bool = True
) -> list[Block]:
    """The blocks of lines that change from `old` to `new` and lie within old lines
    `first..last` (both included): the blocks that cross the range's edges are cut as finely as
    their text allows, and the pieces outside left out. An inserted block counts when it goes
    before one of the lines of the range. Lines are paired by their text without whitespace
    (`bare`), else by their whole text."""
    found = []
    # Paired by their text without whitespace, which is most of what formatting changes:
    # paired by their whole text, the old `}` of a block re-indented matched the new `}`
    # closing the block around it, and the lines between were taken as one change that moved
    # a statement, which a range then wrote twice. Either pairing can meet a `}` that is not
    # its own: the caller checks the edits (and tries the other pairing).
    keys = (_bare(old), _bare(new)) if bare else (old, new)
    matcher = difflib.SequenceMatcher(a=keys[0], b=keys[1], autojunk=False)
    for tag, a1, a2, b1, b2 in matcher.get_opcodes():
        if a2 < first or a1 > last:
            continue
        if tag == "equal":  # re-indented or re-spaced lines: each on its own
            pieces = [
                (a1 + k, a1 + k + 1, b1 + k, b1 + k + 1)
                for k in range(a2 - a1)
                if old[a1 + k] != new[b1 + k]
            ]
        elif a1 < first or a2 > last + 1:
            pieces = cut_block(old, new, (a1, a2, b1, b2))
        else:
            pieces = [(a1, a2, b1, b2)]
        found += [piece for piece in pieces if _inside(piece, first, last)]
    return found


def changed_by_characters(old: list[str], new: list[str], first: int, last: int) -> list[Block]:
    """`changed_lines` with no pairing of lines: the lines from the first that differs to the
    last are one block, cut where its characters (whitespace left out) allow (`cut_block`).
    Slower, for when neither pairing of lines gives edits that keep the text's meaning (a
    `}` on a line of its own paired with another block's)."""
    start = 0
    while start < min(len(old), len(new)) and old[start] == new[start]:
        start += 1
    end_old, end_new = len(old), len(new)
    while end_old > start and end_new > start and old[end_old - 1] == new[end_new - 1]:
        end_old, end_new = end_old - 1, end_new - 1
    if start == end_old and start == end_new:
        return []
    pieces = cut_block(old, new, (start, end_old, start, end_new))
    return [piece for piece in pieces if _inside(piece, first, last)]


def _bare(lines: list[str]) -> list[str]:
    """Each line without its whitespace."""
    return ["".join(line.split()) for line in lines]


def _inside(block: Block, first: int, last: int) -> bool:
    a1, a2, _b1, _b2 = block
    if a1 == a2:
        return first <= a1 <= last
    return first <= a1 and a2 <= last + 1


def cut_block(old: list[str], new: list[str], block: Block) -> list[Block]:
    """`block` cut between old lines wherever the text before the cut (whitespace left out)
    becomes only new lines before a matching cut, and the text after it only new lines
    after; the pieces that do not change are left out."""
    a1, a2, b1, b2 = block
    old_chars, old_lines = _characters(old, a1, a2)
    new_chars, new_lines = _characters(new, b1, b2)
    # per old line: the first and last new line its characters end up on (when they do)
    lowest: dict[int, int] = {}
    highest: dict[int, int] = {}
    matcher = difflib.SequenceMatcher(a=old_chars, b=new_chars, autojunk=False)
    for i, j, size in matcher.get_matching_blocks():
        for k in range(size):
            line, to = old_lines[i + k], new_lines[j + k]
            lowest[line] = min(lowest.get(line, to), to)
            highest[line] = max(highest.get(line, to), to)
    # suffix[i]: the first new line that the old lines from i on reach
    suffix = [b2] * (a2 - a1 + 1)
    for line in range(a2 - 1, a1 - 1, -1):
        suffix[line - a1] = min(suffix[line - a1 + 1], lowest.get(line, b2))
    pieces: list[Block] = []
    start_old, start_new, reached = a1, b1, b1 - 1
    for line in range(a1, a2 - 1):
        reached = max(reached, highest.get(line, reached))
        if suffix[line + 1 - a1] > reached:  # a cut after old `line` and new `reached`
            pieces.append((start_old, line + 1, start_new, reached + 1))
            start_old, start_new = line + 1, reached + 1
    pieces.append((start_old, a2, start_new, b2))
    return [p for p in pieces if old[p[0] : p[1]] != new[p[2] : p[3]]]


def _characters(lines: list[str], start: int, end: int) -> tuple[str, list[int]]:
    """The characters of `lines[start:end]` that are not whitespace, and the line of each."""
    chars: list[str] = []
    where: list[int] = []
    for index in range(start, end):
        for char in lines[index]:
            if not char.isspace():
                chars.append(char)
                where.append(index)
    return "".join(chars), where
