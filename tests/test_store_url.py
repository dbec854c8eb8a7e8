"""``store.url``: the gateway and its CLI on the configured PostgreSQL database, and a clear
start-up failure when that database cannot be used."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from boundgate.testing import free_port
from helpers import write_config

CLI = [sys.executable, "-m", "boundgate"]


def _config(tmp: Path) -> Path:
    return write_config(
        tmp / "b.toml",
        f"""
[server]
data_dir = "{tmp / "data"}"

[models.fake]
backend = "fake"
default = true
""",
    )


def _cli(tmp: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BOUNDGATE_STORE__URL": url}
    return subprocess.run(
        [*CLI, *args, "--config", str(_config(tmp))],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_serve_with_an_unreachable_database_fails_naming_the_setting(tmp_path: Path) -> None:
    url = f"postgresql://boundgate:s3cret@127.0.0.1:{free_port()}/nothing"
    done = _cli(tmp_path, url, "serve", "--port", str(free_port()))
    assert done.returncode == 2, done.stderr
    assert "store.url" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert "s3cret" not in done.stderr  # the password is not echoed


def test_serve_with_a_url_that_is_not_postgresql_fails_naming_the_setting(
    tmp_path: Path,
) -> None:
    done = _cli(tmp_path, "mysql://localhost/db", "serve", "--port", str(free_port()))
    assert done.returncode == 2
    assert "store.url" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_keys_cli_uses_the_configured_database(tmp_path: Path, postgres_schema: str) -> None:
    created = _cli(tmp_path, postgres_schema, "keys", "create", "--tenant", "acme")
    assert created.returncode == 0, created.stderr
    listed = _cli(tmp_path, postgres_schema, "keys", "list")
    assert listed.returncode == 0, listed.stderr
    assert "acme" in listed.stdout
    assert not (tmp_path / "data" / "boundgate.db").exists()  # nothing went to SQLite


@pytest.mark.parametrize("command", [["report"], ["docs", "list"]])
def test_report_and_docs_read_the_configured_database(
    tmp_path: Path, postgres_schema: str, command: list[str]
) -> None:
    done = _cli(tmp_path, postgres_schema, *command)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "data" / "boundgate.db").exists()


def test_settings_listing_hides_the_password(tmp_path: Path) -> None:
    done = _cli(tmp_path, "postgresql://boundgate:s3cret@db:5432/x", "settings", "--format", "json")
    assert done.returncode == 0, done.stderr
    (url,) = [s["value"] for s in json.loads(done.stdout) if s["key"] == "store.url"]
    assert url == "postgresql://boundgate:***@db:5432/x"


@pytest.mark.parametrize("command", [["report"], ["serve", "--port", "0"]])
def test_a_data_dir_sqlite_cannot_use_fails_naming_the_setting(
    tmp_path: Path, command: list[str]
) -> None:
    """No ``store.url``: SQLite in ``server.data_dir``. A data dir it cannot use (here a file
    where the directory should be; a trial's was mounted read-only) is one line naming the
    setting and exit status 2, not a traceback."""
    (tmp_path / "data").write_text("not a directory")
    done = subprocess.run(
        [*CLI, *command, "--config", str(_config(tmp_path))],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k != "BOUNDGATE_STORE__URL"},
    )
    assert done.returncode == 2, done.stderr
    assert "server.data_dir" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


@pytest.mark.parametrize("command", [["report"], ["keys", "list"], ["schedule", "list"]])
def test_reading_commands_do_not_create_a_store_in_a_mistyped_data_dir(
    tmp_path: Path, command: list[str]
) -> None:
    """A trial's `boundgate report --data-dir /nonexistent/x` created an empty store there
    and printed an empty report. The refusal names the database file it looked for and the
    options that point at the server's, with exit status 2 (a usage error)."""
    mistyped = tmp_path / "nonexistent" / "x"
    done = subprocess.run(
        [*CLI, *command, "--data-dir", str(mistyped)],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k != "BOUNDGATE_STORE__URL"},
    )
    assert done.returncode == 2, done.stderr
    assert f"no boundgate store at {mistyped / 'boundgate.db'}" in done.stderr
    assert "--config" in done.stderr and "--data-dir" in done.stderr
    assert not mistyped.exists()


def _migrated_ahead(tmp: Path, url: str | None) -> None:
    """The store in ``url`` (None: SQLite in the data dir) with a migration this version does
    not know, as a newer boundgate would leave it."""
    created = _cli(tmp, url or "", "keys", "create", "--tenant", "acme")
    assert created.returncode == 0, created.stderr
    if url is None:
        import sqlite3

        with sqlite3.connect(tmp / "data" / "boundgate.db") as conn:
            conn.execute("INSERT INTO schema_migrations VALUES (9998, '9998_future.sql', 0)")
    else:
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("INSERT INTO schema_migrations VALUES (9998, '9998_future.sql', 0)")


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_database_a_newer_version_migrated_is_refused_at_start(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    """A trial's replica served a database with two migrations it did not know: 500s and
    streams cut without an error. It is refused at start, naming the setting, exit 2."""
    url = request.getfixturevalue("postgres_schema") if backend == "postgres" else None
    _migrated_ahead(tmp_path, url)
    for command in (["keys", "list"], ["serve", "--port", str(free_port())]):
        done = _cli(tmp_path, url or "", *command)
        assert done.returncode == 2, done.stderr
        setting = "store.url" if url else "server.data_dir"
        assert f"{setting}: the " in done.stderr, done.stderr
        assert "schema is at migration 9998, newer than this version" in done.stderr
        assert "Traceback" not in done.stderr + done.stdout
