"""Shared fixtures: real servers on ephemeral ports, real SQLite, real SmolLM2."""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import os
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from boundgate.assembly import build_app
from boundgate.settings import Settings, load_settings
from boundgate.testing import ThreadedServer

T = TypeVar("T")

# Tests must not pick up a developer's configuration (BOUNDGATE_TEST_* switch tests, not the
# gateway: they stay).
for _name in list(os.environ):
    if _name.startswith("BOUNDGATE_") and not _name.startswith("BOUNDGATE_TEST_"):
        del os.environ[_name]


def wait_until(cond: Any, timeout: float = 20.0) -> Any:
    """Poll ``cond`` until it returns something truthy (and return that), or fail."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def arun(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine (a store call) from synchronous test code; on a worker thread when
    this thread already runs an event loop (Playwright's sync API does)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def write_config(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def fake_settings(tmp: Path, extra: str = "") -> Settings:
    cfg = write_config(
        tmp / "boundgate.toml",
        f"""
[server]
data_dir = "{tmp / "data"}"
grid_zone = "DE-LU"

[models.fake]
backend = "fake"
default = true
params_b = 1
{extra}
""",
    )
    return load_settings(cfg)


class Live:
    """A running gateway and handy clients for it."""

    def __init__(self, server: ThreadedServer, app: Any) -> None:
        self.server = server
        self.app = app
        self.url = server.url
        self.base = server.base_url
        self.http = httpx.Client(base_url=server.base_url, timeout=120)

    @property
    def gateway(self) -> Any:
        return self.app.state.gateway

    def openai(self, api_key: str = "unused") -> Any:
        import openai

        return openai.OpenAI(base_url=self.url, api_key=api_key, max_retries=0)

    def ledger(self) -> dict[str, Any]:
        return {r.id: r for r in arun(self.gateway.store.ledger())}


@pytest.fixture
def fake_live(tmp_path: Path) -> Iterator[Live]:
    app = build_app(fake_settings(tmp_path))
    with ThreadedServer(app) as srv:
        live = Live(srv, app)
        yield live
        live.http.close()


@pytest.fixture(scope="session")
def local_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """The default configuration: packaged SmolLM2 through llama.cpp (loaded once)."""
    tmp = tmp_path_factory.mktemp("local")
    cfg = write_config(
        tmp / "boundgate.toml",
        f"""
[server]
data_dir = "{tmp / "data"}"

[limits]
queue_size = 1

[models.smollm2-135m]
backend = "llama_cpp"
default = true
n_ctx = 512
""",
    )
    app = build_app(load_settings(cfg))
    with ThreadedServer(app) as srv:
        live = Live(srv, app)
        yield live
        live.http.close()


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


def assert_error(
    r: Any, status: int, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """An error response in OpenAI's shape with this status (and param/code if given)."""
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["message"] and "Traceback" not in err["message"]
    if param is not None:
        assert err["param"] == param
    if code is not None:
        assert err["code"] == code
    return err
