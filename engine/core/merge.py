"""How a concurrence merges its branches' workitems (spec section 2.1).

``merge`` decides which reply wins on conflicting keys; ``merge_type``
decides how the fields combine. Pure functions over JSON-like values.
"""

from __future__ import annotations

from typing import Any

MERGES = ("first", "last", "highest", "lowest")
MERGE_TYPES = ("override", "mix", "isolate", "stack", "union", "concat", "deep", "ignore")


def rank(replies: list[tuple[int, int, dict[str, Any]]], merge: str) -> list[tuple[int, dict]]:
    """Order ``(branch_index, arrival_order, fields)`` replies from the winner
    down; returns ``(branch_index, fields)`` pairs."""
    if merge == "first":
        ordered = sorted(replies, key=lambda r: r[1])
    elif merge == "last":
        ordered = sorted(replies, key=lambda r: -r[1])
    elif merge == "highest":
        ordered = sorted(replies, key=lambda r: r[0])
    elif merge == "lowest":
        ordered = sorted(replies, key=lambda r: -r[0])
    else:
        raise ValueError(f"unknown merge {merge!r}")
    return [(r[0], r[2]) for r in ordered]


def _combine(low: Any, high: Any, lists: str, depth: int | None) -> Any:
    """Put ``high`` on top of ``low``. ``lists``: "union" or "concat";
    ``depth``: how many mapping levels merge (None = all)."""
    if isinstance(low, dict) and isinstance(high, dict) and (depth is None or depth > 0):
        out = dict(low)
        for k, v in high.items():
            if k in out:
                out[k] = _combine(out[k], v, lists, None if depth is None else depth - 1)
            else:
                out[k] = v
        return out
    if isinstance(low, list) and isinstance(high, list):
        if lists == "concat":
            return low + high
        out: list[Any] = []
        for item in (*low, *high):  # a union keeps each value once (ruote's uniq!)
            if item not in out:
                out.append(item)
        return out
    return high


def merge_fields(
    replies: list[tuple[int, int, dict[str, Any]]],
    merge: str,
    merge_type: str,
    applied: dict[str, Any],
) -> dict[str, Any]:
    """The fields a concurrence replies with."""
    if merge_type == "ignore" or not replies:
        return applied
    ranked = rank(replies, merge)
    if merge_type == "override":
        return ranked[0][1]
    if merge_type == "isolate":
        return {str(idx): fields for idx, fields in sorted(ranked, key=lambda r: r[0])}
    if merge_type == "stack":
        return {"stack": [fields for _, fields in ranked]}
    # the others fold from the lowest-ranked reply up to the winner
    out: dict[str, Any] = {}
    for _, fields in reversed(ranked):
        if merge_type == "mix":
            out = {**out, **fields}
        elif merge_type == "union":
            out = _combine(out, fields, "union", 2)
        elif merge_type == "concat":
            out = _combine(out, fields, "concat", 2)
        elif merge_type == "deep":
            out = _combine(out, fields, "concat", None)
        else:
            raise ValueError(f"unknown merge_type {merge_type!r}")
    return out
