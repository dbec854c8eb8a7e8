"""A real server process: kill -9 under load loses no answered request; CLI round trips."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from boundgate.store import SQLiteStore
from boundgate.testing import free_port
from conftest import write_config

CLI = [sys.executable, "-m", "boundgate"]


class ServerProcess:
    def __init__(self, tmp: Path) -> None:
        self.data = tmp / "data"
        self.cfg = write_config(
            tmp / "b.toml",
            f"""
[server]
data_dir = "{self.data}"

[models.fake]
backend = "fake"
default = true
""",
        )
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [*CLI, "serve", "--config", str(self.cfg), "--port", str(self.port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.base + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.proc.kill()
        raise RuntimeError(
            "server did not become ready: " + (self.proc.stderr.read() if self.proc.stderr else "")
        )

    def cli(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CLI, *args],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, **(env or {})},
        )


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    s = ServerProcess(tmp_path)
    yield s
    if s.proc.poll() is None:
        s.proc.kill()
    s.proc.wait()


def test_kill_9_under_load_loses_no_answered_request(server: ServerProcess) -> None:
    answered: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def worker() -> None:
        with httpx.Client(base_url=server.base, timeout=5) as c:
            while not stop.is_set():
                try:
                    r = c.post(
                        "/v1/chat/completions",
                        json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4},
                    )
                except httpx.HTTPError:
                    return
                if r.status_code == 200:
                    with lock:
                        answered.append(r.headers["x-request-id"])

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while len(answered) < 300 and time.monotonic() < deadline:
        time.sleep(0.01)
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait()
    stop.set()
    for t in threads:
        t.join(10)
    assert len(answered) >= 300
    store = SQLiteStore(server.data / "boundgate.db")
    store.open()
    try:
        ids = {r.id for r in store.ledger()}
    finally:
        store.close()
    missing = [a for a in answered if a not in ids]
    assert not missing, f"{len(missing)} answered requests missing from the ledger"


def test_cli_keys_ask_report(server: ServerProcess) -> None:
    cfg = ["--config", str(server.cfg)]
    r = server.cli("ask", "hello?", "--url", server.base + "/v1")
    assert r.returncode == 0, r.stderr
    assert "Answer" in r.stdout and "Wh" in r.stderr and "gCO2e" in r.stderr

    created = server.cli("keys", "create", "--tenant", "acme", *cfg)
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    assert secret.startswith("bg-")
    listed = server.cli("keys", "list", *cfg)
    assert "acme" in listed.stdout and secret not in listed.stdout

    # The running server now requires keys.
    r = server.cli("ask", "hello?", "--url", server.base + "/v1")
    assert r.returncode == 1 and "401" in r.stderr
    r = server.cli("ask", "hello?", "--url", server.base + "/v1", env={"BOUNDGATE_API_KEY": secret})
    assert r.returncode == 0, r.stderr

    report = server.cli("report", "--since", "1h", "--format", "json", *cfg)
    rows = json.loads(report.stdout)["rows"]
    assert {row["tenant"] for row in rows} >= {"local", "acme"}
    assert all(row["wh"] > 0 for row in rows if row["requests"] > row["errors"])
    csv_out = server.cli("report", "--format", "csv", *cfg).stdout
    assert csv_out.splitlines()[0].startswith("tenant,model,requests")

    key_id = secret.split("-")[1]
    assert server.cli("keys", "revoke", key_id, *cfg).returncode == 0
    r = server.cli("ask", "hello?", "--url", server.base + "/v1", env={"BOUNDGATE_API_KEY": secret})
    assert r.returncode == 1
