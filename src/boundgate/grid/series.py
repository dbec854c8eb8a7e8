"""Hourly series files (the shape of the shared grid data): reading and merging."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from .forecast import Array

HOUR = 3600


class SeriesError(ValueError):
    """A series file that cannot be used, with the reason."""


@dataclass(frozen=True)
class Series:
    hours: np.ndarray  # absolute hours since the epoch, sorted, unique
    values: Array

    def __len__(self) -> int:
        return len(self.hours)


def _parse_hour(text: str) -> int:
    dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp()) // HOUR


def read_series(path: Path, column: str) -> Series:
    """``datetime_utc`` + ``column`` from a CSV (the columns of the shared grid data)."""
    try:
        fh = path.open(newline="")
    except OSError as exc:
        raise SeriesError(f"{path}: {exc.strerror}") from None
    with fh:
        reader = csv.DictReader(fh)
        fields = reader.fieldnames or []
        if "datetime_utc" not in fields or column not in fields:
            raise SeriesError(
                f"{path}: needs columns datetime_utc and {column}; has {', '.join(fields)}"
            )
        pairs: dict[int, float] = {}
        for lineno, row in enumerate(reader, start=2):
            try:
                hour, value = _parse_hour(row["datetime_utc"]), float(row[column])
            except (TypeError, ValueError):
                raise SeriesError(f"{path}:{lineno}: bad datetime or {column} value") from None
            if not math.isfinite(value):  # "nan", "inf": no hour could be planned against it
                raise SeriesError(f"{path}:{lineno}: {column} is not a finite number")
            if hour in pairs:
                raise SeriesError(f"{path}:{lineno}: a second row for {row['datetime_utc']}")
            pairs[hour] = value
    if not pairs:
        raise SeriesError(f"{path}: no rows")
    hours = np.array(sorted(pairs), dtype=np.int64)
    return Series(hours, np.array([pairs[h] for h in hours], dtype=np.float64))


def merge(series: Iterable[Series]) -> Series:
    """One sorted series; later inputs win on duplicate hours."""
    pairs: dict[int, float] = {}
    for s in series:
        pairs.update(zip(s.hours.tolist(), s.values.tolist(), strict=True))
    hours = np.array(sorted(pairs), dtype=np.int64)
    return Series(hours, np.array([pairs[h] for h in hours], dtype=np.float64))
