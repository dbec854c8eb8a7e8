"""Number formatting shared by headers and reports."""

from __future__ import annotations

from decimal import Decimal


def plain_decimal(x: float) -> str:
    """Plain decimal (never scientific notation), six significant digits."""
    s = format(Decimal(f"{float(x):.6g}"), "f")
    return s.rstrip("0").rstrip(".") if "." in s else s
