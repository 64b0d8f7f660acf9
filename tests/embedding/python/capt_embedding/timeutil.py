"""Scenario time: Go-style durations (``host/core/src/scenario/duration.rs``) and RFC 3339 instants,
both as integer nanoseconds so that ``after:`` arithmetic is exact."""

from __future__ import annotations

import calendar
import datetime
import json
import re

_NANOS_PER_UNIT = {
    "ns": 1.0,
    "us": 1e3,
    "µs": 1e3,
    "μs": 1e3,
    "ms": 1e6,
    "s": 1e9,
    "m": 60e9,
    "h": 3600e9,
}
_U64_MAX = 18446744073709551615
_NUMBER = re.compile(r"^(\d+\.?\d*|\.\d+)$")


def parse_duration(text: str) -> int:
    """Parses a Go duration (``90s``, ``1h30m``, ``1.5h``, ``250ms``; ``0``) into nanoseconds,
    with the Rust host's arithmetic (a sum of doubles, rounded half away from zero)."""

    def invalid(why: str) -> ValueError:
        return ValueError(
            f"invalid duration {json.dumps(text, ensure_ascii=False)}: {why} "
            "(examples: 90s, 16m, 1h30m, 250ms)"
        )

    if text == "0":
        return 0
    if text == "":
        raise invalid("empty")
    rest = text
    total = 0.0
    while rest:
        m = re.search(r"[^0-9.]", rest)
        if m is None:
            raise invalid("missing unit")
        number, tail = rest[: m.start()], rest[m.start():]
        if number in ("", "."):
            raise invalid("expected a number")
        if not _NUMBER.match(number):
            raise invalid("bad number")
        value = float(number)
        m = re.search(r"[0-9.]", tail)
        unit_len = m.start() if m else len(tail)
        unit, rest = tail[:unit_len], tail[unit_len:]
        if unit not in _NANOS_PER_UNIT:
            raise invalid(f"unknown unit {json.dumps(unit, ensure_ascii=False)}")
        total += value * _NANOS_PER_UNIT[unit]
    if total > float(_U64_MAX):
        raise invalid("too large")
    # f64::round: halves away from zero (the total is never negative).
    whole = int(total)
    return whole + 1 if total - whole >= 0.5 else whole


def format_millis(millis: int) -> str:
    """Milliseconds as a compact duration (``1h30m``, ``1500ms``), as the Rust host prints
    them."""
    if millis == 0:
        return "0s"
    if millis % 1000 != 0:
        return f"{millis}ms"
    seconds = millis // 1000
    parts = [(seconds // 3600, "h"), (seconds // 60 % 60, "m"), (seconds % 60, "s")]
    return "".join(f"{v}{u}" for v, u in parts if v > 0)


_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$"
)


def parse_time(text: str) -> int:
    """Parses an RFC 3339 time into nanoseconds since the Unix epoch."""
    m = _RFC3339.match(text)
    invalid = ValueError(
        f"invalid time {json.dumps(text, ensure_ascii=False)}; expected RFC 3339, "
        "e.g. 2026-01-01T00:00:00Z"
    )
    if not m:
        raise invalid
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    if not 1 <= mo <= 12 or not 1 <= d <= calendar.monthrange(y, mo)[1]:
        raise invalid
    if h > 23 or mi > 59 or s > 60:
        raise invalid
    offset = 0
    if m.group(9):
        oh, om = int(m.group(10)), int(m.group(11))
        if oh > 23 or om > 59:
            raise invalid
        offset = (-1 if m.group(9) == "-" else 1) * (oh * 60 + om)
    fraction = int(((m.group(7) or "") + "000000000")[:9])
    days = (datetime.date(y, mo, d) - datetime.date(1970, 1, 1)).days
    seconds = days * 86400 + h * 3600 + mi * 60 + s - offset * 60
    return seconds * 1_000_000_000 + fraction


def epoch_millis(nanos: int) -> int:
    """Nanoseconds since the epoch -> milliseconds (chrono's ``timestamp_millis``)."""
    return nanos // 1_000_000


def format_time(nanos: int) -> str:
    """Nanoseconds since the epoch -> ``2026-01-01T00:00:00Z`` (whole seconds, UTC)."""
    seconds = nanos // 1_000_000_000
    moment = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
