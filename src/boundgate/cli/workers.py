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

A worker never outlives the parent: the parent's pid comes in ``BOUNDGATE_WORKER_PARENT``
and :func:`exit_with_parent` turns the parent's death (``kill -9`` included) into a SIGTERM
to the worker, so it stops as on a SIGTERM shutdown (in-flight requests finish within the
graceful timeout, then are cancelled) and frees the port.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import os
import signal
import sys
import threading
import time

from fastapi import FastAPI

from ..settings import Settings

WORKER_SETTINGS_ENV = "BOUNDGATE_WORKER_SETTINGS"
WORKER_PARENT_ENV = "BOUNDGATE_WORKER_PARENT"
PARENT_POLL_S = 0.5  # how often the portable watcher compares os.getppid() with the parent
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _parent_death_signal(sig: int) -> bool:
    """Ask Linux to send ``sig`` to this process when the thread that started it exits
    (``prctl(PR_SET_PDEATHSIG)``). False where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return int(libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def exit_with_parent(parent_pid: int, poll_s: float = PARENT_POLL_S) -> threading.Thread:
    """Send this process SIGTERM once its parent ``parent_pid`` is gone, whatever killed it.

    On Linux the kernel sends it at once (``PR_SET_PDEATHSIG``: uvicorn's parent starts its
    workers from its main thread, so that thread ends only with the process); everywhere a
    daemon thread also compares ``os.getppid()`` with ``parent_pid`` every ``poll_s`` seconds
    (an orphan is adopted by another process), which also covers a parent that died before
    this call.
    SIGTERM is what the parent sends on a normal shutdown, so uvicorn's handler stops the
    worker the same way. Returns the watching thread (started)."""
    _parent_death_signal(signal.SIGTERM)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(poll_s)
        with contextlib.suppress(ProcessLookupError):
            os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=watch, name="boundgate-parent-watch", daemon=True)
    thread.start()
    return thread


def app() -> FastAPI:
    """The app of one worker process, from the parent's settings. Raises ``RuntimeError``
    when started other than by ``boundgate serve --workers``."""
    from ..assembly import build_app

    raw = os.environ.get(WORKER_SETTINGS_ENV)
    if raw is None:
        raise RuntimeError(f"{WORKER_SETTINGS_ENV} is not set: start with boundgate serve")
    parent = os.environ.get(WORKER_PARENT_ENV)
    if parent is not None:
        exit_with_parent(int(parent))
    settings = Settings(**json.loads(raw))
    return build_app(settings)
