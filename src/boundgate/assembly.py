"""Build a gateway (and its app) from settings: the one place that wires parts together.

Tests and benchmarks pass their own store, backends, carbon source, meter or clock; anything
not passed is built from settings.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI

from .backends.base import Backend
from .backends.fake import FakeBackend
from .backends.llama_cpp import LlamaCppBackend
from .backends.openai_upstream import OpenAIBackend
from .clock import Clock, SystemClock
from .dashboard import Sessions, load_or_create_secret
from .energy import Meter, local_meter, upstream_meter
from .gateway import Gateway
from .grid import BundledCarbonSource
from .grid.base import CarbonSource
from .grid.live import (
    CarbonAwareSDK,
    ElectricityMaps,
    LiveCarbonSource,
    Provider,
    UKCarbonIntensity,
    WattTime,
)
from .grid.series import SeriesError
from .grid.signal import HOURS_PER_YEAR, CsvSignal
from .metrics import Metrics
from .profiles import EnergyProfiles
from .reuse.binding import Signer
from .reuse.embedder import Embedder, HashEmbedder, OnnxEmbedder
from .reuse.engine import ReuseEngine
from .reuse.pair import OnnxPairScorer, PairScorer, packaged_model_dir
from .reuse.prior import Prior
from .reuse.scoring import SCORERS
from .reuse.variants import CreativityBuffer
from .reuse.verifier import Verifier
from .routing.classifier import load_task_classifier
from .routing.ladder import Router
from .routing.tasks import TaskClassifier
from .scheduler.jobs import JobQueue, StartPolicy, run_now
from .scheduler.policy import CarbonAwareStart, MixedStart
from .settings import ConfigError, ModelSettings, Settings, redact_url
from .store import SchemaTooNewError, SQLiteStore, Store
from .tenants import Limiter

log = logging.getLogger("boundgate.jobs")


def build_store(settings: Settings) -> Store:
    """The configured store, not yet open: PostgreSQL at ``store.url``, else SQLite in
    ``server.data_dir``. Raises ``ConfigError`` naming ``store.url`` when the URL is set but
    the ``postgres`` extra is not installed, or naming ``server.data_dir`` when that
    directory cannot be created."""
    url = settings.store.url
    if url is None:
        try:
            Path(settings.server.data_dir).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"server.data_dir: cannot create {exc.filename}: {exc.strerror}"
            ) from None
        return SQLiteStore(settings.db_path)
    try:
        from .store.postgres import PostgresStore
    except ImportError as exc:
        raise ConfigError(
            f"store.url is set but the PostgreSQL driver is missing ({exc}); install the "
            "postgres extra: pip install 'boundgate[postgres]'"
        ) from None
    return PostgresStore(
        url,
        max_size=settings.store.pool_size,
        connect_timeout_s=settings.store.connect_timeout_s,
        key_cache_s=settings.store.key_cache_s,
        statement_timeout_s=settings.store.statement_timeout_s,
    )


def open_store(store: Store, settings: Settings) -> None:
    """Open ``store`` (connect, migrate). Raises ``ConfigError`` naming the setting when the
    configured database cannot be reached or used: ``store.url`` for PostgreSQL,
    ``server.data_dir`` for SQLite (e.g. a read-only directory: SQLite in WAL mode writes
    beside the database even to read it)."""
    url = settings.store.url
    if url is None:
        import sqlite3

        try:
            store.open()
        except SchemaTooNewError as exc:
            raise ConfigError(
                f"server.data_dir: the SQLite database in {settings.server.data_dir}: {exc}"
            ) from None
        except (sqlite3.Error, OSError) as exc:
            raise ConfigError(
                f"server.data_dir: cannot use the SQLite database in {settings.server.data_dir}:"
                f" {exc}"
            ) from None
        return
    import psycopg

    try:
        store.open()
    except SchemaTooNewError as exc:
        where = redact_url(url)
        raise ConfigError(f"store.url: the PostgreSQL database at {where}: {exc}") from None
    except (psycopg.Error, OSError, TimeoutError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise ConfigError(
            f"store.url: cannot use the PostgreSQL database at {redact_url(url)}: {reason}"
        ) from None


def build_backend(name: str, ms: ModelSettings, settings: Settings) -> Backend:
    backend = _build_backend(name, ms, settings)
    backend.reasoning = ms.reasoning
    backend.answer_labels = ms.answer_labels
    return backend


GGUF_MAGIC = b"GGUF"  # the first bytes of every GGUF file (llama.cpp's gguf.h, GGUF_MAGIC)


def _check_gguf(name: str, path: Path) -> None:
    """A configured llama.cpp model file must exist and be GGUF, checked as the gateway is
    built: found only when the models load, a wrong path was a 60-line traceback after the
    server had said it was serving (a new user's trial). Raises ``ConfigError``."""
    try:
        with path.open("rb") as f:
            magic = f.read(len(GGUF_MAGIC))
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"models.{name}.path: cannot read {path}: {reason}") from None
    if magic != GGUF_MAGIC:
        raise ConfigError(f"models.{name}.path: {path} is not a GGUF model file")


def _build_backend(name: str, ms: ModelSettings, settings: Settings) -> Backend:
    if ms.backend == "llama_cpp":
        if ms.path is not None:
            _check_gguf(name, ms.path)
        return LlamaCppBackend(
            name,
            path=ms.path,
            n_ctx=ms.n_ctx,
            n_threads=ms.n_threads,
            params_b=ms.params_b,
            queue_size=settings.limits.queue_size,
        )
    if ms.backend == "openai":
        assert ms.base_url is not None  # checked by ModelSettings
        api_key = None
        if ms.api_key_env:
            api_key = os.environ.get(ms.api_key_env)
            if api_key is None:
                raise ConfigError(
                    f"models.{name}.api_key_env: environment variable {ms.api_key_env} is not set"
                )
        return OpenAIBackend(
            name,
            base_url=ms.base_url,
            api_key=api_key,
            upstream_model=ms.upstream_model,
            params_b=ms.params_b,
            context_length=ms.context_length,
            timeout_s=ms.timeout_s,
            max_retries=ms.max_retries,
            backoff_s=ms.backoff_s,
        )
    return FakeBackend(name, params_b=ms.params_b or 0.135, context_length=ms.n_ctx)


def local_energy_meter(settings: Settings) -> Meter:
    return local_meter(settings.energy)


def default_meter_for(settings: Settings, local: Meter | None = None) -> Callable[[Backend], Meter]:
    """The local models' meter (``local``, else this host's from ``[energy]``) and the
    upstream models' per-token estimate."""
    local = local or local_energy_meter(settings)
    remote = upstream_meter(pue=settings.energy.upstream_pue)

    def meter_for(backend: Backend) -> Meter:
        return remote if backend.remote else local

    return meter_for


def build_embedder(settings: Settings) -> Embedder:
    r = settings.reuse
    if r.embedder == "hash":
        return HashEmbedder()
    return _packaged_embedder(_onnx_threads(settings))


def _onnx_threads(settings: Settings) -> int:
    """The intra-op threads of the packaged ONNX models: ``reuse.embed_threads``, else the
    cores up to 4."""
    return settings.reuse.embed_threads or min(4, os.cpu_count() or 1)


# The packaged ONNX models, loaded once per process and thread count: their sessions and
# tokenizers are read-only after loading and safe to share between threads, so every gateway
# a process builds (a test suite builds hundreds; the CLI's commands build one after another)
# shares one copy instead of loading and hashing about 70 MB each time (0.3-0.6 s a gateway).
@functools.cache
def _packaged_embedder(threads: int) -> OnnxEmbedder:
    return OnnxEmbedder(threads=threads)


@functools.cache
def _packaged_pair_scorer(model_dir: Path, threads: int) -> OnnxPairScorer:
    return OnnxPairScorer(model_dir, threads=threads)


def metrics_token(settings: Settings) -> str | None:
    """The bearer token /metrics requires, from ``server.metrics_token_env``. Raises
    ``ConfigError`` when the setting names a variable that is unset or empty."""
    name = settings.server.metrics_token_env
    if name is None:
        return None
    value = os.environ.get(name)
    if not value:
        raise ConfigError(f"server.metrics_token_env: environment variable {name} is not set")
    return value


def build_pair_scorer(
    settings: Settings, prior_file: str | None = "calibration.json"
) -> tuple[PairScorer, Prior | None]:
    """The shipped pair model and (with ``reuse.prior``) the calibration ``prior_file`` beside
    it as the verifier's prior (the scorer's: ``Scorer.prior_file``). Raises ``ConfigError``
    when the model is not in the package."""
    r = settings.reuse
    try:
        model_dir = packaged_model_dir()
    except FileNotFoundError as exc:
        raise ConfigError(f"reuse.scorer = '{r.scorer}': {exc}") from None
    scorer = _packaged_pair_scorer(model_dir, _onnx_threads(settings))
    prior = None
    if r.prior and prior_file is not None:
        prior = Prior.load(model_dir / prior_file, scorer.name)
    return scorer, prior


DEFAULT_GRID_URLS = {
    "electricitymaps": "https://api.electricitymap.org",
    "watttime": "https://api.watttime.org",
    "ukci": "https://api.carbonintensity.org.uk",
    "carbon-aware-sdk": "http://127.0.0.1:8090",
}


def build_carbon(settings: Settings) -> CarbonSource:
    """The bundled history, or a live provider that falls back to it (labelled)."""
    bundled = BundledCarbonSource()
    g = settings.grid
    if g.source == "bundled":
        return bundled
    base = g.base_url or DEFAULT_GRID_URLS[g.source]
    region = g.region or settings.server.grid_zone
    provider: Provider
    if g.source == "electricitymaps":
        provider = ElectricityMaps(base, region, os.environ.get(g.token_env))
    elif g.source == "watttime":
        user, password = os.environ.get(g.username_env), os.environ.get(g.password_env)
        if not user or not password:
            raise ConfigError(
                f"grid.source = 'watttime' needs {g.username_env} and {g.password_env} set"
            )
        provider = WattTime(base, region, user, password)
    elif g.source == "ukci":
        provider = UKCarbonIntensity(base, g.region or "national")
    else:
        provider = CarbonAwareSDK(base, region)
    return LiveCarbonSource(
        provider,
        settings.server.grid_zone,
        bundled,
        refresh_s=g.refresh_s,
        timeout_s=g.timeout_s,
    )


def check_zone(carbon: CarbonSource, zone: str, setting: str = "server.grid_zone") -> None:
    """Raise ``ConfigError`` (naming ``setting``, e.g. ``server.grid_zone`` or ``--zone``)
    when ``carbon`` lists its zones and ``zone`` is not among them."""
    zones = carbon.zones()
    if zones and zone not in zones:
        raise ConfigError(
            f"{setting}: no carbon data for {zone!r}; known zones: {', '.join(zones)}"
        )


def build_start_policy(settings: Settings, carbon: CarbonSource) -> StartPolicy:
    """The start policy of deferrable jobs, the one ``boundgate schedule plan`` shows too:
    ``run_now`` (``scheduler.policy = "now"``), ``MixedStart`` (a price file and
    ``price_weight`` above 0) or ``CarbonAwareStart``, for ``server.grid_zone``.

    Raises ``ConfigError`` naming ``scheduler.price_csv`` when the price file cannot be used;
    logs a warning when it does not cover every hour of a year (those hours take the file's
    nearest week, ``grid/signal.py``)."""
    sch = settings.scheduler
    if sch.policy != "carbon":
        return run_now
    zone = settings.server.grid_zone
    if sch.price_csv is None or sch.price_weight <= 0:
        return CarbonAwareStart(carbon, zone)
    try:
        price = CsvSignal(sch.price_csv, sch.price_column)
    except SeriesError as exc:
        raise ConfigError(f"scheduler.price_csv: {exc}") from None
    if price.hours_of_year < HOURS_PER_YEAR:
        log.warning(
            "scheduler.price_csv %s covers %d of the %d hours of a year (%s to %s): hours of "
            "the year it lacks take the same hour of the week from its nearest week",
            sch.price_csv,
            price.hours_of_year,
            HOURS_PER_YEAR,
            f"{price.first:%Y-%m-%d %H:00}",
            f"{price.last:%Y-%m-%d %H:00} UTC",
        )
    return MixedStart(carbon, zone, price, sch.price_weight)


def build_jobs(settings: Settings, store: Store, clock: Clock, carbon: CarbonSource) -> JobQueue:
    """The job queue, with the start policy of :func:`build_start_policy`."""
    return JobQueue(store, clock, build_start_policy(settings, carbon))


def build_reuse(
    settings: Settings,
    store: Store,
    clock: Clock,
    embedder: Embedder | None = None,
    jobs: JobQueue | None = None,
) -> ReuseEngine:
    r = settings.reuse
    try:
        scorer = SCORERS[r.scorer]()
    except (FileNotFoundError, ValueError) as exc:  # the blend's map is not in the package
        raise ConfigError(f"reuse.scorer = '{r.scorer}': {exc}") from None
    pair_scorer: PairScorer | None = None
    prior: Prior | None = None
    if scorer.uses_pair:
        pair_scorer, prior = build_pair_scorer(settings, scorer.prior_file)
    alternative = None
    if r.alternative_scorer != "none" and r.alternative_scorer != r.scorer:
        alternative = SCORERS[r.alternative_scorer]()
    verifier = Verifier(r, scorer=scorer, prior=prior, alternative=alternative)
    engine = ReuseEngine(
        store=store,
        embedder=embedder or build_embedder(settings),
        verifier=verifier,
        settings=r,
        rebind_window_s=settings.scheduler.rebind_window_s,
        clock=clock,
        # the key if it is there; else made by ``load`` once the store is open, where the
        # store allows it (``reuse.documents.load_signer``)
        signer=Signer.load(settings.server.data_dir),
        key_dir=settings.server.data_dir,
        jobs=jobs,
        index_dir=settings.server.data_dir / "index" if r.persist_index else None,
        pair_scorer=pair_scorer,
    )
    return engine


def build_task_classifier(
    settings: Settings, embedder: Embedder | None = None
) -> TaskClassifier | None:
    """The task classifier ``model: "auto"`` routes by: the shipped linear layer over the
    MiniLM vector (``routing/classifier.py``), sharing ``embedder`` (the reuse engine's) when
    it is the MiniLM one. None with ``reuse.embedder = "hash"`` (tests): the weights were
    trained on MiniLM vectors, so auto requests are then ``unclassified`` and follow
    ``routing.unclassified``, never a guess."""
    if settings.reuse.embedder == "hash":
        return None
    if not isinstance(embedder, OnnxEmbedder):
        embedder = build_embedder(settings)
    return load_task_classifier(embedder)


def build_router(
    settings: Settings, classifier: TaskClassifier | None, aliases: dict[str, str]
) -> Router:
    """The router of ``[routing]`` (``model: "auto"``); ``boundgate models`` builds one
    without a classifier to list its names as ``GET /v1/models`` does."""
    return Router(
        settings.routing,
        settings.energy,
        default_model=settings.default_model,
        aliases=aliases,
        classifier=classifier,
    )


def build_gateway(
    settings: Settings,
    *,
    store: Store | None = None,
    backends: dict[str, Backend] | None = None,
    carbon: CarbonSource | None = None,
    meter_for: Callable[[Backend], Meter] | None = None,
    clock: Clock | None = None,
    embedder: Embedder | None = None,
    reuse_meter: Meter | None = None,
    task_classifier: TaskClassifier | None = None,
) -> Gateway:
    carbon = carbon or build_carbon(settings)
    zone = settings.server.grid_zone
    check_zone(carbon, zone)
    if store is None:
        store = build_store(settings)
    clock = clock or SystemClock()
    if backends is None:
        backends = {name: build_backend(name, ms, settings) for name, ms in settings.models.items()}
    aliases = settings.model_aliases
    default = settings.default_model if settings.default_model in backends else next(iter(backends))
    jobs = build_jobs(settings, store, clock, carbon)
    reuse = build_reuse(settings, store, clock, embedder, jobs) if settings.reuse.enabled else None
    # one local meter for the local models and the lookups: the gateway splits its counter
    # among the requests measuring at once (``SharedMeter``), whichever kind they are
    local = local_energy_meter(settings) if meter_for is None or reuse_meter is None else None
    if reuse is not None and reuse_meter is None:
        reuse_meter = local
    classifier = task_classifier or build_task_classifier(
        settings, reuse.embedder if reuse is not None else embedder
    )
    return Gateway(
        backends=backends,
        default_model=default,
        store=store,
        carbon=carbon,
        meter_for=meter_for or default_meter_for(settings, local),
        grid_zone=zone,
        limiter=Limiter(store, clock, settings.limits),
        metrics=Metrics(tenant_label=settings.server.metrics_tenant_label),
        clock=clock,
        default_max_tokens=settings.limits.default_max_tokens,
        default_temperature=settings.reuse.default_temperature,
        aliases=aliases,
        reuse=reuse,
        reuse_meter=reuse_meter,
        jobs=jobs,
        creativity=CreativityBuffer(store, jobs, clock, settings.creativity, settings.limits)
        if settings.creativity.enabled and reuse is not None
        else None,
        reasoning=settings.reasoning,
        profiles=EnergyProfiles(store, backends, settings.energy),
        router=build_router(settings, classifier, aliases),
        open_lease_s=settings.store.open_request_lease_s,
    )


def build_app(settings: Settings, **parts: object) -> FastAPI:
    from .server.app import create_app
    from .server.local import LocalHosts

    gateway = build_gateway(settings, **parts)  # type: ignore[arg-type]
    dashboard = None
    if settings.dashboard.enabled:
        secret = load_or_create_secret(settings.server.data_dir)
        dashboard = Sessions(secret, settings.dashboard.session_hours * 3600.0)
    return create_app(
        gateway,
        max_body_bytes=settings.server.max_body_bytes,
        max_file_bytes=settings.server.max_file_bytes,
        body_read_timeout_s=settings.server.body_read_timeout_s,
        job_poll_s=settings.scheduler.poll_s,
        job_replan_s=settings.scheduler.replan_s,
        job_lease_s=settings.scheduler.job_lease_s,
        job_drain_s=settings.scheduler.stop_drain_s,
        batch_request_s=settings.scheduler.batch_request_s,
        dashboard=dashboard,
        metrics_token=metrics_token(settings),
        local_hosts=LocalHosts(settings.server.host, tuple(settings.server.allowed_hosts)),
    )
