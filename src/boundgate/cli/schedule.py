"""``boundgate schedule``: replay the carbon-shifting policy over hourly data."""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from .console import cannot_write, fail

schedule_app = typer.Typer(help="Shift deferrable work into clean hours.", no_args_is_help=True)


@schedule_app.command("replay")
def schedule_replay(
    intensity: Annotated[
        Path, typer.Option("--intensity", help="CSV to evaluate on (datetime_utc + column).")
    ],
    history: Annotated[
        list[Path] | None,
        typer.Option("--history", help="CSV the policy may read in full (repeatable)."),
    ] = None,
    duration: Annotated[str, typer.Option(help="Job run time, e.g. 1h.")] = "1h",
    window: Annotated[str, typer.Option(help="Arrival to deadline, e.g. 8h.")] = "8h",
    column: Annotated[
        str, typer.Option(help="Value column (e.g. gco2_per_kwh_direct, usd_per_mwh).")
    ] = "gco2_per_kwh_lca",
    out_path: Annotated[Path, typer.Option("--out", help="Plan CSV to write.")] = Path("plan.csv"),
) -> None:
    """One job per hour of the intensity file; plan each without look-ahead; compare."""
    from ..scheduler.replay import SeriesError, parse_hours, read_series, replay, write_plan
    from . import err, out

    try:
        d, w = parse_hours(duration), parse_hours(window)
        if w < d:
            raise ValueError("--window must be at least --duration")
        series = read_series(intensity, column)
        histories = [read_series(p, column) for p in history or []]
    except (SeriesError, ValueError) as exc:
        raise fail(str(exc), 2) from None
    if len(series) < w:
        err.print("[red]error:[/red] the intensity file is shorter than the window", markup=True)
        raise typer.Exit(2)
    try:
        result = replay(series, histories, duration_h=d, window_h=w)
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    try:
        write_plan(result, out_path)
    except OSError as exc:
        raise cannot_write(out_path, exc) from None
    out.print(f"jobs: {len(result.decisions)} (duration {d} h, window {w} h, column {column})")
    out.print(f"mean per job, run-now:           {result.run_now:.3f}")
    out.print(f"mean per job, plan:              {result.planned:.3f}")
    out.print(f"mean per job, perfect foresight: {result.oracle:.3f}")
    out.print(f"share of the oracle's saving achieved: {result.share_of_oracle:.3f}")
    out.print(f"plan written to {out_path}")


from . import KeyOpt, UrlOpt  # noqa: E402 (defined before this module is imported)

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML config file (or BOUNDGATE_CONFIG).")
]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="Data directory.")]
ZoneOpt = Annotated[str | None, typer.Option("--zone", help="Grid zone (default: configured).")]

grid_app = typer.Typer(help="Grid carbon intensity: now and forecast.", no_args_is_help=True)
batch_app = typer.Typer(help="Submit and follow batches on a running server.", no_args_is_help=True)


def _usage_error(message: object) -> typer.Exit:
    """One line on stderr, exit 2: a usage error is not a traceback."""
    from . import err

    err.print(f"[red]error:[/red] {message}", markup=True, highlight=False)
    return typer.Exit(2)


def _carbon(config: Path | None, zone: str | None) -> tuple[Any, str, Any]:
    """(carbon source, zone, settings) for a grid or plan command: the configured source,
    polled once if live, for ``zone`` (``--zone``, else ``server.grid_zone``, which it then
    is in the settings). A zone without data, or a config the gateway would refuse, ends the
    command with one line (exit 2)."""
    from ..assembly import build_carbon, check_zone
    from ..grid.bundled import BundledCarbonSource, known_zone
    from ..settings import ConfigError
    from . import _settings

    settings = _settings(config)
    setting = "server.grid_zone" if zone is None else "--zone"
    zone = zone or settings.server.grid_zone
    try:
        zone = known_zone(zone, BundledCarbonSource().zones()) or zone  # ("gb" is "GB")
        if zone != settings.server.grid_zone:
            # checked before the settings take it (they refuse a zone without bundled data,
            # the zones every source lists)
            check_zone(BundledCarbonSource(), zone, setting)
            settings.server.grid_zone = zone
        source = build_carbon(settings)
        check_zone(source, zone, setting)
        refresh = getattr(source, "refresh", None)
        if refresh is not None:
            refresh()  # one synchronous poll of the live source
    except (ConfigError, ValueError) as exc:  # a zone without data, missing credentials
        raise _usage_error(exc) from None
    return source, zone, settings


@grid_app.command("now")
def grid_now(config: ConfigOpt = None, zone: ZoneOpt = None) -> None:
    """Carbon intensity of the current hour, with where it came from."""
    from datetime import UTC, datetime

    from . import out

    source, zone, _ = _carbon(config, zone)
    try:
        i = source.intensity(zone, datetime.now(tz=UTC))
    except ValueError as exc:  # no bundled data for the zone
        raise _usage_error(exc) from None
    out.print(f"{zone} {i.at:%Y-%m-%d %H:00} UTC: {i.gco2_per_kwh:.1f} gCO2e/kWh")
    out.print(f"method: {i.method}; source: {i.source}", highlight=False)


def _print_source(source: Any, zone: str) -> None:
    """The line naming where the intensities came from (the current hour's source: the
    bundled data's attribution, Electricity Maps (ODbL 1.0), or the live provider), as
    ``grid now`` prints it: an auditor's trial found ``grid forecast`` and ``schedule plan``
    showing the data's values without it."""
    from datetime import UTC, datetime

    from . import out

    try:
        named = source.intensity(zone, datetime.now(tz=UTC)).source
    except ValueError:  # the caller has said why already
        return
    out.print(f"source: {named}", highlight=False)


@grid_app.command("forecast")
def grid_forecast(
    config: ConfigOpt = None,
    zone: ZoneOpt = None,
    hours: Annotated[int, typer.Option(min=1, max=168, help="Hours ahead.")] = 24,
) -> None:
    """The forecast the scheduler uses (the live source's own where it has one)."""
    import time
    from datetime import UTC, datetime

    from rich.table import Table

    from ..scheduler.policy import CarbonAwareStart
    from . import out

    source, zone, _ = _carbon(config, zone)
    now = time.time()
    try:
        values = CarbonAwareStart(source, zone).forecast(now, hours)
    except ValueError as exc:  # no bundled data for the zone
        raise _usage_error(exc) from None
    best = int(values.argmin())
    table = Table("hour (UTC)", "gCO2e/kWh", "")
    for k, v in enumerate(values):
        at = datetime.fromtimestamp((int(now // 3600) + k) * 3600, tz=UTC)
        table.add_row(f"{at:%Y-%m-%d %H:00}", f"{v:.1f}", "← cleanest" if k == best else "")
    out.print(table)
    _print_source(source, zone)


class JobState(enum.StrEnum):
    """A job's states (``JobStore``)."""

    pending = "pending"
    running = "running"
    done = "done"
    failed = "failed"
    cancelled = "cancelled"


@schedule_app.command("list")
def schedule_list(
    state: Annotated[JobState | None, typer.Option(help="Only jobs in this state.")] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Queued and finished jobs (batches, rebinding, variants), with their scheduled starts.

    A job that must run on a model at a version (a rebind, a round of variants) shows it
    under requires (model@version): it waits for a process that runs it."""

    from rich.table import Table

    from ..fmt import utc_time
    from ..scheduler.jobs import requirement_label
    from . import _settings, opened_store, out

    with opened_store(_settings(config, data_dir=data_dir), existing=True) as store:
        jobs = asyncio.run(store.jobs(state.value if state is not None else None))

    def fmt(ts: float | None) -> str:
        return utc_time(ts) if ts else ""

    table = Table("id", "kind", "state", "requires", "start after", "deadline", "attempts")
    for j in jobs:
        table.add_row(
            j.id,
            j.kind,
            j.state,
            requirement_label(j.requires),
            fmt(j.not_before),
            fmt(j.deadline),
            str(j.attempts),
        )
    out.print(table)


@schedule_app.command("plan")
def schedule_plan(
    duration: Annotated[str, typer.Option(help="Job run time, e.g. 1h.")] = "1h",
    window: Annotated[str, typer.Option(help="Deadline from now, e.g. 8h.")] = "8h",
    config: ConfigOpt = None,
    zone: ZoneOpt = None,
) -> None:
    """When a job submitted now would start, and what that saves against now.

    The start is the one the start policy the gateway builds from the same config picks
    (carbon, a carbon/price mix, or now)."""
    import time
    from datetime import UTC, datetime

    from rich.markup import escape

    from ..assembly import build_start_policy
    from ..scheduler.jobs import decide_start
    from ..scheduler.policy import CarbonAwareStart, MixedStart
    from ..scheduler.replay import parse_hours
    from ..settings import ConfigError
    from . import err, out

    try:
        d, w = parse_hours(duration), parse_hours(window)
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    if w < d:
        err.print("[red]error:[/red] --window must be at least --duration", markup=True)
        raise typer.Exit(2)
    if w > 168:  # as a batch's completion_window, and as far as `grid forecast` looks
        err.print("[red]error:[/red] --window is at most 168h (a week)", markup=True)
        raise typer.Exit(2)
    source, zone, settings = _carbon(config, zone)
    try:
        policy = build_start_policy(settings, source)
    except ConfigError as exc:  # e.g. an unreadable scheduler.price_csv
        raise _usage_error(exc) from None
    now = time.time()
    try:
        start = decide_start(policy, "plan", now, now + w * 3600, d * 3600)
    except Exception as exc:  # the gateway logs it and starts the job now
        err.print(
            "[red]error:[/red] "
            + escape(
                f"the start policy failed ({type(exc).__name__}: {exc}); "
                "the gateway would start such a job now"
            ),
            markup=True,
            highlight=False,
        )
        raise typer.Exit(1) from None
    carbon = policy if isinstance(policy, CarbonAwareStart) else CarbonAwareStart(source, zone)
    k = int((start // 3600) - (now // 3600))
    at = datetime.fromtimestamp(start, tz=UTC)
    if isinstance(policy, MixedStart):
        wp = policy.price_weight
        how = f"carbon {100 * (1 - wp):.0f} % / price {100 * wp:.0f} % ({policy.price.column})"
    elif isinstance(policy, CarbonAwareStart):
        how = "carbon"
    else:
        how = "now (scheduler.policy)"
    out.print(f"start: {at:%Y-%m-%d %H:%M} UTC ({k} h from now) in {zone}; policy: {how}")

    def compare(values: Any, unit: str) -> None:
        now_mean = float(values[:d].mean())
        plan_mean = float(values[k : k + d].mean())
        less = 100 * (1 - plan_mean / now_mean) if now_mean else 0.0
        out.print(
            f"forecast mean over the run: {plan_mean:.1f} {unit} vs {now_mean:.1f} if started "
            f"now ({less:.1f} % less)",
            highlight=False,
        )

    compare(carbon.forecast(now, w), "gCO2e/kWh")
    if isinstance(policy, MixedStart):
        compare(policy.price_forecast(now, w), policy.price.column)
    _print_source(source, zone)


@contextmanager
def _client(url: str | None, api_key: str | None, config: Path | None) -> Iterator[Any]:
    """An httpx client for the server at ``url`` (``/v1`` added if missing; the configured
    server's when None, ``server_url``); a failure to reach it ends the command with one line
    (``reaching``)."""
    import httpx

    from . import api_base_url, bearer, reaching, server_url

    url = server_url(url, config)
    with (
        reaching(url),
        httpx.Client(base_url=api_base_url(url), headers=bearer(api_key), timeout=120) as client,
    ):
        yield client


def _check(resp: Any) -> Any:
    from . import exit_on_http_error

    exit_on_http_error(resp)
    kind = resp.headers.get("content-type", "").split(";")[0].strip()
    return resp.json() if kind == "application/json" else resp.text


@batch_app.command("submit")
def batch_submit(
    file: Annotated[Path, typer.Argument(help="JSONL: one request per line (OpenAI batch).")],
    endpoint: Annotated[str, typer.Option(help="Endpoint of every line.")] = (
        "/v1/chat/completions"
    ),
    window: Annotated[str, typer.Option(help="Completion window, e.g. 24h.")] = "24h",
    url: UrlOpt = None,
    api_key: KeyOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Upload a file and create a batch; prints its id and scheduled start.

    The batch is created under an Idempotency-Key and retried (three attempts) when the
    connection fails, so a create whose answer was lost makes one batch, not two."""
    import json
    import uuid

    import httpx
    import stamina

    from .progress import progress

    if not file.is_file():
        # a directory or a device (/dev/null) exists but is no file to upload
        raise _usage_error(
            f"not a regular file: {file}" if file.exists() else f"no such file: {file}"
        )
    if file.stat().st_size == 0:
        # the upload declares the size the file reports: a /proc file reports 0 and holds
        # more (a re-check: "Too much data for declared Content-Length", a traceback)
        raise _usage_error(
            f"{file} is empty or reports no size (as /proc files do): a batch input file "
            "holds one request a line"
        )
    key = {"Idempotency-Key": f"boundgate-cli-{uuid.uuid4().hex}"}
    # the id printed at the end is JSON, but a single line after the bar has gone
    with _client(url, api_key, config) as c, progress(transfer=True) as p:
        with p.open(file, "rb", description=f"uploading {file.name}") as fh:
            f = _check(c.post("/files", files={"file": (file.name, fh)}, data={"purpose": "batch"}))
        body = {"input_file_id": f["id"], "endpoint": endpoint, "completion_window": window}
        # the upload is of no use without its batch: a trial's eight refused submits left
        # eight files behind (deleted on a best effort: the server may be gone)
        try:
            for attempt in stamina.retry_context(on=httpx.TransportError, attempts=3, timeout=60):
                with attempt:
                    created = c.post("/batches", json=body, headers=key)
        except httpx.TransportError:
            _forget_upload(c, f["id"])
            raise
        if created.status_code >= 400:
            _forget_upload(c, f["id"])
        b = _check(created)
    print(json.dumps({"id": b["id"], "scheduled_start": b["boundgate"]["scheduled_start"]}))


def _forget_upload(client: Any, file_id: str) -> None:
    """Delete an uploaded input file whose batch was not made (any failure ignored)."""
    import httpx

    with contextlib.suppress(httpx.HTTPError):
        client.delete(f"/files/{file_id}")


BatchIdArg = Annotated[str, typer.Argument(help="A batch's id (batch_…, from batch submit).")]


@batch_app.command("status")
def batch_status(
    batch_id: BatchIdArg, url: UrlOpt = None, api_key: KeyOpt = None, config: ConfigOpt = None
) -> None:
    """The batch object (JSON)."""
    import json

    with _client(url, api_key, config) as c:
        print(json.dumps(_batch(c, batch_id), indent=2))


def _batch(client: Any, batch_id: str) -> dict[str, Any]:
    """The batch object of ``batch_id`` (the id percent-encoded into its path: a trial's
    "../files" listed the caller's files). Anything but a batch object ends the command with
    one line (a trial's "../models" was a KeyError traceback)."""
    from urllib.parse import quote

    from . import fail

    b = _check(client.get(f"/batches/{quote(batch_id, safe='')}"))
    if not isinstance(b, dict) or b.get("object") != "batch" or "status" not in b:
        raise fail(f"the server's answer for batch {batch_id!r} is no batch")
    return b


@batch_app.command("results")
def batch_results(
    batch_id: BatchIdArg,
    out_path: Annotated[Path | None, typer.Option("--out", help="File (default stdout).")] = None,
    errors: Annotated[
        bool, typer.Option("--errors", help="The error file instead: the lines that failed.")
    ] = False,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
    config: ConfigOpt = None,
) -> None:
    """The output file of an ended batch (JSONL); with --errors, its error file.

    When lines failed, says so on stderr (how many, and --errors); the exit status is 0 all
    the same."""
    import sys

    from . import err
    from .progress import progress

    kind, what = ("error", "failed lines") if errors else ("output", "output")
    with _client(url, api_key, config) as c:
        b = _batch(c, batch_id)
        failed = int((b.get("request_counts") or {}).get("failed") or 0)
        if not b.get(f"{kind}_file_id"):
            ended = b["status"] in ("failed", "expired", "cancelled", "completed")
            why = f"it has no {what}" if ended else f"no {what} yet"
            if not errors and ended and b.get("error_file_id"):
                why += f"; the lines that failed ({failed}) are in its error file (--errors)"
            err.print(f"batch {batch_id} is {b['status']}: {why}", highlight=False)
            raise typer.Exit(1)
        if not errors and b.get("error_file_id"):  # (stdout keeps the output alone)
            total = int((b.get("request_counts") or {}).get("total") or 0)
            err.print(
                f"{failed} of {total} lines failed: boundgate batch results {batch_id} --errors",
                highlight=False,
            )
        # JSONL to stdout is machine output: a bar only when writing a file
        with (
            progress(machine_output=out_path is None, transfer=True) as p,
            c.stream("GET", f"/files/{b[f'{kind}_file_id']}/content") as resp,
        ):
            if resp.status_code >= 400:
                resp.read()
                _check(resp)
            size = resp.headers.get("content-length")
            task = p.add_task("downloading results", total=int(size) if size else None)
            chunks = []
            for chunk in resp.iter_bytes():
                chunks.append(chunk)
                p.advance(task, len(chunk))
    text = b"".join(chunks).decode("utf-8")
    if out_path is None:
        sys.stdout.write(text)
        return
    try:
        out_path.write_text(text)
    except OSError as exc:  # a trial's --out /nonexistent/x was a traceback
        raise cannot_write(out_path, exc) from None
