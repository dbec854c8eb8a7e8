"""Live grid adapters against a loopback fake serving each provider's documented JSON."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from boundgate.assembly import build_app, build_carbon
from boundgate.grid import BundledCarbonSource
from boundgate.grid.fake import FakeGridServer
from boundgate.grid.live import (
    CarbonAwareSDK,
    ElectricityMaps,
    LiveCarbonSource,
    Provider,
    UKCarbonIntensity,
    WattTime,
)
from boundgate.scheduler.policy import CarbonAwareStart
from boundgate.settings import ConfigError, GridSettings
from boundgate.testing import ThreadedServer
from helpers import Live, fake_settings, wait_until

HOUR = 3600
TIMING = {"refresh_s": GridSettings().refresh_s, "timeout_s": GridSettings().timeout_s}


@pytest.fixture
def grid() -> Iterator[FakeGridServer]:
    with FakeGridServer() as srv:
        yield srv


def providers(base: str) -> list[Provider]:
    return [
        ElectricityMaps(base, "DE", "token"),
        WattTime(base, "CAISO_NORTH", "user", "secret"),
        UKCarbonIntensity(base, "national"),
        UKCarbonIntensity(base, "13"),
        CarbonAwareSDK(base, "westeurope"),
    ]


@pytest.mark.parametrize("index", range(5))
def test_each_adapter_reads_current_and_forecast_values(grid: FakeGridServer, index: int) -> None:
    provider = providers(grid.base_url)[index]
    now_h = int(time.time()) // HOUR
    grid.control.values = {now_h: 321.0, now_h + 3: 123.0}
    source = LiveCarbonSource(provider, "DE-LU", BundledCarbonSource(), **TIMING)
    assert source.refresh(), source.status()
    now = source.intensity("DE-LU", datetime.fromtimestamp(now_h * HOUR, tz=UTC))
    assert now.method == "live" and now.source == provider.name
    assert now.gco2_per_kwh == pytest.approx(321.0, abs=0.6)  # UK rounds to whole grams
    ahead = source.intensity("DE-LU", datetime.fromtimestamp((now_h + 3) * HOUR, tz=UTC))
    assert ahead.method == "live-forecast"
    assert ahead.gco2_per_kwh == pytest.approx(123.0, abs=0.6)
    # another zone is never answered from this zone's provider
    other = source.intensity("NO", datetime.fromtimestamp(now_h * HOUR, tz=UTC))
    assert other.method.startswith("historical")
    source.stop()


def test_failing_source_falls_back_with_a_label_and_never_raises(grid: FakeGridServer) -> None:
    grid.control.status = 503
    source = LiveCarbonSource(
        ElectricityMaps(grid.base_url, "DE", None), "DE-LU", BundledCarbonSource(), **TIMING
    )
    assert not source.refresh()
    got = source.intensity("DE-LU", datetime.now(tz=UTC))
    assert got.method.startswith("historical") and "live unavailable" in got.method
    assert "503" in got.method or "HTTPStatusError" in got.method
    # unreachable host: same
    dead = LiveCarbonSource(
        ElectricityMaps("http://127.0.0.1:9", "DE", None), "DE-LU", BundledCarbonSource(),
        refresh_s=300.0, timeout_s=0.5,
    )  # fmt: skip
    assert not dead.refresh()
    assert "live unavailable" in dead.intensity("DE-LU", datetime.now(tz=UTC)).method
    source.stop()
    dead.stop()


def test_watttime_logs_in_again_when_its_token_expires(grid: FakeGridServer) -> None:
    source = LiveCarbonSource(
        WattTime(grid.base_url, "CAISO_NORTH", "u", "p"),
        "US-CAL-CISO",
        BundledCarbonSource(),
        **TIMING,
    )
    assert source.refresh()
    grid.control.expire_token_once = True
    assert source.refresh()
    source.stop()


def test_live_forecast_steers_the_start_policy(grid: FakeGridServer) -> None:
    now_h = int(time.time()) // HOUR
    # make hour +5 by far the cleanest in the live forecast
    grid.control.values = {now_h + k: 400.0 for k in range(-2, 25)}
    grid.control.values[now_h + 5] = 50.0
    source = LiveCarbonSource(
        ElectricityMaps(grid.base_url, "DE", None), "DE-LU", BundledCarbonSource(), **TIMING
    )
    assert source.refresh()
    policy = CarbonAwareStart(source, "DE-LU")
    now = time.time()
    start = policy("batch", now, now + 12 * HOUR, 60.0)
    assert int(start // HOUR) == now_h + 5
    source.stop()


def test_gateway_uses_a_live_source_and_reports_it(grid: FakeGridServer, tmp_path: Path) -> None:
    settings = fake_settings(tmp_path)
    settings.grid.source = "electricitymaps"
    settings.grid.base_url = grid.base_url
    settings.grid.region = "DE"
    grid.control.values = {int(time.time()) // HOUR: 111.0}
    app = build_app(settings)
    with ThreadedServer(app) as srv:
        live = Live(srv, app)
        wait_until(lambda: live.gateway.carbon.status()["fetched_at"] is not None)
        r = live.http.post(
            "/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "hi"}], "temperature": 0},
        )
        assert r.json()["boundgate"]["grid_gco2_per_kwh"] == 111.0
        # where it came from, beside it (an auditor's trial: the bundled data's values were
        # shown without their attribution)
        assert r.json()["boundgate"]["grid_source"] == "electricitymaps"
        live.http.close()


def test_watttime_without_credentials_is_a_config_error(tmp_path: Path) -> None:
    settings = fake_settings(tmp_path)
    settings.grid.source = "watttime"
    settings.grid.username_env = "BOUNDGATE_TEST_NO_SUCH_USER"
    with pytest.raises(ConfigError, match="BOUNDGATE_TEST_NO_SUCH_USER"):
        build_carbon(settings)
