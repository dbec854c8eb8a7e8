"""Shared fixtures: real servers on ephemeral ports, real SQLite, real SmolLM2 (helpers the
test modules import are in ``helpers.py``)."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Tests must not pick up a developer's configuration (BOUNDGATE_TEST_* switch tests, not the
# gateway: they stay).
for _name in list(os.environ):
    if _name.startswith("BOUNDGATE_") and not _name.startswith("BOUNDGATE_TEST_"):
        del os.environ[_name]

from boundgate.assembly import build_app  # noqa: E402
from helpers import Live, fake_settings, local_server  # noqa: E402


@pytest.fixture
def fake_live(tmp_path: Path) -> Iterator[Live]:
    """A gateway on the fake backend, in-process (no socket)."""
    with Live.in_process(build_app(fake_settings(tmp_path))) as live:
        yield live


@pytest.fixture(scope="session")
def local_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """The default configuration: packaged SmolLM2 through llama.cpp (loaded once). Tests that
    occupy the model (queue, disconnects) start their own with ``local_server`` instead."""
    with local_server(tmp_path_factory.mktemp("local")) as live:
        yield live


@pytest.fixture
def open_dash(tmp_path: Path) -> Iterator[Any]:
    """The dashboard in open local mode over a seeded store (see dashboard_seed.py)."""
    from dashboard_seed import start

    yield from start(tmp_path, keyed=False)


@pytest.fixture
def keyed_dash(tmp_path: Path) -> Iterator[Any]:
    """The dashboard with an admin and a tenant key, over a seeded store."""
    from dashboard_seed import start

    yield from start(tmp_path, keyed=True)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL server for the session (see ``pg_server.py``). Fails when it
    cannot start; skips when ``BOUNDGATE_TEST_POSTGRES=0``."""
    if os.environ.get("BOUNDGATE_TEST_POSTGRES") == "0":
        pytest.skip("BOUNDGATE_TEST_POSTGRES=0: PostgreSQL store tests not run")
    from pg_server import PostgresServer

    server = PostgresServer().start()
    try:
        yield server.url
    finally:
        server.stop()


_pg_schemas = itertools.count(1)


@pytest.fixture
def postgres_schema(postgres_url: str) -> str:
    """The URL of a fresh, empty schema on the session's server (``search_path`` set to it)."""
    import psycopg

    schema = f"test_{next(_pg_schemas)}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return f"{postgres_url}?options=-csearch_path%3D{schema}"
