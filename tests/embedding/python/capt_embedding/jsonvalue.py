"""JSON values as the Rust host (serde_json without ``preserve_order``) treats them.

RFC 7396 merge, structural equality that keeps booleans, integers and floats apart (as
``serde_json::Value`` does), canonical text with keys in code-point order, and the partial
matcher of scenario expectations (``host/core/src/scenario/matching.rs``).
"""

from __future__ import annotations

import copy
import json
from typing import Any, Optional

#: An absent value (a missing key), as opposed to JSON ``null`` (``None``).
ABSENT = object()


def is_object(value: Any) -> bool:
    return isinstance(value, dict)


def clone(value: Any) -> Any:
    return copy.deepcopy(value)


def merge(target: Any, patch: Any) -> Any:
    """RFC 7396: merges ``patch`` into ``target`` (in place when it is an object) and returns
    the result (``json_patch::merge``)."""
    if not isinstance(patch, dict):
        return clone(patch)
    doc = target if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = merge(doc.get(key), value)
    return doc


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def equal(a: Any, b: Any) -> bool:
    """``serde_json::Value`` equality: ``1``, ``1.0`` and ``true`` are three different values."""
    kind = _kind(a)
    if kind != _kind(b):
        return False
    if kind == "array":
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b))
    if kind == "object":
        return a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)
    return a == b


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads(text: str) -> Any:
    """Strict JSON parsing (no ``NaN``/``Infinity`` literals, unlike Python's default)."""
    return json.loads(text, parse_constant=_reject_constant)


def canonical(value: Any) -> str:
    """Compact JSON text with object keys in code-point order, as serde_json prints a
    ``Value``."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False)


# ---- partial matching (matching.rs) -----------------------------------------------------------


def mismatches(expected: Any, actual: Any) -> list[str]:
    """Every way ``actual`` (:data:`ABSENT` when missing) fails to match ``expected``. Maps match
    as subsets, lists element-to-distinct-element in any order, ``null`` means absent."""
    out: list[str] = []
    _collect(out, "", expected, actual)
    return out


def matches(expected: Any, actual: Any) -> bool:
    return not mismatches(expected, actual)


def _absent_matches(expected: Any) -> bool:
    """True when an absent value matches ``expected``: ``null``, or a non-empty map whose values
    all match an absent value (``status: {ready: null}`` matches an object without a status)."""
    if expected is None:
        return True
    return isinstance(expected, dict) and bool(expected) and all(_absent_matches(v) for v in expected.values())


def _collect(out: list[str], path: str, expected: Any, actual: Any) -> None:
    at = path or "."
    if expected is None:
        if actual is not ABSENT and actual is not None:
            out.append(f"at {at}: expected no value, got {short(actual)}")
        return
    if actual is ABSENT:
        if not _absent_matches(expected):
            out.append(f"at {at}: missing, expected {short(expected)}")
        return
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key, value in expected.items():
            _collect(out, f"{path}.{key}", value, actual.get(key, ABSENT))
        return
    if isinstance(expected, list) and isinstance(actual, list):
        assignment = _assign(expected, actual)
        for i, (element, assigned) in enumerate(zip(expected, assignment)):
            if assigned is not None:
                continue
            candidates = sum(1 for a in actual if matches(element, a))
            if candidates == 0:
                out.append(f"at {at}: no element matches expected element [{i}] {short(element)}")
            else:
                out.append(
                    f"at {at}: expected element [{i}] {short(element)} only matches elements "
                    "already matched by others"
                )
        return
    if _scalar_equal(expected, actual):
        return
    out.append(f"at {at}: expected {short(expected)}, got {short(actual)}")


def _scalar_equal(expected: Any, actual: Any) -> bool:
    ek, ak = _kind(expected), _kind(actual)
    if ek in ("object", "array"):
        return False
    if ek in ("int", "float") and ak in ("int", "float"):
        # Numbers compare by value (`1` matches `1.0`).
        return expected == actual or float(expected) == float(actual)
    return ek == ak and expected == actual


def _assign(expected: list, actual: list) -> list[Optional[int]]:
    """For each expected element, the distinct actual element it is matched to: a maximum
    bipartite matching by augmenting paths, as in matching.rs."""
    fits = [[matches(e, a) for a in actual] for e in expected]
    owner: list[Optional[int]] = [None] * len(actual)

    def augment(e: int, visited: list[bool]) -> bool:
        for a in range(len(actual)):
            if fits[e][a] and not visited[a]:
                visited[a] = True
                if owner[a] is None or augment(owner[a], visited):
                    owner[a] = e
                    return True
        return False

    for e in range(len(expected)):
        augment(e, [False] * len(actual))
    assignment: list[Optional[int]] = [None] * len(expected)
    for a, e in enumerate(owner):
        if e is not None:
            assignment[e] = a
    return assignment


def short(value: Any) -> str:
    """A value on one line, cut to 120 characters."""
    text = canonical(value)
    return text if len(text) <= 120 else text[:120] + "..."
