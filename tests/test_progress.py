"""Progress bars: on stderr, only on a terminal, never beside machine output on stdout.

``TTY_COMPATIBLE=1`` makes rich treat stderr as a terminal (https://rich.readthedocs.io), so
the bars are drawn into the captured stream here as they would be for a person.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from boundgate.assembly import build_app
from boundgate.cli import app as cli
from boundgate.cli.progress import Steps, shown, track
from boundgate.store import DocumentRow, SQLiteStore
from boundgate.testing import ThreadedServer
from helpers import fake_settings, one_line_batch_file, wait_until

TTY = {"TTY_COMPATIBLE": "1"}


def test_shown_only_on_a_terminal_and_not_beside_machine_output(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TTY_COMPATIBLE", "0")
    assert not shown()
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    assert shown() and not shown(machine_output=True)


def test_track_draws_on_stderr_and_yields_everything(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    assert list(track(range(5), "counting")) == [0, 1, 2, 3, 4]
    captured = capsys.readouterr()
    assert "counting" in captured.err and captured.out == ""
    assert list(track(range(3), "quiet", machine_output=True)) == [0, 1, 2]
    assert "quiet" not in capsys.readouterr().err


def test_steps_show_the_current_step_and_stop(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    steps = Steps()
    steps.update("loading stored answers", 0, 10)
    steps.update("starting model m", 0, 1)
    steps.finish()
    steps.finish()  # idempotent
    err = capsys.readouterr().err
    assert "loading stored answers" in err and "0/10" in err and "starting model m" in err


class Recorder:
    """A StartupSteps that remembers what it was told."""

    def __init__(self) -> None:
        self.steps: list[tuple[str, int, int | None]] = []
        self.finished = 0

    def update(self, step: str, done: int = 0, total: int | None = None) -> None:
        self.steps.append((step, done, total))

    def finish(self) -> None:
        self.finished += 1


def test_server_start_up_reports_its_steps(tmp_path: Path) -> None:
    app = build_app(fake_settings(tmp_path))
    recorder = Recorder()
    app.state.startup = recorder
    with ThreadedServer(app):
        assert app.state.ready
    names = [s for s, _, _ in recorder.steps]
    assert "starting model fake" in names and names[0] == "loading stored answers"
    assert recorder.finished == 1


def _docs(data: Path, n: int) -> None:
    store = SQLiteStore(data / "boundgate.db")
    store.open()
    try:
        for i in range(n):
            asyncio.run(store.put_document(
                DocumentRow(
                    id=f"doc_{i}", entry=None, tenant="t", model="m", model_version="v",
                    state="active", supersedes=None, superseded_by=None, created=1000.0 + i,
                    body=json.dumps({"@id": f"doc_{i}"}),
                )
            ))  # fmt: skip
    finally:
        store.close()


def test_docs_export_bar_only_when_writing_a_file(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    _docs(data, 3)
    runner = CliRunner()
    out = tmp_path / "docs.ndjson"
    args = ["docs", "export", "--format", "ndjson", "--data-dir", str(data)]
    res = runner.invoke(cli, [*args, "--out", str(out)], env=TTY)
    assert res.exit_code == 0, res.output
    assert "exporting documents" in res.stderr
    assert len(out.read_text().splitlines()) == 3
    res = runner.invoke(cli, args, env=TTY)  # NDJSON on stdout: no bar
    assert res.exit_code == 0, res.output
    assert [json.loads(x)["@id"] for x in res.stdout.splitlines()] == ["doc_2", "doc_1", "doc_0"]
    assert res.stderr == ""
    res = runner.invoke(cli, [*args, "--out", str(out)])  # not a terminal: no bar, the count
    assert res.exit_code == 0 and res.stderr == "exported 3 active documents\n"


def test_batch_upload_and_download_bars(tmp_path: Path) -> None:
    settings = fake_settings(tmp_path)
    settings.scheduler.policy = "now"
    settings.scheduler.poll_s = 0.05
    app = build_app(settings)
    infile = one_line_batch_file(tmp_path / "in.jsonl")
    runner = CliRunner()
    with ThreadedServer(app) as srv:
        res = runner.invoke(cli, ["batch", "submit", str(infile), "--url", srv.url], env=TTY)
        assert res.exit_code == 0, res.output
        assert "uploading in.jsonl" in res.stderr
        batch_id = json.loads(res.stdout)["id"]  # stdout: exactly the JSON line

        def completed() -> Any:
            r = runner.invoke(cli, ["batch", "status", batch_id, "--url", srv.url])
            return json.loads(r.stdout)["status"] == "completed"

        wait_until(completed)
        out = tmp_path / "out.jsonl"
        args = ["batch", "results", batch_id, "--url", srv.url]
        res = runner.invoke(cli, [*args, "--out", str(out)], env=TTY)
        assert res.exit_code == 0, res.output
        assert "downloading results" in res.stderr
        assert json.loads(out.read_text())["custom_id"] == "c0"
        res = runner.invoke(cli, args, env=TTY)  # JSONL on stdout: no bar
        assert res.exit_code == 0 and res.stderr == ""
        assert json.loads(res.stdout)["custom_id"] == "c0"
