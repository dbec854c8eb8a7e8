"""Live grid signals: Electricity Maps, WattTime v3, UK Carbon Intensity, Carbon Aware SDK.

Each :class:`Provider` turns one documented HTTP API into hourly values (gCO2e/kWh, with the
provider's own forecast where it has one). :class:`LiveCarbonSource` wraps a provider for the
configured zone: a background thread refreshes it every ``refresh_s``; ``intensity()`` only
reads what the last refresh brought, so a slow or failing provider never blocks a request. When
the live value for an hour is missing or too old, the answer comes from the fallback (the
bundled history) and its ``method`` says so: ``historical-replay (live unavailable: ...)``.
Keys come from environment variables named in the settings.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from .base import CarbonSource, Intensity

log = logging.getLogger("boundgate.grid")
HOUR = 3600
LBS_PER_MWH_TO_G_PER_KWH = 453.59237 / 1000.0  # 1 lb/MWh = 0.4536 g/kWh


def _hour(ts: str) -> int:
    dt = datetime.fromisoformat(ts.strip().replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp()) // HOUR


def _hourly(points: list[tuple[int, float]]) -> dict[int, float]:
    """Mean per hour of (hour, value) points (half-hourly and 5-minute data become hourly)."""
    sums: dict[int, list[float]] = {}
    for h, v in points:
        sums.setdefault(h, []).append(v)
    return {h: sum(vs) / len(vs) for h, vs in sums.items()}


class Provider(ABC):
    name: str

    def __init__(self, base_url: str, region: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.region = region

    @abstractmethod
    def fetch(self, client: httpx.Client, now: datetime) -> dict[int, float]:
        """Hourly values (absolute hour → gCO2e/kWh): the latest hours and any forecast."""


class ElectricityMaps(Provider):
    """``/v3/carbon-intensity/latest`` and ``/forecast`` (header ``auth-token``)."""

    name = "electricitymaps"

    def __init__(self, base_url: str, region: str, token: str | None) -> None:
        super().__init__(base_url, region)
        self.token = token

    def fetch(self, client: httpx.Client, now: datetime) -> dict[int, float]:
        headers = {"auth-token": self.token} if self.token else {}
        params = {"zone": self.region}
        latest = client.get(
            f"{self.base_url}/v3/carbon-intensity/latest", params=params, headers=headers
        )
        latest.raise_for_status()
        body = latest.json()
        points = [(_hour(body["datetime"]), float(body["carbonIntensity"]))]
        fc = client.get(
            f"{self.base_url}/v3/carbon-intensity/forecast", params=params, headers=headers
        )
        if fc.status_code == 200:
            points += [
                (_hour(p["datetime"]), float(p["carbonIntensity"]))
                for p in fc.json().get("forecast", [])
            ]
        return _hourly(points)


class WattTime(Provider):
    """v3: ``/login`` (basic auth) → token; ``/v3/forecast`` and ``/v3/historical`` of
    ``co2_moer`` (marginal, lbs/MWh, converted to gCO2e/kWh)."""

    name = "watttime"

    def __init__(self, base_url: str, region: str, username: str, password: str) -> None:
        super().__init__(base_url, region)
        self.auth = (username, password)
        self._token: str | None = None

    def _get(self, client: httpx.Client, path: str, params: dict[str, str]) -> Any:
        for attempt in range(2):
            if self._token is None:
                r = client.get(f"{self.base_url}/login", auth=self.auth)
                r.raise_for_status()
                self._token = r.json()["token"]
            r = client.get(
                f"{self.base_url}{path}",
                params=params,
                headers={"Authorization": f"Bearer {self._token}"},
            )
            if r.status_code == 401 and attempt == 0:  # token expired: log in again
                self._token = None
                continue
            r.raise_for_status()
            return r.json()
        raise httpx.HTTPError("WattTime: unauthorised")  # pragma: no cover

    def fetch(self, client: httpx.Client, now: datetime) -> dict[int, float]:
        base = {"region": self.region, "signal_type": "co2_moer"}
        start = (now - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
        end = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        hist = self._get(client, "/v3/historical", {**base, "start": start, "end": end})
        fc = self._get(client, "/v3/forecast", {**base, "horizon_hours": "24"})
        points = [
            (_hour(p["point_time"]), float(p["value"]) * LBS_PER_MWH_TO_G_PER_KWH)
            for body in (hist, fc)
            for p in body.get("data", [])
        ]
        return _hourly(points)


class UKCarbonIntensity(Provider):
    """api.carbonintensity.org.uk: national ``/intensity/{from}/fw24h`` or, with a region
    id, ``/regional/intensity/{from}/fw24h/regionid/{id}`` (half-hours → hours). Actual
    values where published, else the provider's forecast."""

    name = "ukci"

    def fetch(self, client: httpx.Client, now: datetime) -> dict[int, float]:
        start = (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%MZ")
        if self.region in ("", "national", "GB"):
            r = client.get(f"{self.base_url}/intensity/{start}/fw24h")
            r.raise_for_status()
            periods = r.json()["data"]
        else:
            r = client.get(
                f"{self.base_url}/regional/intensity/{start}/fw24h/regionid/{self.region}"
            )
            r.raise_for_status()
            periods = r.json()["data"]["data"]
        points = []
        for p in periods:
            value = p["intensity"].get("actual")
            if value is None:
                value = p["intensity"]["forecast"]
            points.append((_hour(p["from"]), float(value)))
        return _hourly(points)


class CarbonAwareSDK(Provider):
    """The Green Software Foundation's Carbon Aware SDK WebAPI: ``/emissions/bylocation``
    and ``/emissions/forecasts/current``."""

    name = "carbon-aware-sdk"

    def fetch(self, client: httpx.Client, now: datetime) -> dict[int, float]:
        start = (now - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
        end = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        r = client.get(
            f"{self.base_url}/emissions/bylocation",
            params={"location": self.region, "time": start, "toTime": end},
        )
        r.raise_for_status()
        points = [(_hour(p["time"]), float(p["rating"])) for p in r.json()]
        fc = client.get(
            f"{self.base_url}/emissions/forecasts/current", params={"location": self.region}
        )
        if fc.status_code == 200:
            for item in fc.json():
                points += [
                    (_hour(p["timestamp"]), float(p["value"])) for p in item.get("forecastData", [])
                ]
        return _hourly(points)


class LiveCarbonSource(CarbonSource):
    """A provider for one zone, refreshed in the background, with a labelled fallback."""

    def __init__(
        self,
        provider: Provider,
        zone: str,
        fallback: CarbonSource,
        *,
        refresh_s: float,
        timeout_s: float,
        max_age_s: float = 3 * HOUR,
    ) -> None:
        self.provider = provider
        self.zone = zone
        self.fallback = fallback
        self.refresh_s = refresh_s
        self.max_age_s = max_age_s
        self.client = httpx.Client(timeout=timeout_s)
        self._values: dict[int, float] = {}
        self._fetched_at: float | None = None
        self._error: str | None = "not fetched yet"
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def zones(self) -> list[str]:
        return self.fallback.zones()

    def refresh(self) -> bool:
        try:
            values = self.provider.fetch(self.client, datetime.now(tz=UTC))
        except (httpx.HTTPError, KeyError, ValueError, TypeError) as exc:
            with self._lock:
                self._error = f"{self.provider.name}: {type(exc).__name__}: {exc}"[:200]
            log.warning("live grid source failed: %s", self._error)
            return False
        with self._lock:
            self._values.update(values)
            self._fetched_at = time.time()
            self._error = None if values else f"{self.provider.name}: no data"
        return bool(values)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._loop, name="boundgate-grid-refresh", daemon=True
            )
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.refresh()
            self._stop.wait(self.refresh_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.client.close()

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {
                "provider": self.provider.name,
                "zone": self.zone,
                "hours": len(self._values),
                "fetched_at": self._fetched_at,
                "error": self._error,
            }

    def forecast_values(self, zone: str, hours: list[int]) -> dict[int, float]:
        """The provider's values for these absolute hours, where it has them and is fresh."""
        if zone != self.zone:
            return {}
        with self._lock:
            if self._fetched_at is None or time.time() - self._fetched_at > self.max_age_s:
                return {}
            return {h: self._values[h] for h in hours if h in self._values}

    def intensity(self, zone: str, at: datetime) -> Intensity:
        hour = int(at.timestamp()) // HOUR
        reason = "other zone"
        if zone == self.zone:
            with self._lock:
                fresh = (
                    self._fetched_at is not None
                    and time.time() - self._fetched_at <= self.max_age_s
                )
                value = self._values.get(hour) if fresh else None
                reason = self._error or ("stale" if not fresh else "hour not covered")
            if value is not None:
                now_hour = int(time.time()) // HOUR
                method = "live" if hour <= now_hour else "live-forecast"
                when = datetime.fromtimestamp(hour * HOUR, tz=UTC)
                return Intensity(zone, when, value, method, self.provider.name)
        fb = self.fallback.intensity(zone, at)
        return Intensity(
            fb.zone, fb.at, fb.gco2_per_kwh, f"{fb.method} (live unavailable: {reason})", fb.source
        )
