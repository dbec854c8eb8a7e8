"""The app each benchmark worker serves (``uvicorn _replica_app:app --factory [--workers N]``,
as ``boundgate serve --workers`` runs its workers): the gateway of ``BOUNDGATE_CONFIG``, on
the PostgreSQL store at ``BOUNDGATE_BENCH_STORE_URL`` when that is set, else on the settings'
SQLite store. Until ``store.url`` is a setting, this is how a benchmark picks the store."""

from __future__ import annotations

import os

from fastapi import FastAPI


def app() -> FastAPI:
    from boundgate.assembly import build_app
    from boundgate.settings import load_settings

    url = os.environ.get("BOUNDGATE_BENCH_STORE_URL")
    if not url:
        return build_app(load_settings())
    from boundgate.store.postgres import PostgresStore

    return build_app(load_settings(), store=PostgresStore(url))
