"""Number formatting shared by headers and reports."""

from __future__ import annotations

from decimal import Decimal


def plain_decimal(x: float, digits: int = 6) -> str:
    """Plain decimal (never scientific notation), ``digits`` significant digits (six in
    headers; fewer where a person reads them, as ``boundgate ask``)."""
    s = format(Decimal(f"{float(x):.{digits}g}"), "f")
    return s.rstrip("0").rstrip(".") if "." in s else s
