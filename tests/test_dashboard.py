"""The operator dashboard over HTTP: sessions, CSRF, pages on a seeded store, ledger export.

Browser tests (real Chromium through playwright) are in test_dashboard_browser.py; these run
everywhere and pin the security properties with plain HTTP.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from boundgate.assembly import build_app
from boundgate.dashboard.session import COOKIE
from boundgate.fmt import significant
from boundgate.store import BatchLineRow, Claim
from boundgate.tenants import DAY_S, tokens_counter
from boundgate.testing import ThreadedServer
from dashboard_seed import START, Seeded
from helpers import Live, charged_today, counted, fake_settings, wait_until

PAGES = [
    "/dashboard",
    "/dashboard?range=7d",
    "/dashboard?range=30d",
    "/dashboard/documents",
    "/dashboard/ledger",
    "/dashboard/grid",
    "/dashboard/tenants",
]


def browser(live: Live) -> httpx.Client:
    """A cookie-keeping client that behaves like a same-origin browser."""
    return httpx.Client(base_url=live.base, timeout=30, headers={"origin": live.base})


def csrf_of(html: str) -> str:
    marker = 'name="csrf_token" value="'
    start = html.index(marker) + len(marker)
    return html[start : html.index('"', start)]


def test_open_mode_pages_render_with_security_headers(open_dash: Seeded) -> None:
    with browser(open_dash.live) as b:
        for path in PAGES:
            r = b.get(path)
            assert r.status_code == 200, (path, r.text[:300])
            assert r.headers["content-type"].startswith("text/html")
            csp = r.headers["content-security-policy"]
            assert "default-src 'self'" in csp and "script-src 'self'" in csp
            assert r.headers["x-frame-options"] == "DENY"
            assert "Open local mode" in r.text
        # once it has a session, the browser is not handed a new one on every page
        assert "set-cookie" not in b.get("/dashboard").headers
    # the first visit gets a session cookie: HttpOnly, SameSite=Strict, scoped to /dashboard
    first = httpx.get(open_dash.live.base + "/dashboard", timeout=60).headers["set-cookie"]
    assert first.startswith(COOKIE + "=")
    assert "HttpOnly" in first and "samesite=strict" in first.lower()
    assert "Path=/dashboard" in first


def test_overview_shows_seeded_totals_and_reuse_safety(open_dash: Seeded) -> None:
    with browser(open_dash.live) as b:
        html = b.get("/dashboard").text
    assert "Reuse safety" in html and "Energy avoided" in html
    # whether each model asked so far labels the verifier's observations, and why
    assert "<dt>Labels from the answers of fake</dt><dd>on (auto: not measured" in html
    # counts are shown as whole numbers
    requests_card = html.split("<dt>Requests</dt><dd>", 1)[1].split("</dd>", 1)[0]
    assert requests_card.isdigit() and int(requests_card) >= 29
    chart = json.loads(html.split('id="chart-data">', 1)[1].split("</script>", 1)[0])
    # 23 seeded rows + 6 chat requests + 1 error + 1 admin bind call is not a generation row
    assert sum(chart["requests"]) >= 23 + 6
    assert sum(chart["reused"]) >= 12 + 3  # 12 seeded semantic hits, 3 exact repeats
    # 12 seeded hits avoided 0.02 Wh each; the 3 real exact hits add their own measured cost
    assert sum(chart["avoided_wh"]) >= 12 * 0.02 - 1e-9


def test_the_hourly_figures_keep_a_lookups_energy() -> None:
    """The overview's hourly table and chart rounded to six decimals: a reused answer's
    1.83e-7 Wh avoided showed as 0 beside a total of 0.000000183 (a trial's finding)."""
    assert significant(1.83e-7) == 1.83e-7 and significant(0.0) == 0.0
    assert significant(0.123456789) == 0.123457 and significant(12345.678) == 12345.7


def test_keyed_mode_needs_an_admin_login(keyed_dash: Seeded) -> None:
    live = keyed_dash.live
    with browser(live) as b:
        r = b.get("/dashboard/ledger?tenant=acme", follow_redirects=False)
        assert r.status_code == 303
        assert r.headers["location"].startswith("/dashboard/login?next=")
        login = b.get(r.headers["location"])
        assert login.status_code == 200 and 'type="password"' in login.text
        # a tenant key is not enough, a made-up one neither
        r = b.post("/dashboard/login", data={"key": keyed_dash.user_key, "next": "/dashboard"})
        assert "not an admin key" in r.text and "set-cookie" not in r.headers
        r = b.post("/dashboard/login", data={"key": "bg_nope", "next": "/dashboard"})
        assert "Unknown or revoked key" in r.text and "set-cookie" not in r.headers
        assert b.get("/dashboard", follow_redirects=False).status_code == 303
        # an off-site next URL is not followed
        r = b.post(
            "/dashboard/login",
            data={"key": keyed_dash.admin_key, "next": "https://evil.example/"},
            follow_redirects=False,
        )
        assert r.status_code == 303 and r.headers["location"] == "/dashboard"
        set_cookie = r.headers["set-cookie"]
        assert "HttpOnly" in set_cookie and keyed_dash.admin_key not in set_cookie
        for path in PAGES:
            assert b.get(path).status_code == 200, path
        # revoking the key ends the session at the next page
        store = live.gateway.store
        ops = next(k for k in asyncio.run(store.list_keys()) if k.tenant == "ops")
        asyncio.run(store.revoke_key(ops.id))
        r = b.get("/dashboard", follow_redirects=False)
        assert r.status_code == 303 and "/dashboard/login" in r.headers["location"]


def test_signing_out_ends_the_session_for_a_copy_of_its_cookie(keyed_dash: Seeded) -> None:
    """The cookie is signed and carried no server state: a copy taken before "Sign out"
    stayed valid until it expired (a trial). Signing out now ends the session itself; a new
    login is a new session."""
    live = keyed_dash.live
    with browser(live) as b:
        b.post("/dashboard/login", data={"key": keyed_dash.admin_key, "next": "/dashboard"})
        page = b.get("/dashboard")
        assert page.status_code == 200
        copied = b.cookies.get(COOKIE, path="/dashboard")
        assert copied
        r = b.post("/dashboard/logout", data={"csrf_token": csrf_of(page.text)},
                   follow_redirects=False)  # fmt: skip
        assert r.status_code == 303 and "notice=logged-out" in r.headers["location"]
        assert b.get("/dashboard", follow_redirects=False).status_code == 303
        # a form posted with the ended session: after a new login the browser GETs the
        # target, so it is the dashboard, not the form's POST path (a re-check's 405)
        b.cookies.set(COOKIE, copied, domain="127.0.0.1", path="/dashboard")
        r = b.post("/dashboard/logout", data={"csrf_token": csrf_of(page.text)},
                   follow_redirects=False)  # fmt: skip
        assert r.status_code == 303 and r.headers["location"].endswith("next=%2Fdashboard")
    with browser(live) as thief:
        thief.cookies.set(COOKIE, copied, domain="127.0.0.1", path="/dashboard")
        r = thief.get("/dashboard", follow_redirects=False)
        assert r.status_code == 303 and "/dashboard/login" in r.headers["location"]
    with browser(live) as b:  # the same key logs in again: a new session
        b.post("/dashboard/login", data={"key": keyed_dash.admin_key, "next": "/dashboard"})
        assert b.get("/dashboard", follow_redirects=False).status_code == 200


def test_wrong_logins_from_one_address_are_refused_for_a_while(keyed_dash: Seeded) -> None:
    """The login form answered wrong keys without end (a trial's "no rate limit on wrong
    dashboard logins"). After ``LOGIN_FAILURES`` wrong keys from one address within
    ``LOGIN_WINDOW_S`` it answers 429 with Retry-After, even to the right key, until the
    oldest of them is that old."""
    from boundgate.dashboard.routes import LOGIN_FAILURES, LOGIN_WINDOW_S

    live = keyed_dash.live
    with browser(live) as b:
        for _ in range(LOGIN_FAILURES):
            r = b.post("/dashboard/login", data={"key": "bg_nope", "next": "/dashboard"})
            assert r.status_code == 200 and "Unknown or revoked key" in r.text
        r = b.post(
            "/dashboard/login",
            data={"key": keyed_dash.admin_key, "next": "/dashboard"},
            follow_redirects=False,
        )
        assert r.status_code == 429 and "Too many wrong keys" in r.text
        assert 0 < int(r.headers["retry-after"]) <= LOGIN_WINDOW_S
        assert "set-cookie" not in r.headers


def test_the_login_throttle_forgets_an_address_after_its_window() -> None:
    from boundgate.dashboard.routes import LOGIN_FAILURES, LOGIN_WINDOW_S, LoginThrottle

    t = LoginThrottle()
    for i in range(LOGIN_FAILURES):
        t.failed("10.0.0.1", float(i))
    assert t.wait_s("10.0.0.1", LOGIN_FAILURES) == LOGIN_WINDOW_S - LOGIN_FAILURES
    assert t.wait_s("10.0.0.2", LOGIN_FAILURES) == 0  # per address
    assert t.wait_s("10.0.0.1", LOGIN_WINDOW_S) == 0  # the oldest failure is old enough
    t.failed("10.0.0.2", 2 * LOGIN_WINDOW_S)
    assert list(t.failures) == ["10.0.0.2"]  # an address with no recent failure is dropped


def test_forged_or_foreign_cookie_is_refused(keyed_dash: Seeded) -> None:
    live = keyed_dash.live
    with browser(live) as b:
        b.cookies.set(COOKIE, "eyJzaWQiOiJ4In0.forged.sig", domain="127.0.0.1", path="/dashboard")
        r = b.get("/dashboard", follow_redirects=False)
        assert r.status_code == 303


def test_revoke_needs_the_csrf_token_and_same_origin(open_dash: Seeded) -> None:
    live, doc_id = open_dash.live, open_dash.doc_id
    store = live.gateway.store
    with browser(live) as b:
        page = b.get(f"/dashboard/documents/{doc_id}")
        assert page.status_code == 200
        assert "valid" in page.text and "Revoke this document" in page.text
        token = csrf_of(page.text)
        # no token
        r = b.post(f"/dashboard/documents/{doc_id}/revoke", data={})
        assert r.status_code == 403
        # right token, other site
        r = b.post(
            f"/dashboard/documents/{doc_id}/revoke",
            data={"csrf_token": token},
            headers={"origin": "https://evil.example"},
        )
        assert r.status_code == 403
        # a token from another session
        with browser(live) as other:
            other_token = csrf_of(other.get(f"/dashboard/documents/{doc_id}").text)
        assert other_token != token
        r = b.post(f"/dashboard/documents/{doc_id}/revoke", data={"csrf_token": other_token})
        assert r.status_code == 403
        doc = asyncio.run(store.get_document(doc_id))
        assert doc is not None and doc.state == "active"
        r = b.post(
            f"/dashboard/documents/{doc_id}/revoke",
            data={"csrf_token": token},
            follow_redirects=False,
        )
        assert r.status_code == 303
        doc = asyncio.run(store.get_document(doc_id))
        assert doc is not None and doc.state == "revoked"
        after = b.get(r.headers["location"])
        assert "Document revoked" in after.text and "Revoke this document" not in after.text


def test_document_page_shows_tampering(open_dash: Seeded) -> None:
    live, doc_id = open_dash.live, open_dash.doc_id
    store = live.gateway.store
    row = asyncio.run(store.get_document(doc_id))
    assert row is not None
    with browser(live) as b:
        assert ">valid<" in b.get(f"/dashboard/documents/{doc_id}").text
        jsonld = b.get(f"/dashboard/documents/{doc_id}.jsonld")
        assert jsonld.status_code == 200 and jsonld.json()["@id"] == json.loads(row.body)["@id"]
        body = json.loads(row.body)
        body["acceptedAnswer"]["text"] = "something else"
        # documents never change through the store: tamper with the file on disk instead
        with sqlite3.connect(open_dash.db_path) as conn:
            conn.execute("UPDATE documents SET body = ? WHERE id = ?", (json.dumps(body), doc_id))
        html = b.get(f"/dashboard/documents/{doc_id}").text
        assert "invalid: content does not match its id" in html
        assert b.get("/dashboard/documents/doc_missing").status_code == 404


def test_an_imported_document_reads_valid_with_its_issuers_key(
    open_dash: Seeded, tmp_path: Path
) -> None:
    """The bug: every imported document read "Signature invalid" (checked with this
    gateway's own key); it is checked with the key it was verified with at import."""
    from typer.testing import CliRunner

    from boundgate.cli import app as cli
    from boundgate.reuse import binding

    live = open_dash.live
    issuer = binding.Signer.load_or_create(tmp_path / "a")
    unsigned = binding.build(
        question="Why is the sky blue?",
        variants=["Why is the sky blue?"],
        answer="Rayleigh scattering.",
        model="fake",
        model_version="v1",
        tenant="default",
        scope={"endpoint": "/v1/chat/completions", "params": {}},
        askers=3,
        created=datetime.fromtimestamp(open_dash.clock.time(), tz=UTC),
        cost_wh=0.001,
        cost_gco2=0.0004,
    )
    doc = issuer.sign(unsigned, datetime.fromtimestamp(open_dash.clock.time(), tz=UTC))
    f = tmp_path / "a.jsonld"
    f.write_text(json.dumps(doc))
    pub = str(tmp_path / "a" / binding.PUBLIC_KEY_FILE)
    res = CliRunner().invoke(
        cli,
        ["docs", "import", str(f), "--public-key", pub, "-c", str(tmp_path / "boundgate.toml")],
    )
    assert res.exit_code == 0, res.output
    doc_id = binding.short_id(doc["@id"])
    with browser(live) as b:
        html = b.get(f"/dashboard/documents/{doc_id}").text
        assert ">valid<" in html and f"issuer's key {issuer.fingerprint}, kept at import" in html
        # a trial's finding: the offline hint named this gateway's key for an imported one
        assert "--public-key ISSUER.pub.pem" in html and "signing-key.pub.pem" not in html
        own = b.get(f"/dashboard/documents/{open_dash.doc_id}").text  # bound here: own key
        own_key = live.gateway.reuse.documents.signer.fingerprint
        assert ">valid<" in own and f"(key {own_key})" in own
        tampered = json.loads(json.dumps(doc))
        tampered["acceptedAnswer"]["text"] = "something else"
        with sqlite3.connect(open_dash.db_path) as conn:
            conn.execute(
                "UPDATE documents SET body = ? WHERE id = ?", (json.dumps(tampered), doc_id)
            )
        html = b.get(f"/dashboard/documents/{doc_id}").text
        assert "invalid: content does not match its id" in html


def test_document_search_and_bind_form(open_dash: Seeded) -> None:
    with browser(open_dash.live) as b:
        assert "mountain" in b.get("/dashboard/documents?q=MOUNTAIN").text
        none = b.get("/dashboard/documents?q=zebra-crossing").text
        assert "No document matches" in none
        page = b.get("/dashboard/documents")
        r = b.post(
            "/dashboard/documents/bind",
            data={"answer_id": "ans_unknown", "csrf_token": csrf_of(page.text)},
            follow_redirects=False,
        )
        assert r.status_code == 303 and "not-bound" in r.headers["location"]


def test_ledger_filters_and_csv_export(open_dash: Seeded) -> None:
    with browser(open_dash.live) as b:
        html = b.get("/dashboard/ledger?tenant=acme&reuse=hit-semantic").text
        assert html.count('<span class="outcome ok">') == 8  # h in 1..23, odd, not % 3 == 0
        r = b.get("/dashboard/ledger.csv?reuse=hit-semantic")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(r.text)))
        assert len(rows) == 12 and {row["reuse"] for row in rows} == {"hit-semantic"}
        # a tenant name that looks like a formula is neutralised for spreadsheets
        assert "'=HYPERLINK(evil)" in {row["tenant"] for row in rows}
        errors = b.get("/dashboard/ledger.csv?outcome=error").text
        assert len(list(csv.DictReader(io.StringIO(errors)))) == 1
        bad = b.get("/dashboard/ledger?since=yesterday")
        assert bad.status_code == 400 and "since/until" in bad.text
        bad = b.get("/dashboard/ledger?outcome=exploded")
        assert bad.status_code == 400
        bad = b.get("/dashboard/ledger?bogus=1")  # was a 200 listing every row
        assert bad.status_code == 400 and "unknown ledger filter" in bad.text
        assert b.get("/dashboard/ledger?page=1&model=fake").status_code == 200
        # a trial's findings: "hit-variant" rows could not be filtered (400), and a time's
        # offset was dropped (+05:00 read as UTC)
        assert b.get("/dashboard/ledger?reuse=hit-variant").status_code == 200
        since = datetime.fromtimestamp(START, UTC) - timedelta(hours=10, minutes=30)
        naive = since.strftime("%Y-%m-%dT%H:%M")
        utc = list(csv.DictReader(io.StringIO(b.get(f"/dashboard/ledger.csv?since={naive}").text)))
        ahead = b.get(f"/dashboard/ledger.csv?since={naive}%2B05:00").text
        assert len(list(csv.DictReader(io.StringIO(ahead)))) > len(utc)  # 5 h earlier
        bad = b.get("/dashboard/ledger.csv?outcome=exploded")  # the same page, not a CSV
        assert bad.status_code == 400 and "unknown outcome" in bad.text
        assert bad.headers["content-type"].startswith("text/html")
        # paging: more than one page of rows
        assert "Older" not in b.get("/dashboard/ledger").text


def test_the_dashboard_answers_its_errors_in_html_and_the_api_in_json(open_dash: Seeded) -> None:
    """A browser on /dashboard gets a page for a bad query, an unknown page or a wrong method;
    the same mistakes on the API keep OpenAI's JSON error shape."""
    with browser(open_dash.live) as b:
        bad = b.get("/dashboard?range=1y")
        assert bad.status_code == 400 and bad.headers["content-type"].startswith("text/html")
        assert "Bad request" in bad.text and "range" in bad.text
        assert bad.headers["content-security-policy"]  # a dashboard page like the others
        bad = b.get("/dashboard/ledger?page=0")
        assert bad.status_code == 400 and "page" in bad.text
        assert bad.headers["content-type"].startswith("text/html")
        # a break-it trial: a NUL got the API's JSON, and a repeated parameter's last value
        # was shown silently; the API refuses both, and so do the pages, as pages
        for query, said in (
            ("/dashboard/documents?q=%00", "NUL"),
            ("/dashboard/ledger?tenant=%00", "NUL"),
            ("/dashboard?range=24h&range=30d", "given 2 times"),
            ("/dashboard/ledger%00", "NUL"),  # a path no page has: was the 404 page
        ):
            bad = b.get(query)
            assert bad.status_code == 400, (query, bad.text[:200])
            assert bad.headers["content-type"].startswith("text/html") and said in bad.text
        # an asset's answer is plain text, as its 404 is (a re-check: the API's JSON)
        bad = b.get("/dashboard/static/app.css?x=%00")
        assert bad.status_code == 400 and bad.headers["content-type"].startswith("text/plain")
        assert "NUL" in bad.text
        missing = b.get("/dashboard/nowhere")
        assert missing.status_code == 404 and missing.headers["content-type"].startswith(
            "text/html"
        )
        assert "/dashboard/nowhere" in missing.text
        wrong = b.put("/dashboard/ledger")
        assert wrong.status_code == 405 and wrong.headers["allow"] == "GET, HEAD"
        assert wrong.headers["content-type"].startswith("text/html")
        assert "<h1>Method not allowed</h1>" in wrong.text  # was titled "Bad request"
        # every method of the path (a re-check's PUT /dashboard/login said GET only)
        wrong = b.put("/dashboard/login")
        assert wrong.status_code == 405 and wrong.headers["allow"] == "GET, HEAD, POST"
        assert "use GET, HEAD, POST" in wrong.text
        # the API's own errors are unchanged
        api = b.get("/v1/nowhere")
        assert api.status_code == 404 and api.json()["error"]["type"] == "invalid_request_error"
        api = b.post("/v1/chat/completions", json={"messages": "hi"})
        assert api.status_code == 400 and api.json()["error"]["param"] == "messages"
        static = b.get("/dashboard/static/nothing.js")
        assert static.status_code == 404 and "text/html" not in static.headers["content-type"]
        # an asset: a plain 404, not the API's JSON error
        assert static.headers["content-type"].startswith("text/plain")
        assert static.text == "404 Not Found"
        static = b.post("/dashboard/static/app.js")
        assert static.status_code == 405 and static.headers["content-type"].startswith("text/plain")
        assert static.headers["allow"] == "GET, HEAD"


def test_grid_page_places_the_queued_batch(open_dash: Seeded) -> None:
    with browser(open_dash.live) as b:
        html = b.get("/dashboard/grid").text
    chart: dict[str, Any] = json.loads(html.split('id="chart-data">', 1)[1].split("</script>")[0])
    assert len(chart["forecast"]) == 48 and all(v > 0 for v in chart["forecast"])
    assert [j["kind"] for j in chart["jobs"]] == ["batch"]
    assert "batch_" in html and "0/1" in html


def test_grid_page_shows_what_a_job_requires(open_dash: Seeded) -> None:
    """A job that waits for a process running its model at a version says which."""
    from boundgate.scheduler.jobs import JobQueue, model_requirement

    store = open_dash.live.gateway.store
    queue = JobQueue(store, open_dash.clock)
    asyncio.run(queue.submit("rebind", {"doc": "d1"}, requires=model_requirement("fake", "v9")))
    with browser(open_dash.live) as b:
        html = b.get("/dashboard/grid").text
    assert '<th scope="col">Requires</th>' in html
    [row] = [r for r in html.split("<tr>") if "rebind" in r]
    assert "<td>fake@v9</td>" in row


def test_grid_page_shows_a_running_batch_progress(open_dash: Seeded) -> None:
    store = open_dash.live.gateway.store
    body = {
        "id": "batch_running",
        "status": "in_progress",
        "created_at": 1,
        "request_counts": {"total": 3, "completed": 0, "failed": 0},
        "boundgate": {"state": "running"},
    }
    asyncio.run(store.put_batch("batch_running", "acme", 1.0, json.dumps(body)))
    for line, kind in ((0, "output"), (1, "error")):  # its finished lines, kept as it runs
        asyncio.run(store.put_batch_line(BatchLineRow("batch_running", line, kind, "{}", 0, 0, 0)))
    with browser(open_dash.live) as b:
        grid = b.get("/dashboard/grid").text
    assert "batch_running" in grid and "2/3" in grid


def test_a_batch_run_in_clean_hours_shows_its_saving(open_dash: Seeded) -> None:
    live, clock = open_dash.live, open_dash.clock
    store = live.gateway.store
    (job,) = asyncio.run(store.jobs("pending"))
    with browser(live) as b:
        assert "Saved by shifting" not in b.get("/dashboard").text
        clock.set(job.not_before)
        batch_id, _, _, _ = asyncio.run(store.batches())[0]
        wait_until(lambda: json.loads(asyncio.run(store.batches())[0][3])["status"] == "completed")
        body = json.loads(asyncio.run(store.batches())[0][3])["boundgate"]
        assert body["shifting_saved_g"] > 0  # planned into the afternoon dip
        html = b.get("/dashboard").text
        assert "Saved by shifting" in html and "1 batch: their carbon at submission" in html
        assert ", cleaner</dd>" in html
        grid = b.get("/dashboard/grid").text
        assert batch_id in grid and "1/1" in grid


def test_a_batch_that_ran_in_dirtier_hours_is_not_called_cleaner(open_dash: Seeded) -> None:
    """An auditor's finding: a batch whose hours turned out dirtier than at submission (the
    forecast missed: ``shifting_saved_g`` < 0) was shown as "run in cleaner hours", styled as
    good news. The card says what the figure is, and which way it went."""
    gw = open_dash.live.gateway
    now = open_dash.clock.time()
    body = {
        "id": "batch_dirtier",
        "status": "completed",
        "created_at": int(now) - 600,
        "completed_at": int(now) - 60,
        "request_counts": {"total": 3, "completed": 3, "failed": 0},
        "boundgate": {"state": "done", "started_at": "2023-06-01T12:00:00Z",
                      "carbon_g": 0.25, "shifting_saved_g": -0.002},
    }  # fmt: skip
    asyncio.run(gw.store.put_batch("batch_dirtier", "acme", now - 600, json.dumps(body)))
    with browser(open_dash.live) as b:
        html = b.get("/dashboard?range=24h").text
    at = html.index("Saved by shifting")
    card = html[html.rindex('<div class="card', 0, at) : html.index("</div>", at)]
    assert "cleaner" not in card and "dirtier than forecast" in card, card
    assert 'class="card good"' not in card


def test_a_batch_that_ran_shows_its_carbon_however_it_ended(open_dash: Seeded) -> None:
    """An audit's finding: only completed and cancelled batches showed their carbon and
    saving; one that ran and then failed or expired had answered lines in the hours the
    scheduler chose, as the report counts them. One that never started shows none."""
    from boundgate.dashboard.views import batch_rows

    gw = open_dash.live.gateway
    for bid, state, started in (
        ("batch_ran_failed", "failed", "2023-06-01T12:00:00Z"),
        ("batch_ran_expired", "expired", "2023-06-01T12:00:00Z"),
        ("batch_never_ran", "failed", None),
    ):
        body = {
            "id": bid,
            "status": state,
            "created_at": 1,
            "request_counts": {"total": 3, "completed": 1, "failed": 2},
            "boundgate": {"state": state, "started_at": started, "carbon_g": 0.25,
                          "shifting_saved_g": 0.125},
        }  # fmt: skip
        asyncio.run(gw.store.put_batch(bid, "acme", 1.0, json.dumps(body)))
    rows = {r["id"]: r for r in asyncio.run(batch_rows(gw))}
    for ran in ("batch_ran_failed", "batch_ran_expired"):
        assert (rows[ran]["carbon_g"], rows[ran]["saved_g"]) == (0.25, 0.125)
    assert (rows["batch_never_ran"]["carbon_g"], rows["batch_never_ran"]["saved_g"]) == (None,) * 2


def test_tenants_page_shows_usage(keyed_dash: Seeded) -> None:
    live = keyed_dash.live
    with browser(live) as b:
        b.post("/dashboard/login", data={"key": keyed_dash.admin_key, "next": "/dashboard"})
        html = b.get("/dashboard/tenants").text
    assert "ops" in html and "acme" in html and "(admin)" in html
    # the Keys column is each tenant's number of active keys (it showed dict.keys's repr)
    assert "built-in method" not in html
    row = re.search(r'<th scope="row">acme</th>\s*<td>(\d+)</td>', html)
    assert row is not None and row.group(1) == "1", html


def test_tenants_page_shows_each_keys_own_limits(keyed_dash: Seeded) -> None:
    """Limits are a key's and counted per key: the page shows each active key against its
    own budget (it showed one per tenant, the largest of its keys')."""
    live = keyed_dash.live
    store = live.gateway.store
    spender = asyncio.run(store.create_key("acme", daily_tokens=500, rpm=7)).secret
    idle = asyncio.run(store.create_key("acme", daily_tokens=1000)).secret
    r = live.http.post(
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {spender}"},
        json={
            "messages": [{"role": "user", "content": "How many keys?"}],
            "temperature": 0,
            "max_tokens": 20,
        },
    )
    assert r.status_code == 200, r.text
    spent = r.json()["usage"]["total_tokens"]
    assert charged_today(live, counted(spender)) == spent  # settled: shown as used
    with browser(live) as b:
        b.post("/dashboard/login", data={"key": keyed_dash.admin_key, "next": "/dashboard"})
        html = b.get("/dashboard/tenants").text

    def key_row(secret: str) -> str:
        found = re.search(rf"<code>{secret.split('-')[1]}</code>.*?</tr>", html, re.S)
        assert found is not None, html
        return found.group(0)

    # the per-minute column is the last minute's requests against the limit (it showed
    # the limit alone, a trial's finding)
    assert f"{spent} / 500" in key_row(spender) and ">1 / 7<" in key_row(spender)
    assert "0 / 1000" in key_row(idle) and "held" not in key_row(idle)
    assert "no budget" in key_row(keyed_dash.user_key or "")
    # tokens a request holds (running, or its process killed before it settled: the hold
    # stays until its lease runs out) are shown beside the settled ones
    now = live.gateway.clock.time()
    day = (now // DAY_S) * DAY_S
    claim = Claim(tokens_counter(counted(idle)), day, 300, 1000, 600.0)
    assert asyncio.run(store.reserve("held-by-a-dead-process", [claim], now)) is None
    with browser(live) as b:
        b.post("/dashboard/login", data={"key": keyed_dash.admin_key, "next": "/dashboard"})
        html = b.get("/dashboard/tenants").text
    assert '0 / 1000 <span class="muted">(+300 held)</span>' in key_row(idle), key_row(idle)


def test_dashboard_can_be_switched_off(tmp_path: Path) -> None:
    settings = fake_settings(tmp_path, '[dashboard]\nenabled = false\n[reuse]\nembedder = "hash"\n')
    app = build_app(settings)
    with ThreadedServer(app) as srv:
        r = httpx.get(srv.base_url + "/dashboard", timeout=60)
    assert r.status_code == 404 and r.json()["error"]["type"] == "invalid_request_error"


def test_a_login_next_path_resolves_inside_the_dashboard(keyed_dash: Seeded) -> None:
    """A trial: ``next=/dashboard/../../v1/models`` (or ``/dashboard/../metrics``) led out
    of the dashboard after login: the path as the browser resolves it must stay in it."""
    live = keyed_dash.live
    for target, lands in [
        ("/dashboard/../../v1/models", "/dashboard"),
        ("/dashboard/../metrics", "/dashboard"),
        ("/dashboard/%2e%2e/metrics", "/dashboard"),
        ("/dashboard/.%2E/v1/models", "/dashboard"),
        ("/dashboardx", "/dashboard"),
        ("/dashboard/ledger?tenant=acme", "/dashboard/ledger?tenant=acme"),
        ("/dashboard/./grid", "/dashboard/grid"),
    ]:
        with browser(live) as b:
            r = b.post(
                "/dashboard/login",
                data={"key": keyed_dash.admin_key, "next": target},
                follow_redirects=False,
            )
            assert r.status_code == 303 and r.headers["location"] == lands, (target, r.headers)


def test_a_form_post_from_an_opaque_origin_is_refused(open_dash: Seeded) -> None:
    """A trial: ``Origin: null`` (a sandboxed frame, a data: page) passed the origin check of
    the dashboard's forms, where the login form refused it."""
    live, doc_id = open_dash.live, open_dash.doc_id
    with browser(live) as b:
        token = csrf_of(b.get(f"/dashboard/documents/{doc_id}").text)
        r = b.post(
            f"/dashboard/documents/{doc_id}/revoke",
            data={"csrf_token": token},
            headers={"origin": "null"},
        )
        assert r.status_code == 403
        doc = asyncio.run(live.gateway.store.get_document(doc_id))
        assert doc is not None and doc.state == "active"


def test_the_grid_page_names_the_start_policy() -> None:
    """A trial: the grid page said "Scheduling policy: function" for ``now``."""
    from boundgate.dashboard.views import _policy_name
    from boundgate.grid.bundled import BundledCarbonSource
    from boundgate.scheduler.jobs import run_now
    from boundgate.scheduler.policy import CarbonAwareStart

    assert _policy_name(run_now).startswith("now")
    assert _policy_name(CarbonAwareStart(BundledCarbonSource(), "DE-LU")).startswith("carbon")


def test_the_hit_precision_says_when_no_label_backs_it(open_dash: Seeded) -> None:
    """An operator's trial read "Hit precision 100.0 %" beside "Labels (above threshold)
    10 (0)": with no label above the threshold the figure is the prior's estimate, and says
    so."""
    with browser(open_dash.live) as b:
        html = b.get("/dashboard").text
    labels = html.split("<dt>Labels (above threshold)</dt><dd>", 1)[1].split("</dd>", 1)[0]
    precision = html.split("<dt>Hit precision</dt><dd>", 1)[1].split("</dd>", 1)[0]
    assert labels.endswith("(0)"), labels  # the seeded store: no label above the threshold
    assert "an estimate: no label above the threshold yet" in precision, precision


def test_a_signed_out_session_stays_ended_while_any_process_could_accept_its_cookie(
    tmp_path: Path,
) -> None:
    """A re-check: signed out on a process with a short ``session_hours``, the session's
    record was dropped once that process's cookie life was over, and a process with a longer
    one accepted the copied cookie again. The record now lasts the longest life any process
    can give a cookie, from its login."""
    from dataclasses import replace

    from starlette.responses import Response

    from boundgate.dashboard.session import MAX_SESSION_S, Sessions
    from boundgate.settings import DashboardSettings
    from boundgate.store import SQLiteStore

    (bound,) = [m.le for m in DashboardSettings.model_fields["session_hours"].metadata
                if hasattr(m, "le")]  # fmt: skip
    assert bound * 3600 == MAX_SESSION_S
    store = SQLiteStore(tmp_path / "s.db")
    store.open()
    try:
        short = Sessions(b"k" * 32, max_age_s=7.2)
        now = datetime.now(UTC).timestamp()
        session = replace(short.new("ops", "key", admin=True), issued_at=now)
        asyncio.run(short.end(Response(), session, store))
        # a sign-out a day later drops the records no cookie can outlive, not this one
        asyncio.run(store.end_session("other", until=now + 2 * 86400, now=now + 86400))
        assert asyncio.run(store.session_ended(session.sid))
        asyncio.run(store.end_session("more", until=now + 2 * MAX_SESSION_S,
                                      now=now + MAX_SESSION_S + 1))  # fmt: skip
        assert not asyncio.run(store.session_ended(session.sid))
    finally:
        store.close()
