"""Number formatting shared by headers and reports."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal


def plain_decimal(x: float, digits: int = 6) -> str:
    """Plain decimal (never scientific notation), ``digits`` significant digits (six in
    headers; fewer where a person reads them, as ``boundgate ask``)."""
    s = format(Decimal(f"{float(x):.{digits}g}"), "f")
    return s.rstrip("0").rstrip(".") if "." in s else s


def significant(x: float, digits: int = 6) -> float:
    """``x`` rounded to ``digits`` significant digits (not decimals: 1.83e-7 Wh, a reused
    answer's lookup, stays 1.83e-7 where ``round(x, 6)`` made it 0)."""
    return float(f"{x:.{digits}g}")


def utc_time(ts: float | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """Unix seconds ``ts`` as UTC text in ``fmt``; "" for None. A time the platform's calendar
    cannot hold (past year 9999: a job stored with a deadline 1e300 s ahead, which failed the
    dashboard's grid page and ``schedule list``) reads "after 9999-12-31" (or "before
    0001-01-01")."""
    if ts is None:
        return ""
    try:
        return datetime.fromtimestamp(ts, tz=UTC).strftime(fmt)
    except (OverflowError, OSError, ValueError):
        return "after 9999-12-31" if ts > 0 else "before 0001-01-01"
