"""CLI: grid now/forecast, schedule plan/list, batch submit/status/results, ask."""

from __future__ import annotations

import contextlib
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from boundgate.assembly import build_app
from boundgate.cli import app as cli
from boundgate.clock import FakeClock
from boundgate.fmt import plain_decimal
from boundgate.testing import ThreadedServer
from helpers import Live, arun, fake_settings, one_line_batch_file, wait_until

# 2023-06-01 05:00 UTC: morning in Germany, before the solar dip that a 24 h window can reach,
# so a batch submitted then waits for a later hour, on a clock that stands still (the wall
# clock's hour may be the cleanest: a clean-clone CI at 03:20 UTC ran the batch at once)
WAITING_START = datetime(2023, 6, 1, 5, tzinfo=UTC).timestamp()


def test_grid_and_plan_commands(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(cli, ["grid", "now", "--zone", "NO"])
    assert res.exit_code == 0 and "gCO2e/kWh" in res.output and "historical" in res.output
    res = runner.invoke(cli, ["grid", "forecast", "--hours", "6"])
    assert res.exit_code == 0 and res.output.count("cleanest") == 1
    # the data's attribution where its values are shown (an auditor's trial: only `grid now`)
    assert "source: bundled:Electricity Maps (ODbL 1.0)" in res.output
    res = runner.invoke(cli, ["schedule", "plan", "--duration", "2h", "--window", "12h"])
    assert res.exit_code == 0 and "start:" in res.output and "if started now" in res.output
    assert "source: bundled:Electricity Maps (ODbL 1.0)" in res.output
    res = runner.invoke(cli, ["schedule", "plan", "--duration", "5h", "--window", "2h"])
    assert res.exit_code == 2
    res = runner.invoke(cli, ["schedule", "plan", "--window", "100000h"])  # planned 1206 h out
    assert res.exit_code == 2 and "at most 168h" in res.output


def test_plan_uses_the_start_policy_the_gateway_builds_from_the_config(tmp_path: Path) -> None:
    """A trial's finding: ``schedule plan --config`` with a price mix printed a carbon-only
    plan. It now plans with ``assembly.build_start_policy``, the gateway's policy."""
    import csv
    import time

    import numpy as np

    from boundgate.assembly import build_carbon
    from boundgate.scheduler.policy import CarbonAwareStart

    if 3600 - time.time() % 3600 < 30:  # plan and test in the same hour
        time.sleep(3600 - time.time() % 3600 + 1)
    now = time.time()
    now_h = int(now // 3600)
    carbon = build_carbon(fake_settings(tmp_path))
    carbon_k = int(CarbonAwareStart(carbon, "DE-LU")("plan", now, now + 8 * 3600, 3600) // 3600)
    cheap_k = next(k for k in (5, 3) if k != carbon_k - now_h)  # not where carbon would go
    prices = tmp_path / "prices.csv"
    with prices.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["datetime_utc", "usd_per_mwh"])
        for h in range(now_h - 40 * 24, now_h + 48):  # cheap every day at one hour
            cheap = (h - now_h - cheap_k) % 24 == 0
            w.writerow([np.datetime64(h * 3600, "s").astype(str) + "Z", 20 if cheap else 100])
    cfg = tmp_path / "price.toml"
    cfg.write_text(f'[scheduler]\nprice_csv = "{prices}"\nprice_weight = 1.0\n')
    res = CliRunner().invoke(cli, ["schedule", "plan", "--config", str(cfg)])
    assert res.exit_code == 0, res.output
    assert f"({cheap_k} h from now)" in res.output
    assert "policy: carbon 0 % / price 100 % (usd_per_mwh)" in res.output
    assert "20.0 usd_per_mwh vs 100.0 if started now" in res.output
    cfg.write_text('[scheduler]\npolicy = "now"\n')
    res = CliRunner().invoke(cli, ["schedule", "plan", "--config", str(cfg)])
    assert res.exit_code == 0 and "(0 h from now)" in res.output and "policy: now" in res.output
    cfg.write_text(f'[scheduler]\nprice_csv = "{tmp_path}/none.csv"\nprice_weight = 0.5\n')
    res = CliRunner().invoke(cli, ["schedule", "plan", "--config", str(cfg)])
    assert res.exit_code == 2 and res.output.startswith("error: scheduler.price_csv:")


def test_batch_commands_against_a_running_server(tmp_path: Path) -> None:
    settings = fake_settings(tmp_path)
    settings.scheduler.policy = "now"
    settings.scheduler.poll_s = 0.05
    app = build_app(settings)
    lines = [
        {
            "custom_id": f"c{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"messages": [{"role": "user", "content": f"q{i}"}], "temperature": 0},
        }
        for i in range(2)
    ]
    infile = tmp_path / "in.jsonl"
    infile.write_text("\n".join(json.dumps(x) for x in lines))
    runner = CliRunner()
    with ThreadedServer(app) as srv:
        live = Live(srv, app)
        res = runner.invoke(cli, ["batch", "submit", str(infile), "--url", srv.url])
        assert res.exit_code == 0, res.output
        batch_id = json.loads(res.output.strip().splitlines()[-1])["id"]
        # made under an Idempotency-Key (a trial: a re-sent create made a second batch)
        import sqlite3

        with contextlib.closing(sqlite3.connect(settings.db_path)) as db:
            kept = db.execute("SELECT route, object_id FROM idempotency_keys").fetchall()
        assert kept == [("POST /v1/batches", batch_id)]

        def status() -> dict[str, object] | None:
            r = runner.invoke(cli, ["batch", "status", batch_id, "--url", srv.url])
            body: dict[str, object] = json.loads(r.output)
            return body if body["status"] == "completed" else None

        wait_until(status)
        out = tmp_path / "out.jsonl"
        res = runner.invoke(
            cli, ["batch", "results", batch_id, "--url", srv.url, "--out", str(out)]
        )
        assert res.exit_code == 0, res.output
        assert sorted(json.loads(x)["custom_id"] for x in out.read_text().splitlines()) == [
            "c0",
            "c1",
        ]
        # a file it cannot write is one line, exit 2 (a trial's was a traceback)
        res = runner.invoke(
            cli, ["batch", "results", batch_id, "--url", srv.url, "--out", "/nonexistent/x"]
        )
        assert res.exit_code == 2 and "cannot write /nonexistent/x" in res.output, res.output
        res = runner.invoke(cli, ["batch", "status", "batch_nope", "--url", srv.url])
        assert res.exit_code == 1 and "404" in res.output
        # the id is one path segment: a trial's "../files" listed the caller's files, and
        # "../models" was a KeyError traceback from results
        for command in ("status", "results"):
            for odd in ("../files", "../models", "a b?c#d"):
                res = runner.invoke(cli, ["batch", command, odd, "--url", srv.url])
                assert res.exit_code == 1 and "Traceback" not in res.output, res.output
                assert "404" in res.output and '"object": "list"' not in res.output, res.output
        res = runner.invoke(cli, ["schedule", "list", "--data-dir", str(tmp_path / "data")])
        assert "batch" in res.output and "done" in res.output
        data = ["--data-dir", str(tmp_path / "data")]
        res = runner.invoke(cli, ["schedule", "list", "--state", "pending", *data])
        assert res.exit_code == 0 and "done" not in res.output
        res = runner.invoke(cli, ["schedule", "list", "--state", "bogus", *data])
        assert res.exit_code == 2 and "bogus" in res.output  # not an empty table
        live.http.close()


def test_batch_results_say_when_lines_failed_and_show_them_with_errors(tmp_path: Path) -> None:
    """A trial: ``batch results`` printed the one answered line of three and exited 0,
    saying nothing of the two lines in the error file; a batch whose lines all failed was "no
    output" without a word of its error file."""
    settings = fake_settings(tmp_path)
    settings.scheduler.policy = "now"
    settings.scheduler.poll_s = 0.05
    app = build_app(settings)

    def line(cid: str, model: str) -> str:
        ask = [{"role": "user", "content": f"question {cid}"}]
        body = {"model": model, "messages": ask, "temperature": 0}
        return json.dumps({"custom_id": cid, "method": "POST", "url": "/v1/chat/completions",
                           "body": body})  # fmt: skip

    mixed, failing = tmp_path / "mixed.jsonl", tmp_path / "failing.jsonl"
    mixed.write_text("\n".join([line("ok", "fake"), line("x1", "nope"), line("x2", "nope")]))
    failing.write_text(line("y1", "nope"))
    runner = CliRunner()
    with ThreadedServer(app) as srv:
        ids = []
        for f in (mixed, failing):
            res = runner.invoke(cli, ["batch", "submit", str(f), "--url", srv.url])
            assert res.exit_code == 0, res.output
            ids.append(json.loads(res.stdout.strip().splitlines()[-1])["id"])
        live = Live(srv, app)
        for batch_id in ids:
            wait_until(
                lambda b=batch_id: live.http.get(f"/v1/batches/{b}").json()["status"] == "completed"
            )
        live.http.close()
        res = runner.invoke(cli, ["batch", "results", ids[0], "--url", srv.url])
        assert res.exit_code == 0, res.output
        assert [json.loads(x)["custom_id"] for x in res.stdout.splitlines()] == ["ok"]
        assert f"2 of 3 lines failed: boundgate batch results {ids[0]} --errors" in " ".join(
            res.stderr.split()
        )
        res = runner.invoke(cli, ["batch", "results", ids[0], "--url", srv.url, "--errors"])
        assert res.exit_code == 0, res.output
        failed = [json.loads(x) for x in res.stdout.splitlines()]
        assert [x["custom_id"] for x in failed] == ["x1", "x2"]
        assert failed[0]["response"]["body"]["error"]["code"] == "model_not_found"
        res = runner.invoke(cli, ["batch", "results", ids[1], "--url", srv.url])
        assert res.exit_code == 1
        said = " ".join(res.output.split())
        assert "no output; the lines that failed (1) are in its error file (--errors)" in said


def test_a_refused_submit_leaves_no_upload_behind(
    tmp_path: Path,
) -> None:
    """An operator's trial: each refused ``batch submit`` (a bad line, a window of 0h) left
    its uploaded file behind."""
    app = build_app(fake_settings(tmp_path), clock=FakeClock(start=WAITING_START))
    infile = one_line_batch_file(tmp_path / "in.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"custom_id": "a", "method": "POST"}\n')
    runner = CliRunner()
    with ThreadedServer(app) as srv:
        live = Live(srv, app)
        for args in ([str(bad)], [str(infile), "--window", "0h"]):
            res = runner.invoke(cli, ["batch", "submit", *args, "--url", srv.url])
            assert res.exit_code == 1, res.output
            assert live.http.get("/v1/files").json()["data"] == [], res.output
        res = runner.invoke(cli, ["batch", "submit", str(infile), "--url", srv.url])
        assert res.exit_code == 0, res.output
        batch_id = json.loads(res.output.strip().splitlines()[-1])["id"]
        assert len(live.http.get("/v1/files").json()["data"]) == 1  # the batch's own
        live.http.post(f"/v1/batches/{batch_id}/cancel")
        live.http.close()


def test_batch_results_of_a_cancelled_batch_say_there_is_none(tmp_path: Path) -> None:
    """A batch cancelled before it ran has no output and never will: ``batch results`` says so
    rather than "no output yet" (a trial)."""
    # a later hour is cleaner: the batch waits, nothing runs
    app = build_app(fake_settings(tmp_path), clock=FakeClock(start=WAITING_START))
    infile = one_line_batch_file(tmp_path / "in.jsonl")
    runner = CliRunner()
    with ThreadedServer(app) as srv:
        res = runner.invoke(cli, ["batch", "submit", str(infile), "--url", srv.url])
        assert res.exit_code == 0, res.output
        batch_id = json.loads(res.output.strip().splitlines()[-1])["id"]
        res = runner.invoke(cli, ["batch", "results", batch_id, "--url", srv.url])
        assert res.exit_code == 1 and "no output yet" in res.output, res.output
        live = Live(srv, app)
        assert live.http.post(f"/v1/batches/{batch_id}/cancel").status_code == 200
        live.http.close()
        res = runner.invoke(cli, ["batch", "results", batch_id, "--url", srv.url])
        assert res.exit_code == 1, res.output
        assert f"batch {batch_id} is cancelled: it has no output" in res.output


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["grid", "now", "--zone", "XX"], "--zone: no carbon data for 'XX'; known zones: BR"),
        (["grid", "forecast", "--zone", "XX"], "--zone: no carbon data for 'XX'"),
        # a trial's finding: a traceback, exit 1
        (["schedule", "plan", "--zone", "FR"], "--zone: no carbon data for 'FR'"),
        (["batch", "submit", "/nonexistent/requests.jsonl"], "no such file"),
        (["batch", "submit", "/dev/null"], "not a regular file: /dev/null"),  # was "no such"
        (["batch", "submit", "/proc/self/status"], "reports no size"),  # was a traceback
        # an audit's finding: an OverflowError traceback, and "cannot convert float NaN"
        (["schedule", "plan", "--duration", "inf"], "not a duration: 'inf'"),
        (["schedule", "plan", "--window", "infd"], "not a duration: 'infd'"),
        (["schedule", "plan", "--duration", "1e400h"], "not a duration: '1e400h'"),
        (["schedule", "plan", "--duration", "nan"], "not a duration: 'nan'"),
        (["schedule", "replay", "--intensity", "x.csv", "--duration", "inf"], "not a duration"),
        (["schedule", "replay", "--intensity", "x.csv", "--window", "nan"], "not a duration"),
    ],
)
def test_usage_errors_are_one_line_not_a_traceback(args: list[str], says: str) -> None:
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 2, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    text = " ".join(res.output.split())  # rich wraps long lines at the terminal's width
    assert "Traceback" not in text and text.startswith("error:") and says in text


@pytest.mark.parametrize("url", ["http://127.0.0.1:1", "127.0.0.1:1", "http://[::1"])
def test_batch_and_ask_commands_say_in_one_line_when_the_server_cannot_be_reached(
    url: str,
) -> None:
    """A refused port, a URL without scheme, a malformed one: one line naming the URL and
    exit status 1, not a traceback (a trial got 233 lines from ``batch submit``)."""
    runner = CliRunner()
    for args in (["batch", "status", "batch_x"], ["batch", "results", "batch_x"], ["ask", "hi"]):
        res = runner.invoke(cli, [*args, "--url", url])
        assert res.exit_code == 1, (args, res.output)
        assert f"cannot reach {url}" in res.output and "Traceback" not in res.output, res.output


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["ask", "hi", "--api-key", "é"], "visible ASCII"),
        (["batch", "status", "batch_x", "--api-key", "clé"], "visible ASCII"),
        (["ask", "hi", "--temperature", "nan"], "finite"),
        (["ask", "hi", "--temperature", "inf"], "finite"),
    ],
)
def test_an_api_key_or_temperature_http_cannot_carry_is_a_usage_error(
    args: list[str], says: str
) -> None:
    """A trial's non-ASCII key (option or BOUNDGATE_API_KEY) was a UnicodeEncodeError
    traceback, ``--temperature nan`` a ValueError one: refused before any request."""
    res = CliRunner().invoke(cli, [*args, "--url", "http://127.0.0.1:1"])
    text = " ".join(res.output.split())
    assert res.exit_code == 2 and says in text and "Traceback" not in text, res.output
    assert "cannot reach" not in text  # refused before connecting
    res = CliRunner().invoke(cli, ["ask", "hi", "--url", "http://127.0.0.1:1"], env={
        "BOUNDGATE_API_KEY": "é"})  # fmt: skip
    assert res.exit_code == 2 and "visible ASCII" in " ".join(res.output.split())


def test_ask_says_whether_the_answer_was_generated_or_reused_and_what_reuse_avoided(
    tmp_path: Path,
) -> None:
    """A trial's finding: a reused answer printed "0.000000 Wh (0.000000 to 0.000001…)" and
    did not say it was reused. ``ask`` now says how the answer was obtained and what reuse
    avoided, in plain decimals to three significant digits: no figure is rounded to 0."""
    app = build_app(fake_settings(tmp_path))
    runner = CliRunner()
    with ThreadedServer(app) as srv:
        first = runner.invoke(cli, ["ask", "What is the boiling point?", "--url", srv.url])
        second = runner.invoke(cli, ["ask", "What is the boiling point?", "--url", srv.url])
        rows = Live(srv, app).ledger()
    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    hit = next(r for r in rows.values() if r.reuse == "hit-exact")
    assert "generated: " in first.output and "reused" not in first.output
    assert "avoided" not in first.output
    assert "generated" not in second.output
    assert f"reused (hit-exact): the lookup used {plain_decimal(hit.wh, 3)} Wh" in second.output
    assert f"avoided by reuse: {plain_decimal(hit.avoided_wh, 3)} Wh" in second.output
    figures = re.findall(r"([0-9.]+) (?:Wh|gCO2e)", first.output + second.output)
    assert len(figures) == 6 and all(float(f) > 0 for f in figures), figures


@pytest.mark.parametrize(
    ("url", "base"),
    [
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080/v1"),
        ("http://127.0.0.1:8080/v1/", "http://127.0.0.1:8080/v1"),
        ("http://h/V1", "http://h/v1"),
        ("http://h/v1/chat/completions", "http://h/v1"),  # an endpoint pasted whole
        ("https://h/boundgate/", "https://h/boundgate/v1"),  # a proxy's prefix
        # a trial's: "Request URL is missing an 'http://' or 'https://' protocol"
        ("localhost:8091", "http://localhost:8091/v1"),
        ("gw.lan/v1/", "http://gw.lan/v1"),
        ("[::1]:8080", "http://[::1]:8080/v1"),
    ],
)
def test_the_cli_finds_the_api_base_in_any_url_it_is_given(url: str, base: str) -> None:
    from boundgate.cli import api_base_url

    assert api_base_url(url) == base


def test_ask_takes_a_url_without_scheme_and_a_401_says_how_to_give_a_key(tmp_path: Path) -> None:
    """A trial's findings: `ask --url localhost:8091` printed "cannot reach localhost:8091:
    Request URL is missing an 'http://' or 'https://' protocol", and the 401 of a gateway with
    keys did not say how `ask` takes one."""
    app = build_app(fake_settings(tmp_path))
    runner = CliRunner(env={"BOUNDGATE_API_KEY": None})
    with ThreadedServer(app) as srv:
        bare = srv.base_url.removeprefix("http://")  # 127.0.0.1:PORT
        res = runner.invoke(cli, ["ask", "What is the boiling point?", "--url", bare])
        assert res.exit_code == 0 and "generated: " in res.output, res.output
        secret = arun(app.state.gateway.store.create_key("acme")).secret
        res = runner.invoke(cli, ["ask", "hi", "--url", bare])
        text = " ".join(res.output.split())  # rich wraps long lines at the terminal's width
        assert res.exit_code == 1 and text.startswith("error 401: missing API key"), text
        assert "give this command a key with --api-key or BOUNDGATE_API_KEY" in text
        res = runner.invoke(cli, ["ask", "hi", "--url", bare, "--api-key", secret])
        assert res.exit_code == 0, res.output


def test_schedule_list_shows_what_a_job_requires(tmp_path: Path) -> None:
    """A job waits for a process that runs its model at its version (``JobRow.requires``);
    ``schedule list`` did not say which, so an operator could not see why it waited."""
    from boundgate.scheduler.jobs import JobQueue, model_requirement, requirement_label
    from boundgate.store import SQLiteStore

    data = tmp_path / "data"
    store = SQLiteStore(data / "boundgate.db")
    store.open()
    try:
        queue = JobQueue(store)
        arun(queue.submit("rebind", {"doc": "d1"}, requires=model_requirement("fake", "v2")))
        arun(queue.submit("batch", {"batch": "b1"}))
    finally:
        store.close()
    res = CliRunner().invoke(
        cli, ["schedule", "list", "--data-dir", str(data)], env={"BOUNDGATE_STORE__URL": None}
    )
    assert res.exit_code == 0, res.output
    assert "requires" in res.output
    [rebind] = [line for line in res.output.splitlines() if "rebind" in line]
    assert "fake@v2" in rebind
    [batch] = [line for line in res.output.splitlines() if " batch " in line]
    assert "@" not in batch
    assert requirement_label(None) == "" and requirement_label("gpu") == "gpu"  # as stored


def test_ask_and_batch_status_reach_the_configured_port_without_url(tmp_path: Path) -> None:
    """A trial's finding: `boundgate ask` went to 127.0.0.1:8080 whatever port the config
    served on. Without --url the client commands reach the configured server.host:port
    (a wildcard host at 127.0.0.1); a config error is one line and exit 2."""
    app = build_app(fake_settings(tmp_path))
    runner = CliRunner(env={"BOUNDGATE_API_KEY": None, "BOUNDGATE_CONFIG": None})
    with ThreadedServer(app) as srv:
        port = srv.base_url.rsplit(":", 1)[1]
        cfg = tmp_path / "served.toml"
        cfg.write_text(f'[server]\nhost = "0.0.0.0"\nport = {port}\n', encoding="utf-8")
        res = runner.invoke(cli, ["ask", "What is the boiling point?", "--config", str(cfg)])
        assert res.exit_code == 0 and "generated: " in res.output, res.output
        res = runner.invoke(cli, ["batch", "status", "batch_x", "--config", str(cfg)])
        assert res.exit_code == 1 and "cannot reach" not in res.output, res.output
    bad = tmp_path / "bad.toml"
    bad.write_text("[server]\nport = 'x'\n", encoding="utf-8")
    res = runner.invoke(cli, ["ask", "hi", "--config", str(bad)])
    assert res.exit_code == 2 and "error" in res.output and "Traceback" not in res.output


def test_ask_says_so_when_the_server_does_not_stream() -> None:
    """A trial pointed ``ask`` at a server that answers a stream request with one JSON body:
    it printed nothing and exited 0."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def completions(request: object) -> JSONResponse:
        return JSONResponse({"choices": [{"message": {"content": "hello"}}]})

    plain = Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])
    with ThreadedServer(plain) as srv:
        res = CliRunner().invoke(cli, ["ask", "hi", "--url", srv.url])
    text = " ".join(res.output.split())
    assert res.exit_code == 1 and "did not stream" in text and "application/json" in text, text


def test_ask_reads_a_stream_whatever_the_case_of_its_media_type() -> None:
    """Media types are case-insensitive (RFC 9110 §8.3.1): a re-check's server sent
    ``Text/Event-Stream`` and was told it did not stream."""
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    chunk = {"choices": [{"delta": {"content": "hello"}}]}

    async def completions(request: object) -> Response:
        body = f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n"
        return Response(body, headers={"content-type": "Text/Event-Stream; charset=utf-8"})

    app = Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])
    with ThreadedServer(app) as srv:
        res = CliRunner().invoke(cli, ["ask", "hi", "--url", srv.url])
    assert res.exit_code == 0 and "hello" in res.output, res.output
