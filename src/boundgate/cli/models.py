"""``boundgate models``: the configured models with their energy profiles, and ``boundgate
models profile`` to measure them on this host (see ``profiles.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from .console import fail

if TYPE_CHECKING:
    from ..backends.base import Backend
    from ..routing.ladder import Router
    from ..settings import Settings
    from ..store import EnergyProfileRow, Store

from . import ConfigOpt, DataDirOpt

models_app = typer.Typer(
    help="List the configured models (with their energy profiles); measure profiles.",
    invoke_without_command=True,
)


def _backends(settings: Settings) -> dict[str, Backend]:
    """The configured models as backends, identified but not loaded (a local model's version
    comes from its file; a model that cannot be built or read keeps its name as version)."""
    from ..assembly import build_backend
    from ..backends.llama_cpp import LlamaCppBackend
    from ..backends.openai_upstream import OpenAIBackend
    from ..settings import ConfigError

    out: dict[str, Backend] = {}
    for name, ms in settings.models.items():
        try:
            b = build_backend(name, ms, settings)
        except (ConfigError, FileNotFoundError):
            continue
        if isinstance(b, LlamaCppBackend):
            with contextlib.suppress(OSError):
                b.identify()
        if isinstance(b, OpenAIBackend):
            asyncio.run(b.aclose())  # only its figures are needed
        out[name] = b
    return out


class _NoProfiles:
    """The profiles of a data dir without a store: none. ``boundgate models`` lists the
    models with it rather than create an empty store (in a mistyped ``--data-dir``)."""

    async def put_profile(self, profile: EnergyProfileRow) -> None:
        raise RuntimeError("no store to keep a profile in")

    async def profiles(self, host: str | None = None) -> list[EnergyProfileRow]:
        return []


def _range(value: float, lo_hi: list[float]) -> str:
    return f"{value:.3g} ({lo_hi[0]:.3g}-{lo_hi[1]:.3g})"


@models_app.callback()
def models(ctx: typer.Context, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """List the configured models with their energy profiles (measured on this host, or the
    labelled per-token estimate), the names that route (auto), and the embeddings model when
    reuse is on: what ``GET /v1/models`` lists, in its order.

    Without a store in the data dir it makes none: the models are listed with their
    estimates, and a note says so."""
    if ctx.invoked_subcommand is not None:
        return
    from ..assembly import build_router
    from ..gateway import EMBEDDING_MODEL, listed_models
    from ..profiles import EnergyProfiles
    from . import _settings, err, opened_store, out, store_missing

    settings = _settings(config, data_dir=data_dir)
    backends = _backends(settings)
    router = build_router(settings, None, settings.model_aliases)  # (no classifier: names)
    table = Table(
        "id",
        "backend",
        "default",
        "where",
        "params (B)",
        "reasoning",
        "Wh / 1k prompt tokens",
        "Wh / 1k output tokens",
        "energy profile",
    )
    if store_missing(settings):  # a mistyped --data-dir, or nothing served here yet
        err.print(
            f"note: no boundgate store at {settings.db_path.resolve()}: no measured energy "
            "profiles to show (give the server's config with --config or its data directory "
            "with --data-dir)",
            markup=False,
            highlight=False,
        )
        profiles = EnergyProfiles(_NoProfiles(), backends, settings.energy)
    else:
        with opened_store(settings, existing=True) as store:
            profiles = EnergyProfiles(store, backends, settings.energy)
            asyncio.run(profiles.refresh())
    rows = listed_models(settings.models, router.model_names(), embeddings=settings.reuse.enabled)
    for name in rows:
        if name == EMBEDDING_MODEL and settings.reuse.enabled:  # what /v1/embeddings serves
            table.add_row(*_embeddings_row(settings))
            continue
        if name not in settings.models:  # auto, auto:<ladder>: the gateway picks the model
            table.add_row(*_auto_row(router, name))
            continue
        m = settings.models[name]
        if m.backend == "fake":
            where = "fake backend (deterministic answers, no model; for tests)"
        else:
            where = m.base_url or str(m.path or "packaged SmolLM2-135M-Instruct Q4_1")
        cells = ["", "", "unknown"]
        params_b = m.params_b
        if name in backends:
            # the backend's figure, as GET /v1/models gives it (a local model's from its file)
            params_b = backends[name].params_b
            d = profiles.describe(name)
            if d["source"] == "profile":
                when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(d["measured_at"]))
                label = f"{d['method']}, {when} UTC on {d['host']}"
            elif backends[name].remote:
                label = "estimate (EcoLogits, output tokens only)"
            else:  # EcoLogits models GPU servers: far above a small model on this CPU
                label = (
                    "estimate (EcoLogits' GPU-server model, output tokens only; not this "
                    "host: measure it with `boundgate models profile`)"
                )
            cells = [
                _range(d["prompt_wh_per_1k_tokens"], d["prompt_wh_per_1k_tokens_range"]),
                _range(d["output_wh_per_1k_tokens"], d["output_wh_per_1k_tokens_range"]),
                label,
            ]
        table.add_row(
            name,
            m.backend,
            "yes" if name == settings.default_model else "",
            where,
            "" if params_b is None else f"{params_b:g}",
            "yes" if m.reasoning else "",
            *cells,
        )
    out.print(table)


def _auto_row(router: Router, name: str) -> list[str]:
    """An auto name's row: the ladders it routes over (``Router.ladders_of``), as
    ``GET /v1/models`` gives them. No energy profile: each rung that runs is metered as its
    model is."""
    ladders = router.ladders_of(name)
    where = "; ".join(f"ladder {k}: {' → '.join(rungs)}" for k, rungs in ladders.items())
    if name == router.auto_model:
        where = f"by task, {where}"
    return [name, "router", "", where, "", "", "", "", "per rung: its model's"]


def _embeddings_row(settings: Settings) -> list[str]:
    """The embeddings model's row (the reuse layer's embedder; not loaded to list it). No
    energy profile: each embeddings request is metered as it runs."""
    from ..gateway import EMBEDDING_MODEL
    from ..reuse.embedder import OnnxEmbedder

    minilm = settings.reuse.embedder == "minilm"
    where = "packaged int8 ONNX" if minilm else "hash embedder (tests)"
    params = f"{OnnxEmbedder.params_b:g}" if minilm else ""
    return [
        EMBEDDING_MODEL,
        "onnx",
        "",
        f"{where}, POST /v1/embeddings",
        params,
        "",
        "",
        "",
        "metered per request",
    ]


async def _profile_all(
    settings: Settings,
    store: Store,
    names: list[str],
    *,
    runs: int,
    prompt_tokens: int,
    output_tokens: int,
) -> tuple[list[EnergyProfileRow], dict[str, dict[str, Any]]]:
    from ..assembly import build_backend
    from ..clock import SystemClock
    from ..energy import local_meter
    from ..profiles import EnergyProfiles, measure_profile
    from . import err

    meter = local_meter(settings.energy)
    measured: list[EnergyProfileRow] = []
    estimated: dict[str, dict[str, Any]] = {}
    for name in names:
        backend = build_backend(name, settings.models[name], settings)
        try:
            if backend.remote:  # not measurable here: the estimate it is metered with
                estimated[name] = EnergyProfiles(store, {name: backend}, settings.energy).describe(
                    name
                )
                continue
            err.print(f"profiling {name}: loading", highlight=False)
            await backend.start()
            words = prompt_tokens
            if backend.context_length is not None:  # leave room for the answer
                words = max(1, min(words, (backend.context_length - output_tokens) // 2))
            err.print(
                f"profiling {name}: {runs} prefill runs (~{words} prompt tokens) and {runs} "
                f"decode runs (up to {output_tokens} output tokens) with the {meter.name} meter",
                highlight=False,
            )
            p = await measure_profile(
                backend,
                meter,
                SystemClock(),
                runs=runs,
                prompt_tokens=words,
                output_tokens=output_tokens,
            )
            await store.put_profile(p)
            measured.append(p)
        finally:
            await backend.aclose()
    return measured, estimated


@models_app.command("profile")
def profile(
    model: Annotated[
        str | None, typer.Argument(help="A configured model (default: every model).")
    ] = None,
    runs: Annotated[int, typer.Option(min=1, help="Metered runs of each kind.")] = 3,
    prompt_tokens: Annotated[
        int, typer.Option(min=1, help="Prompt length of a prefill run (about, in tokens).")
    ] = 512,
    output_tokens: Annotated[
        int, typer.Option(min=1, help="Most output tokens of a decode run.")
    ] = 64,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Measure each local model's energy per 1000 prompt and output tokens on this host.

    The profiles are stored; upstream models show the per-token estimate they are metered
    with."""
    from ..profiles import profile_dict
    from ..settings import ConfigError
    from . import (
        _settings,
        err,
        opened_store,
        out,
        store_missing,
        store_named,
        store_pointed,
        warn_new_store,
    )

    settings = _settings(config, data_dir=data_dir)
    if model is not None and model not in settings.models:
        err.print(f"no such model: {model} (configured: {', '.join(settings.models)})")
        raise typer.Exit(2)
    names = [model] if model is not None else list(settings.models)
    created = store_missing(settings)
    with opened_store(settings) as store:
        if created:  # profiles no server reads (a mistyped --data-dir), as keys create warns
            warn_new_store(
                store_named(settings),
                "this command",
                "profile a server's models",
                pointed=store_pointed(config, data_dir),
            )
        try:
            measured, estimated = asyncio.run(
                _profile_all(
                    settings,
                    store,
                    names,
                    runs=runs,
                    prompt_tokens=prompt_tokens,
                    output_tokens=output_tokens,
                )
            )
        except ConfigError as exc:  # energy.method forcing a meter this host cannot read
            raise fail(str(exc), 2) from None
        except ValueError as exc:  # a measurement that cannot stand (no tokens, no output cost)
            raise fail(str(exc), 1) from None
    table = Table(
        "id",
        "method",
        "Wh / 1k prompt tokens",
        "Wh / 1k output tokens",
        "prompt tokens/s",
        "output tokens/s",
        "measured",
    )
    for p in measured:
        d = profile_dict(p)
        table.add_row(
            p.model,
            p.method,
            _range(d["prompt_wh_per_1k_tokens"], d["prompt_wh_per_1k_tokens_range"]),
            _range(d["output_wh_per_1k_tokens"], d["output_wh_per_1k_tokens_range"]),
            f"{p.prompt_tokens_per_s:.1f}",
            f"{p.output_tokens_per_s:.1f}",
            f"{p.runs} runs on {p.host} ({p.cpu}), {p.model_version}",
        )
    for name, d in estimated.items():
        table.add_row(
            name,
            "estimate",
            _range(d["prompt_wh_per_1k_tokens"], d["prompt_wh_per_1k_tokens_range"]),
            _range(d["output_wh_per_1k_tokens"], d["output_wh_per_1k_tokens_range"]),
            "",
            "",
            "upstream: EcoLogits per-token estimate, not measured",
        )
    out.print(table)
