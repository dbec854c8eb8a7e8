"""A loopback fake of the live grid APIs, serving each provider's documented JSON shapes.

One Starlette app answers Electricity Maps (``/v3/carbon-intensity/latest|forecast``),
WattTime v3 (``/login``, ``/v3/historical``, ``/v3/forecast``), UK Carbon Intensity
(``/intensity/{from}/fw24h``, ``/regional/intensity/{from}/fw24h/regionid/{id}``) and the
Carbon Aware SDK WebAPI (``/emissions/bylocation``, ``/emissions/forecasts/current``) from one
table of hourly values, so tests can check each adapter against known numbers and script
failures. ``python -m boundgate.grid.fake --port 9100`` serves it standalone.
"""

from __future__ import annotations

import argparse
import base64
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..testing import ThreadedServer
from .live import LBS_PER_MWH_TO_G_PER_KWH

HOUR = 3600


def _iso(hour: int, fmt: str = "%Y-%m-%dT%H:%M:%S.000Z", minutes: int = 0) -> str:
    return (datetime.fromtimestamp(hour * HOUR, tz=UTC) + timedelta(minutes=minutes)).strftime(fmt)


class FakeGridControl:
    """The values served (absolute hour → gCO2e/kWh) and scripted failures."""

    def __init__(self) -> None:
        self.values: dict[int, float] = {}
        self.status = 200  # answer every request with this status when not 200
        self.requests = 0
        self.token = "fake-token"
        self.expire_token_once = False
        self._lock = threading.Lock()

    def value(self, hour: int) -> float:
        return self.values.get(hour, 200.0 + 10.0 * (hour % 24))

    def now_hour(self) -> int:
        return int(time.time()) // HOUR


def create_fake_grid_app(control: FakeGridControl | None = None) -> Starlette:
    ctl = control or FakeGridControl()

    def guard() -> Response | None:
        with ctl._lock:
            ctl.requests += 1
        if ctl.status != 200:
            return JSONResponse({"error": "injected"}, status_code=ctl.status)
        return None

    async def em_latest(request: Request) -> Response:
        if (r := guard()) is not None:
            return r
        h = ctl.now_hour()
        return JSONResponse(
            {
                "zone": request.query_params.get("zone"),
                "carbonIntensity": ctl.value(h),
                "datetime": _iso(h),
                "updatedAt": _iso(h),
                "emissionFactorType": "lifecycle",
                "isEstimated": False,
                "estimationMethod": None,
            }
        )

    async def em_forecast(request: Request) -> Response:
        if (r := guard()) is not None:
            return r
        h = ctl.now_hour()
        return JSONResponse(
            {
                "zone": request.query_params.get("zone"),
                "forecast": [
                    {"carbonIntensity": ctl.value(h + k), "datetime": _iso(h + k)}
                    for k in range(1, 25)
                ],
                "updatedAt": _iso(h),
            }
        )

    async def wt_login(request: Request) -> Response:
        if (r := guard()) is not None:
            return r
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Basic ") or ":" not in base64.b64decode(auth[6:]).decode():
            return JSONResponse({"error": "unauthorised"}, status_code=401)
        return JSONResponse({"token": ctl.token})

    def wt_points(request: Request, hours: list[int]) -> Response:
        if request.headers.get("authorization") != f"Bearer {ctl.token}" or ctl.expire_token_once:
            ctl.expire_token_once = False
            return JSONResponse({"error": "token expired"}, status_code=401)
        data = [
            {"point_time": _iso(h, "%Y-%m-%dT%H:%M:%S+00:00", m), "value": v}
            for h in hours
            for m in (0, 30)
            for v in [round(ctl.value(h) / LBS_PER_MWH_TO_G_PER_KWH, 3)]
        ]
        meta = {
            "region": request.query_params.get("region"),
            "signal_type": "co2_moer",
            "units": "lbs_co2_per_mwh",
            "data_point_period_seconds": 1800,
        }
        return JSONResponse({"data": data, "meta": meta})

    async def wt_historical(request: Request) -> Response:
        if (r := guard()) is not None:
            return r
        h = ctl.now_hour()
        return wt_points(request, [h - 2, h - 1, h])

    async def wt_forecast(request: Request) -> Response:
        if (r := guard()) is not None:
            return r
        h = ctl.now_hour()
        return wt_points(request, list(range(h + 1, h + 25)))

    def uk_periods(start: str, regional: bool) -> list[dict[str, Any]]:
        first = int(datetime.fromisoformat(start.replace("Z", "+00:00")).timestamp()) // HOUR
        now = ctl.now_hour()
        out = []
        for h in range(first, first + 25):
            for m in (0, 30):
                value = round(ctl.value(h))
                intensity: dict[str, Any] = {"forecast": value, "index": "moderate"}
                if not regional:
                    intensity["actual"] = value if h <= now else None
                period: dict[str, Any] = {
                    "from": _iso(h, "%Y-%m-%dT%H:%MZ", m),
                    "to": _iso(h, "%Y-%m-%dT%H:%MZ", m + 30),
                    "intensity": intensity,
                }
                if regional:
                    period["generationmix"] = [{"fuel": "wind", "perc": 40.0}]
                out.append(period)
        return out

    async def uk_national(request: Request) -> Response:
        if (r := guard()) is not None:
            return r
        return JSONResponse({"data": uk_periods(request.path_params["start"], False)})

    async def uk_regional(request: Request) -> Response:
        if (r := guard()) is not None:
            return r
        rid = int(request.path_params["rid"])
        return JSONResponse(
            {
                "data": {
                    "regionid": rid,
                    "dnoregion": "Fake DNO",
                    "shortname": "Fake region",
                    "data": uk_periods(request.path_params["start"], True),
                }
            }
        )

    async def sdk_bylocation(request: Request) -> Response:
        if (r := guard()) is not None:
            return r
        loc = request.query_params.get("location")
        h = ctl.now_hour()
        return JSONResponse(
            [
                {"location": loc, "time": _iso(x), "rating": ctl.value(x), "duration": "01:00:00"}
                for x in (h - 2, h - 1, h)
            ]
        )

    async def sdk_forecast(request: Request) -> Response:
        if (r := guard()) is not None:
            return r
        loc = request.query_params.get("location")
        h = ctl.now_hour()
        data: list[dict[str, Any]] = [
            {"location": loc, "timestamp": _iso(x), "duration": 60, "value": ctl.value(x)}
            for x in range(h + 1, h + 25)
        ]
        return JSONResponse(
            [
                {
                    "generatedAt": _iso(h),
                    "location": loc,
                    "dataStartAt": data[0]["timestamp"],
                    "dataEndAt": data[-1]["timestamp"],
                    "windowSize": 0,
                    "optimalDataPoints": [min(data, key=lambda d: d["value"])],
                    "forecastData": data,
                }
            ]
        )

    return Starlette(
        routes=[
            Route("/v3/carbon-intensity/latest", em_latest),
            Route("/v3/carbon-intensity/forecast", em_forecast),
            Route("/login", wt_login),
            Route("/v3/historical", wt_historical),
            Route("/v3/forecast", wt_forecast),
            Route("/intensity/{start}/fw24h", uk_national),
            Route("/regional/intensity/{start}/fw24h/regionid/{rid}", uk_regional),
            Route("/emissions/bylocation", sdk_bylocation),
            Route("/emissions/forecasts/current", sdk_forecast),
        ]
    )


class FakeGridServer(ThreadedServer):
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.control = FakeGridControl()
        super().__init__(create_fake_grid_app(self.control), host, port, lifespan="off")


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="Serve the fake live grid APIs.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    args = parser.parse_args()
    uvicorn.run(create_fake_grid_app(), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
