"""The section models of the server, limits, store, energy, grid, scheduler, creativity and
dashboard (``[server]`` … ``[dashboard]``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from .base import ListSetting, _Section


class ServerSettings(_Section):
    host: str = Field("127.0.0.1", description="Address to bind.")
    port: int = Field(8080, ge=0, le=65535, description="Port to bind (0 = any free port).")
    data_dir: Path = Field(
        Path(".boundgate"), strict=False, description="Where the SQLite store and keys live."
    )
    grid_zone: str = Field(
        "DE-LU",
        description="Grid zone for carbon figures; any zone with bundled data, in any case.",
    )
    allow_open_remote: bool = Field(
        False,
        description="Allow binding a non-loopback host while no API keys exist (open mode).",
    )
    allowed_hosts: ListSetting[str] = Field(
        default_factory=list,
        description="Host names open mode answers besides loopback ones (and, bound to "
        "another address, IP addresses): e.g. a LAN name with allow_open_remote, or the name "
        "a reverse proxy passes on; `*.example.org` for a domain, `*` for any. Names, not "
        "ports: any port of a name is answered (`gw.lan:8094` is read as `gw.lan`). Once API "
        "keys exist every Host is answered.",
    )
    max_body_bytes: int = Field(
        1 << 20,
        ge=1024,
        description="Largest accepted request body, file uploads aside; larger gets 413.",
    )
    body_read_timeout_s: float = Field(
        60.0,
        gt=0,
        description="Longest wait for the next part of a request body; then 408 "
        "`request_timeout` and the connection closed (a client that declares more than it "
        "sends held its connection open for good). nginx's client_body_timeout, 60 s.",
    )
    header_read_timeout_s: float = Field(
        60.0,
        gt=0,
        description="Longest wait for a request's headers, from a connection's start or a "
        "request's first byte; then the connection is closed, with 408 `request_timeout` when "
        "part of a request came (a client trickling its headers held its connection open "
        "for good). nginx's client_header_timeout, 60 s.",
    )
    max_file_bytes: int = Field(
        200 << 20,
        ge=1024,
        description="Largest accepted file upload (`POST /v1/files`, a batch's input; "
        "OpenAI's limit for batch files is 200 MB); larger gets 413.",
    )
    log_level: Literal["critical", "error", "warning", "info", "debug", "trace"] = Field(
        "info", description="uvicorn log level (any case)."
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_level(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    workers: int = Field(
        1,
        ge=1,
        description="Worker processes serving one port over the shared store (`serve "
        "--workers`); each loads its own local model (memory × workers) and follows the "
        "others' stored answers through the store's change log.",
    )
    metrics_tenant_label: bool = Field(
        False, description="Label request metrics by tenant (one series per tenant)."
    )
    metrics_token_env: str | None = Field(
        None,
        description="Environment variable holding a bearer token that /metrics then requires "
        "(Prometheus: `authorization: {credentials_file: ...}`); unset = /metrics is open, as "
        "Prometheus expects by default.",
    )

    @field_validator("grid_zone")
    @classmethod
    def _bundled_zone(cls, zone: str) -> str:
        """A zone the bundled carbon history holds (every carbon source falls back to it, and
        ``assembly.check_zone`` refused others only once the store and signing key were
        made: a docs trial), in any case: "gb" is "GB" (a re-check was refused it with no
        hint). Raises ``ValueError`` naming the known zones."""
        from ..grid.bundled import BundledCarbonSource, known_zone

        zones = BundledCarbonSource().zones()
        if (known := known_zone(zone, zones)) is None:
            raise ValueError(f"no carbon data for {zone!r}; known zones: {', '.join(zones)}")
        return known

    @field_validator("allowed_hosts")
    @classmethod
    def _host_names(cls, hosts: list[str]) -> list[str]:
        """Each entry as the Host check compares it: a lower-case name without its port or
        final dot. The check matches a request's name whatever its port, so an entry with a
        port (``gw.lan:8094``, as the refusal's message once quoted it) never matched."""
        names = []
        for entry in hosts:
            name = entry.strip().lower()
            if name.startswith("["):  # [fe80::1]:8080
                name = name[1:].partition("]")[0]
            elif name.count(":") == 1:  # name:port (a bare IPv6 address has more colons)
                name, _, port = name.partition(":")
                if not port.isdigit():
                    name = ""
            name = name.rstrip(".")
            if not name or "/" in name or "@" in name:
                raise ValueError(f"{entry!r} is not a host name: give the name only, e.g. 'gw.lan'")
            names.append(name)
        return names


class LimitsSettings(_Section):
    queue_size: int = Field(
        16,
        ge=0,
        description="Requests that may wait for a busy local model; more get 503.",
    )
    rpm: int = Field(
        0,
        ge=0,
        description="Default requests per minute of an API key without its own (each key "
        "counted alone; without keys, of the open tenant) (0 = unlimited).",
    )
    daily_tokens: int = Field(
        0,
        ge=0,
        description="Default prompt+completion tokens per UTC day of an API key without its "
        "own (each key counted alone) (0 = off).",
    )
    daily_reasoning_tokens: int = Field(
        0,
        ge=0,
        description="Default reasoning tokens per UTC day on reasoning models of an API key "
        "without its own (each key counted alone) (0 = off); reserved before each call at its "
        "worst case, settled after.",
    )
    default_max_tokens: int = Field(
        1024, ge=1, description="max_tokens applied when a request gives none."
    )
    reservation_lease_s: float = Field(
        900.0,
        gt=0,
        description="How long a request's budget reservation holds if its gateway process "
        "dies before settling it; then the reserved tokens are free again. A running request's "
        "process renews it every third of this, however long the request runs.",
    )
    novelty_per_day: int = Field(
        0,
        ge=0,
        description="Fresh above-dial (creative) generations per tenant per UTC day (0 = off).",
    )
    novelty_exhausted: Literal["variants", "reject"] = Field(
        "variants",
        description="When the novelty budget is spent: serve pre-generated variants (429 if "
        "none is left) or always answer 429.",
    )


class StoreSettings(_Section):
    url: str | None = Field(
        None,
        description="PostgreSQL database the gateway keeps all its state in "
        "(`postgresql://user@host:5432/db`; libpq's `PGPASSWORD`/`PGPASSFILE` keep the password "
        "out of the URL), so several replicas serve as one (needs the `postgres` extra). "
        "Unset = SQLite in `server.data_dir`.",
    )
    pool_size: int = Field(
        10, ge=1, description="Most PostgreSQL connections one gateway process opens."
    )
    connect_timeout_s: float = Field(
        5.0,
        gt=0,
        description="How long anything waits for a PostgreSQL connection: start-up before "
        "failing, a request before it is answered 503 `store_unavailable` (with "
        "`Retry-After`), `/readyz` before it answers 503. Also libpq's `connect_timeout` "
        "(whole seconds, at least 1) of every connection.",
    )
    statement_timeout_s: float = Field(
        60.0,
        gt=0,
        description="PostgreSQL: how long one call on a connection (its statements, its "
        "transaction) may take before it is cancelled and its request answered 503 "
        "`store_unavailable`: a server that stops answering without closing its connections "
        "(frozen, or a lock held) would otherwise hold requests for ever. `/readyz`'s check "
        "is bounded by `connect_timeout_s`. Raise it for a very large store whose start-up "
        "read of every stored answer takes longer.",
    )
    key_cache_s: float = Field(
        0.0,
        ge=0,
        le=5,
        description="PostgreSQL: how long a replica trusts a key check (and 'no keys yet') "
        "without reading the key table. 0 = every request reads its key, so a key revoked "
        "through any replica is refused by every replica on its next request. Above 0 saves "
        "a round trip per request; a change is then announced to every replica (NOTIFY, "
        "milliseconds) and trusted at most this long should the announcement be lost.",
    )

    open_request_lease_s: float = Field(
        30.0,
        ge=1,
        description="A generation in progress is noted in the store before it starts (a "
        "write-ahead record) and its process renews the note every third of this; a process "
        "killed mid-answer leaves its requests to whichever process on the store finds their "
        "notes this long after, which ledgers them as `interrupted`.",
    )

    @field_validator("url", mode="before")
    @classmethod
    def _check_url(cls, value: Any) -> Any:
        """Empty is unset (``BOUNDGATE_STORE__URL=``, SQLite); anything else a PostgreSQL URL.
        On the field, so an error names ``store.url`` (and the variable that set it)."""
        if value == "":
            return None
        if isinstance(value, str) and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("store.url must be a postgresql:// URL (unset: SQLite)")
        return value


class EnergySettings(_Section):
    cpu_watts_per_core: float = Field(
        4.0, gt=0, description="Central estimate of power per busy vCPU (W)."
    )
    cpu_watts_per_core_low: float = Field(
        2.0, gt=0, description="Low end of the per-vCPU power range (W)."
    )
    cpu_watts_per_core_high: float = Field(
        8.0, gt=0, description="High end of the per-vCPU power range (W)."
    )
    memory_watts_per_gb: float = Field(
        0.392, ge=0, description="Power per GB of resident model memory (W/GB)."
    )
    pue: float = Field(1.0, ge=1.0, description="Power usage effectiveness of this machine.")
    upstream_pue: float = Field(
        1.2, ge=1.0, description="PUE assumed for upstream (remote) data centres."
    )
    rapl_root: Path = Field(
        Path("/sys/class/powercap"),
        strict=False,
        description="Where RAPL powercap counters are read.",
    )
    method: Literal["auto", "rapl", "nvml", "estimate"] = Field(
        "auto", description="Force a meter for local models; auto = RAPL, NVML, estimate."
    )

    @model_validator(mode="after")
    def _check_range(self) -> EnergySettings:
        low, mid, high = (
            self.cpu_watts_per_core_low,
            self.cpu_watts_per_core,
            self.cpu_watts_per_core_high,
        )
        if not low <= mid <= high:
            raise ValueError(
                "energy.cpu_watts_per_core_low <= energy.cpu_watts_per_core <= "
                f"energy.cpu_watts_per_core_high must hold (got {low} / {mid} / {high})"
            )
        return self


# the longest a deferrable job's deadline may lie ahead: a batch's longest completion window
# (168 h, as OpenAI's Batch API); a window of 1e300 s was taken, its job ran at once (the
# forecast could not span it) and the dashboard and `schedule list` failed on its deadline
LONGEST_WINDOW_S = 168 * 3600.0


class CreativitySettings(_Section):
    enabled: bool = Field(True, description="Pre-generate variants of popular creative prompts.")
    min_askers: int = Field(
        3, ge=1, description="Distinct askers of a creative prompt before variants are made."
    )
    variants: int = Field(5, ge=1, le=100, description="Variants generated per round.")
    window_s: float = Field(
        12 * 3600.0,
        gt=0,
        le=LONGEST_WINDOW_S,
        description="Deadline for generating a round of variants (s; at most 7 days, a "
        "batch's longest completion window).",
    )


class GridSettings(_Section):
    source: Literal["bundled", "electricitymaps", "watttime", "ukci", "carbon-aware-sdk"] = Field(
        "bundled",
        description="Where carbon intensity comes from; live sources fall back to the "
        "bundled history, labelled, whenever they fail.",
    )
    base_url: str | None = Field(
        None, description="The live API's base URL (default: the provider's public one)."
    )
    region: str | None = Field(
        None,
        description="The provider's name for the zone (Electricity Maps zone, WattTime region, "
        "UK region id or 'national', Carbon Aware SDK location); default: server.grid_zone.",
    )
    token_env: str = Field(
        "ELECTRICITYMAPS_API_KEY", description="Env var with the Electricity Maps token."
    )
    username_env: str = Field("WATTTIME_USERNAME", description="Env var: WattTime user.")
    password_env: str = Field("WATTTIME_PASSWORD", description="Env var: WattTime password.")
    refresh_s: float = Field(300.0, gt=0, description="How often the live source is polled.")
    timeout_s: float = Field(5.0, gt=0, description="Per-request timeout for the live source.")


class SchedulerSettings(_Section):
    policy: Literal["carbon", "now"] = Field(
        "carbon",
        description="When deferrable jobs start: the forecast-cleanest hours before their "
        "deadline (carbon) or at once (now).",
    )
    rebind_window_s: float = Field(
        6 * 3600.0,
        gt=0,
        le=LONGEST_WINDOW_S,
        description="Deadline for rebinding a stale document (s; at most 7 days, a batch's "
        "longest completion window).",
    )
    poll_s: float = Field(1.0, gt=0, description="How often the job runner looks for due jobs.")
    job_lease_s: float = Field(
        300.0,
        ge=1,
        description="A running job's lease, renewed every third of it while it runs; a "
        "process killed mid-job leaves its job to another runner this long after (a runner on "
        "the same host and PID namespace, as the restarted process, takes it as it starts or "
        "within a third of this).",
    )
    stop_drain_s: float = Field(
        15.0,
        ge=0,
        description="At shutdown, after the requests in flight (timeout_graceful_shutdown, "
        "10 s), how long a running batch may take to finish the line in flight before it is "
        "cut (cut: the line runs again after the restart, its energy spent twice); 0 cuts at "
        "once. Keep the two under the supervisor's kill timeout (Kubernetes: 30 s).",
    )
    price_csv: Path | None = Field(
        None,
        strict=False,
        description="Hourly price CSV (datetime_utc + price_column) to optimise price too.",
    )
    price_column: str = Field("usd_per_mwh", description="The price CSV's value column.")
    price_weight: float = Field(
        0.0,
        ge=0,
        le=1,
        description="0 = carbon only, 1 = price only, between: a weighted mix (needs price_csv).",
    )
    replan_s: float = Field(
        3600.0,
        gt=0,
        description="How often queued jobs are re-planned on a fresh forecast, and batches a "
        "process that died left without a job are looked for (also at start).",
    )
    batch_request_s: float = Field(
        2.0,
        gt=0,
        description="Estimated run time per batch line (s), to size its window; the mean a "
        "process measured replaces it when longer.",
    )


class DashboardSettings(_Section):
    enabled: bool = Field(True, description="Serve the operator dashboard at /dashboard.")
    session_hours: float = Field(
        12.0, gt=0, le=24 * 30, description="How long a dashboard login lasts (at most 30 days)."
    )
