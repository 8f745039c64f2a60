"""Types of the optional C speedups (`_speedups.c`); import them through `speedups.native`."""

from typing import Any

ABI: int

def decode_proposals(
    text: str | bytes, many: bool, schema: tuple[Any, ...], /
) -> (
    tuple[dict[str, Any], int, dict[str, list[Any]]]
    | list[tuple[dict[str, Any], int, dict[str, list[Any]]]]
    | None
): ...
def effect_writers(effects: list[dict[str, Any]], /) -> dict[str, int]: ...
def merged_state(
    state: dict[str, Any],
    effects: list[dict[str, Any]],
    levels: list[list[int]],
    keys: int,
    /,
) -> dict[str, Any]: ...
def edges_levels(
    dependencies: list[list[str]], writer: dict[str, int], no_deps: list[int], /
) -> tuple[list[int | list[int]], list[list[int]], bool]: ...
def lalr_run(run: Any, constants: tuple[Any, Any, Any, Any], /) -> Any: ...
