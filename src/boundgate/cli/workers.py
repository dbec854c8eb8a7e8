"""`boundgate serve --workers N`: the app factory each worker process calls.

uvicorn starts N processes on one listening socket (a connection goes to whichever worker
accepts it) and each imports this module and calls :func:`app`. The settings come from the
parent, as JSON in ``BOUNDGATE_WORKER_SETTINGS``, so every worker serves exactly what the
parent checked. What the workers share is the store: the ledger, keys, jobs (leased, so
each runs once), documents, and the reuse change log each worker follows
(``ReuseEngine.follow``); what each holds alone is its local model, its ANN index and its
in-memory maps. Migrations at start-up run in one write transaction (SQLite
``BEGIN IMMEDIATE``; PostgreSQL under an advisory lock), so workers starting together
migrate once.
"""

from __future__ import annotations

import json
import os

from fastapi import FastAPI

from ..settings import Settings

WORKER_SETTINGS_ENV = "BOUNDGATE_WORKER_SETTINGS"


def app() -> FastAPI:
    """The app of one worker process, from the parent's settings. Raises ``RuntimeError``
    when started other than by ``boundgate serve --workers``."""
    from ..assembly import build_app

    raw = os.environ.get(WORKER_SETTINGS_ENV)
    if raw is None:
        raise RuntimeError(f"{WORKER_SETTINGS_ENV} is not set: start with boundgate serve")
    settings = Settings(**json.loads(raw))
    return build_app(settings)
