"""The bundled Electricity Maps history: values match the source, replay is labelled."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import pytest

from boundgate.grid import BundledCarbonSource

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "grid" / "carbon"


def test_zones_are_bundled() -> None:
    assert set(BundledCarbonSource().zones()) == {"BR", "DE-LU", "ES", "GB", "NO", "US-CAL-CISO"}


def test_historical_hour_has_recorded_value() -> None:
    src = BundledCarbonSource()
    i = src.intensity("DE-LU", datetime(2023, 1, 1, 0, 30, tzinfo=UTC))
    assert i.method == "historical" and "Electricity Maps" in i.source
    assert i.gco2_per_kwh == pytest.approx(185.8, abs=0.05)


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared raw data not present")
def test_values_match_raw_csv() -> None:
    src = BundledCarbonSource()
    with (SHARED / "GB_2022.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    for row in rows[::997]:
        at = datetime.fromisoformat(row["datetime_utc"].replace("Z", "+00:00"))
        assert src.intensity("GB", at).gco2_per_kwh == pytest.approx(
            float(row["gco2_per_kwh_lca"]), abs=0.05
        )


def test_future_hours_replay_the_latest_year() -> None:
    src = BundledCarbonSource()
    now = src.intensity("NO", datetime(2026, 6, 1, 12, tzinfo=UTC))
    then = src.intensity("NO", datetime(2023, 6, 1, 12, tzinfo=UTC))
    assert now.method == "historical-replay" and "2023" in now.source
    assert now.gco2_per_kwh == then.gco2_per_kwh
    leap = src.intensity("ES", datetime(2028, 2, 29, 3, tzinfo=UTC))
    assert (
        leap.gco2_per_kwh == src.intensity("ES", datetime(2023, 2, 28, 3, tzinfo=UTC)).gco2_per_kwh
    )


def test_unknown_zone_lists_known_zones() -> None:
    with pytest.raises(ValueError, match="DE-LU"):
        BundledCarbonSource().intensity("XX", datetime(2023, 1, 1, tzinfo=UTC))
