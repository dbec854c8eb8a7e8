"""Number formatting shared by headers and reports."""

from __future__ import annotations

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
