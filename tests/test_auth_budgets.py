"""Keys, tenants, admin routes, and budgets that hold under concurrency."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from boundgate.assembly import build_app
from boundgate.settings import ConfigError
from boundgate.store import SQLiteStore
from boundgate.testing import ThreadedServer
from helpers import (
    Live,
    arun,
    assert_error,
    charged_today,
    counted,
    fake_settings,
    semantic_hit,
    wait_until,
    write_config,
)

MSG = [{"role": "user", "content": "hello there"}]


def keyed_live(tmp_path: Path, extra: str = "", **key_args: object) -> tuple[Live, dict[str, str]]:
    settings = fake_settings(tmp_path, extra)
    settings.server.data_dir.mkdir(parents=True, exist_ok=True)
    store = SQLiteStore(settings.db_path)
    store.open()
    keys = {
        "acme": asyncio.run(store.create_key("acme", **key_args)).secret,  # type: ignore[arg-type]
        "globex": asyncio.run(store.create_key("globex")).secret,
        "admin": asyncio.run(store.create_key("ops", admin=True)).secret,
    }
    store.close()
    app = build_app(settings)
    srv = ThreadedServer(app).__enter__()
    live = Live(srv, app)
    live.srv_exit = srv.__exit__  # type: ignore[attr-defined]
    return live, keys


@pytest.fixture
def keyed(tmp_path: Path) -> Iterator[tuple[Live, dict[str, str]]]:
    live, keys = keyed_live(tmp_path)
    yield live, keys
    live.srv_exit(None, None, None)  # type: ignore[attr-defined]


def test_open_mode_accepts_anonymous(fake_live: Live) -> None:
    r = fake_live.http.post("/v1/chat/completions", json={"messages": MSG})
    assert r.status_code == 200
    assert fake_live.ledger()[r.headers["x-request-id"]].tenant == "local"


def test_keys_required_once_they_exist(keyed: tuple[Live, dict[str, str]]) -> None:
    live, keys = keyed
    assert_error(live.http.post("/v1/chat/completions", json={"messages": MSG}), 401)
    bad = {"Authorization": "Bearer bg-nope-nope"}
    assert_error(live.http.post("/v1/chat/completions", json={"messages": MSG}, headers=bad), 401)
    c = live.openai(keys["acme"]).chat.completions.with_raw_response.create(
        model="fake", messages=MSG
    )
    assert live.ledger()[c.headers["x-request-id"]].tenant == "acme"


def test_another_authorization_scheme_is_named_not_called_missing(
    keyed: tuple[Live, dict[str, str]],
) -> None:
    """A trial's finding: `Authorization: Basic …` was told "missing API key". The 401 names
    the scheme and how to send a key; a Bearer key still passes."""
    live, keys = keyed
    basic = {"Authorization": "Basic dXNlcjpwYXNz"}
    r = live.http.post("/v1/chat/completions", json={"messages": MSG}, headers=basic)
    err = assert_error(r, 401)
    assert "unsupported authorization scheme 'Basic'" in err["message"], err
    assert "Authorization: Bearer <key>" in err["message"]
    ok = {"Authorization": f"bearer {keys['acme']}"}  # the scheme is case-insensitive
    assert live.http.post("/v1/chat/completions", json={"messages": MSG}, headers=ok).is_success


def test_a_key_sent_without_a_scheme_is_not_echoed_as_one(
    keyed: tuple[Live, dict[str, str]],
) -> None:
    """`Authorization: <key>` (the scheme left out) was told "unsupported authorization
    scheme 'bg-…'", the key's first 20 characters echoed as a scheme's name. A header of one
    word is said to be one, none of it echoed; every 401 names Bearer."""
    live, keys = keyed
    bare = {"Authorization": keys["acme"]}
    r = live.http.post("/v1/chat/completions", json={"messages": MSG}, headers=bare)
    err = assert_error(r, 401)
    assert keys["acme"][:6] not in err["message"], err
    assert "is one word, not a scheme and a key" in err["message"]
    assert "Authorization: Bearer <key>" in err["message"]
    assert r.headers["www-authenticate"] == 'Bearer realm="boundgate"'
    basic = {"Authorization": "Basic dXNlcjpwYXNz"}
    r = live.http.post("/v1/chat/completions", json={"messages": MSG}, headers=basic)
    assert assert_error(r, 401)["message"].startswith("unsupported authorization scheme 'Basic'")
    assert r.headers["www-authenticate"] == 'Bearer realm="boundgate"'


def test_one_authorization_header_whatever_whitespace_parts_its_scheme(
    keyed: tuple[Live, dict[str, str]],
) -> None:
    """A trial: two Authorization headers were read as the first (a good key then a bad one
    passed, the other order did not): refused 400. "Bearer<TAB>key" was told it was "one
    word": any whitespace parts the scheme from the key."""
    live, keys = keyed
    good, bad = f"Bearer {keys['acme']}", "Bearer bg-nope"
    for pair in ([good, bad], [bad, good]):
        r = live.http.post(
            "/v1/chat/completions",
            json={"messages": MSG},
            headers=[("Authorization", pair[0]), ("Authorization", pair[1])],
        )
        err = assert_error(r, 400)
        assert err["message"] == "send one Authorization header, not 2", err
    tab = {"Authorization": f"Bearer\t{keys['acme']}"}
    r = live.http.post("/v1/chat/completions", json={"messages": MSG}, headers=tab)
    assert r.status_code == 200, r.text


def test_refused_keys_are_ledgered_as_unauthenticated(keyed: tuple[Live, dict[str, str]]) -> None:
    """A 401's ledger row said tenant "local", a name open mode gives real requests; so did
    the 400 of two Authorization headers (a trial's finding)."""
    live, keys = keyed
    two = [("Authorization", "Bearer bg-a-b"), ("Authorization", f"Bearer {keys['acme']}")]
    for headers, status in (
        ([], 401),
        ([("Authorization", "Bearer bg-nope-nope")], 401),
        (two, 400),
    ):
        r = live.http.post("/v1/chat/completions", json={"messages": MSG}, headers=headers)
        assert_error(r, status)
        row = live.ledger()[r.headers["x-request-id"]]
        assert row.tenant == "unauthenticated" and row.status == status and row.key_id is None


JSON = {"content-type": "application/json"}
# bodies each refused with a 400 once the key is known; without a valid key, each is a 401
BAD_BODIES: list[tuple[bytes, dict[str, str]]] = [
    (b"{not json", JSON),
    (b'{"messages": [{"role": "user", "content": "x"}], "temperature": NaN}', JSON),
    (b'{"messages": [{"role": "user", "content": "x"}]}', {"content-type": "text/plain"}),
    (b'{"mesages": []}', JSON),
    (b"", JSON),
]


def test_the_key_is_checked_before_the_body(keyed: tuple[Live, dict[str, str]]) -> None:
    """An audit: a request without a key had its body read and judged first (malformed JSON,
    NaN, text/plain: 400), only a valid body got the 401. As OpenAI does, the key comes first
    on every route that takes one, an upload is not read without one, and an admin route
    says 403 to a tenant key before it looks at the body; with the key, the body is judged."""
    live, keys = keyed
    acme = {"Authorization": f"Bearer {keys['acme']}"}
    paths = [
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/embeddings",
        "/v1/batches",
        "/v1/boundgate/feedback",
        "/v1/boundgate/documents",
    ]
    for path in paths:
        for content, headers in BAD_BODIES:
            for key in ({}, {"Authorization": "Bearer bg-nope-nope"}):
                r = live.http.post(path, content=content, headers={**headers, **key})
                assert_error(r, 401, code="invalid_api_key")
    for content, headers in BAD_BODIES:
        r = live.http.post("/v1/boundgate/documents", content=content, headers={**headers, **acme})
        assert_error(r, 403, code="admin_required")
        r = live.http.post("/v1/chat/completions", content=content, headers={**headers, **acme})
        assert_error(r, 400)
    r = live.http.post("/v1/chat/completions", content=b"{not json", headers=JSON)
    row = live.ledger()[r.headers["x-request-id"]]
    assert row.tenant == "unauthenticated" and row.status == 401
    broken = {"content-type": "multipart/form-data; boundary=XX"}
    r = live.http.post("/v1/files", content=b"--XX\r\nnot a part", headers=broken)
    assert_error(r, 401, code="invalid_api_key")
    r = live.http.post("/v1/files", files={"file": ("in.jsonl", b"{}")}, data={"purpose": "x"})
    assert_error(r, 401, code="invalid_api_key")
    r = live.http.post("/v1/files", content=b"--XX\r\nnot a part", headers={**broken, **acme})
    assert_error(r, 400)


def test_a_refused_body_in_open_mode_is_the_open_tenants(fake_live: Live) -> None:
    """Open local mode takes every request as tenant "local"; a body refused before the key
    is read (malformed JSON) was ledgered as "unauthenticated", a second tenant in reports."""
    r = fake_live.http.post(
        "/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert_error(r, 400, code="invalid_json")
    assert fake_live.ledger()[r.headers["x-request-id"]].tenant == "local"


def test_admin_routes_need_admin_key(keyed: tuple[Live, dict[str, str]]) -> None:
    live, keys = keyed
    tenant = {"Authorization": f"Bearer {keys['acme']}"}
    admin = {"Authorization": f"Bearer {keys['admin']}"}
    assert_error(live.http.get("/v1/boundgate/report", headers=tenant), 403)
    live.http.post("/v1/chat/completions", json={"messages": MSG}, headers=tenant)
    r = live.http.get("/v1/boundgate/report", headers=admin)
    assert r.status_code == 200
    assert any(row["tenant"] == "acme" for row in r.json()["data"])


def test_stats_show_a_tenant_only_its_own_entries(keyed: tuple[Live, dict[str, str]]) -> None:
    """Issue #13: a non-admin key saw the gateway-wide count of stored entries and scopes."""
    live, keys = keyed
    acme = {"Authorization": f"Bearer {keys['acme']}"}
    globex = {"Authorization": f"Bearer {keys['globex']}"}
    admin = {"Authorization": f"Bearer {keys['admin']}"}
    for q in ("What is a gateway?", "What is a cache?"):
        body = {"messages": [{"role": "user", "content": q}], "temperature": 0}
        assert live.http.post("/v1/chat/completions", json=body, headers=acme).status_code == 200

    def stats(h: dict[str, str]) -> dict[str, object]:
        r = live.http.get("/v1/boundgate/stats", headers=h)
        assert r.status_code == 200
        return dict(r.json()["reuse"])

    assert stats(acme)["entries"] == 2 and stats(acme)["scopes"] == 1
    theirs = stats(globex)
    assert theirs["entries"] == 0 and theirs["scopes"] == 0 and "outcomes" not in theirs
    assert stats(admin)["entries"] == 2 and "outcomes" in stats(admin)


TENANT_OF_KEY = {"acme": "acme", "globex": "globex", "admin": "ops"}  # keyed_live's keys


def label_a_hit(live: Live, keys: dict[str, str], who: str, question: str, *, correct: bool) -> str:
    """Label a semantic hit of ``question``'s stored answer (``helpers.semantic_hit``) with
    the key ``who`` of ``keys``: the feedback's ``status``. (A label of an exact hit judges
    the answer, not a match: the shared verifier learns nothing from it.)"""
    request_id = semantic_hit(live, TENANT_OF_KEY[who], question)
    r = live.http.post(
        "/v1/boundgate/feedback",
        json={"request_id": request_id, "correct": correct},
        headers={"Authorization": f"Bearer {keys[who]}"},
    )
    assert r.status_code == 200, r.text
    return str(r.json()["status"])


def test_stats_hide_other_tenants_labels_and_lookups(keyed: tuple[Live, dict[str, str]]) -> None:
    """A tenant's stats showed every tenant's feedback (``observations_by_source``) and
    semantic lookups; it sees the deployment's threshold and bound, and its own counts."""
    live, keys = keyed
    acme = {"Authorization": f"Bearer {keys['acme']}"}
    globex = {"Authorization": f"Bearer {keys['globex']}"}
    admin = {"Authorization": f"Bearer {keys['admin']}"}
    assert label_a_hit(live, keys, "acme", "What is a gateway?", correct=False) == "recorded"

    def stats(h: dict[str, str]) -> dict[str, Any]:
        r = live.http.get("/v1/boundgate/stats", headers=h)
        assert r.status_code == 200
        return dict(r.json()["reuse"])

    assert stats(admin)["observations_by_source"]["feedback"] == {"total": 1, "wrong": 1}
    # the wrong label tightened the sampled verification for every tenant: the operator sees it
    assert stats(admin)["tightened_inspection"] == 5
    for tenant in (acme, globex):
        seen = stats(tenant)
        for hidden in (
            "observations_by_source",
            "semantic_lookups",
            "observations",
            "observations_above_threshold",
            "hit_precision",
            "tightened_inspection",
        ):
            assert hidden not in seen
        assert seen["prior"] is None or set(seen["prior"]) == {"source", "pairs"}
        assert seen["threshold"] == stats(admin)["threshold"]
        assert seen["error_bound"] == stats(admin)["error_bound"]
        assert "error_rate_estimate" in seen and "error_rate_ci" in seen


def test_a_tenants_correct_feedback_does_not_move_the_shared_threshold(
    keyed: tuple[Live, dict[str, str]],
) -> None:
    """One threshold serves every tenant: a tenant's ``correct: true`` would lower it for
    all (raising the others' wrong-reuse risk), so it is noted, not learned; an admin's is
    learned."""
    live, keys = keyed
    admin = {"Authorization": f"Bearer {keys['admin']}"}
    labelled = []
    for who, q in (("acme", "What is a gateway?"), ("admin", "What is a cache?")):
        labelled.append(label_a_hit(live, keys, who, q, correct=True))
    assert labelled == ["noted", "recorded"]
    r = live.http.get("/v1/boundgate/stats", headers=admin)
    assert r.json()["reuse"]["observations_by_source"]["feedback"] == {"total": 1, "wrong": 0}


def test_a_noted_label_leaves_the_request_open_to_a_learned_one(
    keyed: tuple[Live, dict[str, str]],
) -> None:
    """A trial's finding: a tenant's ``correct: true`` (noted, not learned) used up the
    request's only label, so its later ``correct: false`` was a duplicate and never
    learned."""
    live, keys = keyed
    acme = {"Authorization": f"Bearer {keys['acme']}"}
    assert label_a_hit(live, keys, "acme", "What is a gateway?", correct=True) == "noted"
    (row,) = [r for r in live.ledger().values() if r.reuse == "hit-semantic"]
    again = live.http.post(
        "/v1/boundgate/feedback", json={"request_id": row.id, "correct": False}, headers=acme
    )
    assert again.json()["status"] == "recorded"


def test_revoked_key_is_refused(keyed: tuple[Live, dict[str, str]]) -> None:
    live, keys = keyed
    key_id = keys["globex"].split("-")[1]
    # Revoke from a second store instance, as the CLI in another process would.
    other = SQLiteStore(live.gateway.store.path if hasattr(live.gateway.store, "path") else "")
    other.open()
    assert asyncio.run(other.revoke_key(key_id))
    other.close()
    r = live.http.post(
        "/v1/chat/completions",
        json={"messages": MSG},
        headers={"Authorization": f"Bearer {keys['globex']}"},
    )
    assert_error(r, 401)


def test_requests_per_minute(tmp_path: Path) -> None:
    live, keys = keyed_live(tmp_path, rpm=3)
    try:
        h = {"Authorization": f"Bearer {keys['acme']}"}
        codes = [
            live.http.post("/v1/chat/completions", json={"messages": MSG}, headers=h).status_code
            for _ in range(3)
        ]
        assert codes == [200, 200, 200]
        r = live.http.post("/v1/chat/completions", json={"messages": MSG}, headers=h)
        assert_error(r, 429, code="rate_limit_exceeded")
        assert 1 <= int(r.headers["retry-after"]) <= 60
        other = {"Authorization": f"Bearer {keys['globex']}"}  # other tenants unaffected
        assert (
            live.http.post(
                "/v1/chat/completions", json={"messages": MSG}, headers=other
            ).status_code
            == 200
        )
    finally:
        live.srv_exit(None, None, None)  # type: ignore[attr-defined]


def test_daily_token_budget_never_overrun_under_concurrency(tmp_path: Path) -> None:
    # below what 60 requests really use (16 tokens each with the fake backend), so some are
    # refused however the requests interleave; a larger budget was exhausted only when many
    # reservations (input bytes + max_tokens each) were in flight at once, which a loaded
    # machine did not always produce
    budget = 600
    live, keys = keyed_live(tmp_path, daily_tokens=budget)
    try:
        h = {"Authorization": f"Bearer {keys['acme']}"}
        body = {"messages": MSG, "max_tokens": 40}

        async def fire() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=live.base, timeout=60) as c:
                return await asyncio.gather(
                    *[c.post("/v1/chat/completions", json=body, headers=h) for _ in range(60)]
                )

        responses = asyncio.run(fire())
        ok = [r for r in responses if r.status_code == 200]
        limited = [r for r in responses if r.status_code == 429]
        outcomes = sorted(
            f"{r.status_code} {r.headers.get('x-boundgate-reuse')} "
            f"{r.json().get('usage', {}).get('total_tokens')}"
            for r in responses
        )
        assert ok and limited and len(ok) + len(limited) == 60, outcomes
        assert all(r.json()["error"]["code"] == "daily_token_budget_exceeded" for r in limited)
        assert all(int(r.headers["retry-after"]) >= 1 for r in limited)
        used = sum(r.json()["usage"]["total_tokens"] for r in ok)
        assert used <= budget
        rows = [r for r in live.ledger().values() if r.tenant == "acme" and r.status == 200]
        assert sum(r.prompt_tokens + r.completion_tokens for r in rows) == used <= budget
    finally:
        live.srv_exit(None, None, None)  # type: ignore[attr-defined]


def test_a_stored_answer_is_served_when_the_budget_cannot_cover_a_fresh_one(
    tmp_path: Path,
) -> None:
    """A trial's finding: with the daily budget nearly spent, an exact repeat got 429
    ``daily_token_budget_exceeded`` (the worst case of a fresh answer was reserved before
    the lookup), though hits use no tokens. The stored answer is served; a new question
    still gets the 429."""
    live, keys = keyed_live(tmp_path, daily_tokens=150)
    try:
        h = {"Authorization": f"Bearer {keys['acme']}"}

        def ask(q: str) -> httpx.Response:
            body = {"messages": [{"role": "user", "content": q}], "temperature": 0}
            return live.http.post(
                "/v1/chat/completions", json={**body, "max_tokens": 40}, headers=h
            )

        first = ask("Which river flows through Vienna?")
        assert first.status_code == 200, first.text
        spent = [ask(f"Name a city on river number {i}.") for i in range(6)]
        assert spent[-1].status_code == 429, [r.status_code for r in spent]
        again = ask("Which river flows through Vienna?")
        assert again.status_code == 200, again.text
        assert again.headers["x-boundgate-reuse"] == "hit-exact"
        assert (
            again.json()["choices"][0]["message"]["content"]
            == first.json()["choices"][0]["message"]["content"]
        )
        new = ask("Which river flows through Budapest?")
        assert new.status_code == 429
        assert new.json()["error"]["code"] == "daily_token_budget_exceeded"
    finally:
        live.srv_exit(None, None, None)  # type: ignore[attr-defined]


def test_metrics_can_require_a_bearer_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BG_METRICS_TOKEN", "s3cret")
    settings = fake_settings(tmp_path)
    settings.server.metrics_token_env = "BG_METRICS_TOKEN"
    app = build_app(settings)
    with ThreadedServer(app) as srv:
        live = Live(srv, app)
        assert_error(live.http.get("/metrics"), 401)
        assert_error(live.http.get("/metrics", headers={"Authorization": "Bearer nope"}), 401)
        ok = live.http.get("/metrics", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and "boundgate_" in ok.text
        # the scheme's name in any case, as /v1 takes it (a trial); a 401 names the scheme
        ok = live.http.get("/metrics", headers={"Authorization": "bearer s3cret"})
        assert ok.status_code == 200
        denied = live.http.get("/metrics", headers={"Authorization": "Basic s3cret"})
        assert_error(denied, 401)
        assert denied.headers["www-authenticate"].startswith("Bearer")
        live.http.close()
    monkeypatch.delenv("BG_METRICS_TOKEN")
    with pytest.raises(ConfigError, match="metrics_token_env"):
        build_app(settings)


def test_keys_create_refuses_negative_limits(tmp_path: Path) -> None:
    """A negative limit would make a key that every request is refused with (429 "over its
    limit of -1"); the CLI refuses it and creates nothing (0 is unlimited)."""
    from typer.testing import CliRunner

    from boundgate.cli import app as cli

    data = tmp_path / "data"
    runner = CliRunner()
    for flag in ("--rpm", "--daily-tokens", "--daily-reasoning-tokens"):
        r = runner.invoke(
            cli, ["keys", "create", "--tenant", "x", flag, "-1", "--data-dir", str(data)]
        )
        assert r.exit_code == 2, (flag, r.output)
    ok = runner.invoke(
        cli, ["keys", "create", "--tenant", "x", "--rpm", "0", "--data-dir", str(data)]
    )
    assert ok.exit_code == 0, ok.output
    store = SQLiteStore(data / "boundgate.db")
    store.open()
    try:
        assert [k.rpm for k in arun(store.list_keys())] == [0]
    finally:
        store.close()


def test_keys_create_warns_when_it_creates_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trial's `keys create` in a directory without a store silently made ./.boundgate,
    which no server used, and the server stayed open. It still makes it (a first key before
    the first `serve`), but warns as `docs import` does, naming the store and --config."""
    from typer.testing import CliRunner

    from boundgate.cli import app as cli

    monkeypatch.chdir(tmp_path)
    runner = CliRunner(env={"BOUNDGATE_CONFIG": None, "BOUNDGATE_STORE__URL": None})
    first = runner.invoke(cli, ["keys", "create", "--tenant", "acme"])
    assert first.exit_code == 0 and first.stdout.startswith("bg-"), first.output
    db = tmp_path / ".boundgate" / "boundgate.db"
    warning = " ".join(first.stderr.split())  # rich wraps long lines at the terminal's width
    assert warning.startswith(f"warning: the SQLite store {db} did not exist before this command")
    assert "no server uses it yet" in warning and "--config" in warning
    again = runner.invoke(cli, ["keys", "create", "--tenant", "acme"])  # the store is there
    assert again.exit_code == 0 and "warning" not in again.stderr, again.output


def test_keys_create_with_its_store_named_notes_the_new_store_without_advice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An operator's trial: `keys create --config boundgate.toml` on a fresh data directory
    was told to "give the server's config file with --config", which it had. With --config
    or --data-dir the new store is said in a note, without that advice."""
    from typer.testing import CliRunner

    from boundgate.cli import app as cli

    monkeypatch.chdir(tmp_path)
    runner = CliRunner(env={"BOUNDGATE_CONFIG": None, "BOUNDGATE_STORE__URL": None})
    cfg = write_config(tmp_path / "b.toml", f'[server]\ndata_dir = "{tmp_path / "d1"}"\n')
    for option in (["--config", str(cfg)], ["--data-dir", "d2"]):
        r = runner.invoke(cli, ["keys", "create", "--tenant", "acme", *option])
        assert r.exit_code == 0 and r.stdout.startswith("bg-"), r.output
        said = " ".join(r.stderr.split())
        assert said.startswith("note: the SQLite store") and "it was created here" in said, said
        assert "warning" not in said and "--config" not in said


def test_a_request_refused_by_a_full_model_queue_does_not_count_against_the_rate(
    tmp_path: Path,
) -> None:
    """An SDK trial (queue size 1, rpm 6): two 503 ``overloaded`` refusals, which the model
    never started on, took two of the key's six requests of the minute, and the SDK retries
    a 503 by itself. A request the model never started on is given its slot back, as a
    request the daily budget refuses is, streamed or not."""
    import threading

    from boundgate.backends.fake import FakeBackend

    settings = fake_settings(tmp_path)
    settings.server.data_dir.mkdir(parents=True)
    store = SQLiteStore(settings.db_path)
    store.open()
    secret = arun(store.create_key("acme", rpm=2)).secret
    store.close()
    busy = FakeBackend(
        "fake", serialize=True, queue_size=0, token_delay_s=0.05, answers=lambda q: "w " * 40
    )
    app = build_app(settings, backends={"fake": busy})
    h = {"Authorization": f"Bearer {secret}"}

    def ask(http: httpx.Client, content: str, **extra: Any) -> httpx.Response:
        body = {"messages": [{"role": "user", "content": content}], "temperature": 0.9}
        return http.post("/v1/chat/completions", json={**body, **extra}, headers=h)

    with ThreadedServer(app) as srv, httpx.Client(base_url=srv.base_url, timeout=60) as http:
        first: list[httpx.Response] = []
        running = threading.Thread(target=lambda: first.append(ask(http, "a long one")))
        running.start()
        wait_until(lambda: busy._lock is not None and busy._lock.locked())
        for extra in ({}, {"stream": True}):
            assert_error(ask(http, "refused", **extra), 503, code="overloaded")
        running.join()
        assert first[0].status_code == 200
        assert ask(http, "the second of the minute").status_code == 200
        assert_error(ask(http, "the third"), 429, code="rate_limit_exceeded")


def test_keys_rotate_carries_todays_usage_and_limits_over_and_revokes_the_old_key(
    tmp_path: Path,
) -> None:
    """An operator's trial: there was no way to rotate a key but to create another by hand,
    typing its limits again, and the new key started the day at 0 of its budget (limits are
    a key's): a tenant at 186 of 300 tokens got 300 more. ``keys rotate`` makes the new key
    with the old one's tenant and limits, carries today's tokens over and revokes the old."""
    from typer.testing import CliRunner

    from boundgate.cli import app as cli
    from boundgate.store.keys import key_id_of

    live, keys = keyed_live(tmp_path, daily_tokens=300, rpm=50)
    try:
        old = keys["acme"]
        ok = live.http.post(
            "/v1/chat/completions",
            json={"messages": MSG, "max_tokens": 20},
            headers={"Authorization": f"Bearer {old}"},
        )
        assert ok.status_code == 200, ok.text
        spent = charged_today(live, counted(old))
        assert spent > 0
        data_dir = str(tmp_path / "data")  # fake_settings' server.data_dir
        r = CliRunner().invoke(cli, ["keys", "rotate", old, "--data-dir", data_dir])
        assert r.exit_code == 0, r.output
        new = r.stdout.strip()
        assert new.startswith("bg-") and f"carrying today's {spent} tokens" in r.stderr
        assert charged_today(live, counted(new)) == spent
        (key,) = [k for k in arun(live.gateway.store.list_keys()) if k.id == key_id_of(new)]
        assert (key.tenant, key.daily_tokens, key.rpm, key.admin) == ("acme", 300, 50, False)
        h_old = {"Authorization": f"Bearer {old}"}
        h_new = {"Authorization": f"Bearer {new}"}
        body = {"messages": MSG, "max_tokens": 20}
        assert live.http.post("/v1/chat/completions", json=body, headers=h_old).status_code == 401
        assert live.http.post("/v1/chat/completions", json=body, headers=h_new).status_code == 200
        again = CliRunner().invoke(cli, ["keys", "rotate", old, "--data-dir", data_dir])
        assert again.exit_code == 2 and "revoked" in again.stderr
    finally:
        live.srv_exit(None, None, None)  # type: ignore[attr-defined]


def test_embeddings_hold_the_tokens_they_are_charged(tmp_path: Path) -> None:
    """An audit's finding: ``/v1/embeddings`` held the inputs' UTF-8 bytes but was charged
    the model's tokens, [CLS] and [SEP] included: ``["a"] * 900`` held 900 of a budget of
    1000 and was charged 2700. The tokens are counted before the hold now: what is held is
    what is charged, and the budget is never overrun."""
    live, keys = keyed_live(tmp_path, daily_tokens=1000)
    try:
        h = {"Authorization": f"Bearer {keys['acme']}"}
        first = live.http.post("/v1/embeddings", json={"input": ["a"] * 300}, headers=h)
        assert first.status_code == 200, first.text
        assert first.json()["usage"]["prompt_tokens"] == 900  # [CLS] a [SEP], 300 times
        more = live.http.post("/v1/embeddings", json={"input": ["a"] * 40}, headers=h)
        assert_error(more, 429, code="daily_token_budget_exceeded")  # 120 of 100 left
        message = more.json()["error"]["message"]
        # an embeddings request has no max_tokens to lower (a trial was told to)
        assert "up to 120 (send less input or wait" in message and "max_tokens" not in message
        assert charged_today(live, counted(keys["acme"])) == 900
    finally:
        live.srv_exit(None, None, None)  # type: ignore[attr-defined]


def test_a_request_the_budget_refuses_takes_no_slot_of_the_minute(tmp_path: Path) -> None:
    """An audit's finding: a request refused by the spent daily budget had taken a slot of
    the minute while it looked for a stored answer, so after a few refusals a client got
    ``rate_limit_exceeded`` (and a stored answer was not served) for a budget that is spent
    until midnight. A refused request counts against neither."""
    live, keys = keyed_live(tmp_path, rpm=3, daily_tokens=100)
    try:
        h = {"Authorization": f"Bearer {keys['acme']}"}

        def ask(q: str) -> httpx.Response:
            body = {"messages": [{"role": "user", "content": q}], "temperature": 0}
            return live.http.post(
                "/v1/chat/completions", json={**body, "max_tokens": 40}, headers=h
            )

        first = ask("Which river flows through Vienna?")
        assert first.status_code == 200, first.text  # its hold leaves no room for another
        refused = [ask(f"Name a city on river number {i}.") for i in range(5)]
        assert [r.json()["error"]["code"] for r in refused] == ["daily_token_budget_exceeded"] * 5
        again = ask("Which river flows through Vienna?")
        assert again.status_code == 200, again.text
        assert again.headers["x-boundgate-reuse"] == "hit-exact"
        assert ask("Which river flows through Vienna?").status_code == 200  # 3 a minute
        assert_error(ask("Which river flows through Vienna?"), 429, code="rate_limit_exceeded")
    finally:
        live.srv_exit(None, None, None)  # type: ignore[attr-defined]


def test_the_keys_of_one_tenant_keep_budgets_of_their_own(tmp_path: Path) -> None:
    """An audit's finding (one tenant, three keys: 100 tokens a day, 100 000, and none): the
    keys shared one counter per tenant, so the large key's requests spent the small key's
    budget, and the unlimited key's were charged to nobody. Limits are a key's and counted
    per key: whatever the other keys do, the small key has its own 100 tokens."""
    settings = fake_settings(tmp_path)
    settings.server.data_dir.mkdir(parents=True, exist_ok=True)
    store = SQLiteStore(settings.db_path)
    store.open()
    keys = {
        name: asyncio.run(store.create_key("acme", **limits)).secret  # type: ignore[arg-type]
        for name, limits in (
            ("small", {"daily_tokens": 100}),
            ("large", {"daily_tokens": 100_000}),
            ("free", {}),
        )
    }
    store.close()
    app = build_app(settings)
    with ThreadedServer(app) as srv:
        live = Live(srv, app)

        def ask(key: str, q: str) -> int:
            body = {"messages": [{"role": "user", "content": q}], "max_tokens": 40}
            h = {"Authorization": f"Bearer {keys[key]}"}
            return live.http.post("/v1/chat/completions", json=body, headers=h).status_code

        assert [ask("free", f"free {i}") for i in range(5)] == [200] * 5
        assert [ask("large", f"large {i}") for i in range(6)] == [200] * 6
        assert ask("small", "small 0") == 200  # none of the others' tokens are its
        assert charged_today(live, counted(keys["free"])) == 0  # no budget, no count
        small = charged_today(live, counted(keys["small"]))
        large = charged_today(live, counted(keys["large"]))
        rows = [r for r in live.ledger().values() if r.tenant == "acme"]
        by_key = {
            k: sum(r.prompt_tokens + r.completion_tokens for r in rows if r.key_id == k)
            for k in {r.key_id for r in rows}
        }
        assert by_key[counted(keys["small"]).removeprefix("key:")] == small > 0
        assert by_key[counted(keys["large"]).removeprefix("key:")] == large > 0
        live.http.close()


def test_a_request_larger_than_the_whole_budget_is_a_400_not_a_429(tmp_path: Path) -> None:
    """An audit's finding: a request whose worst case alone (``max_tokens``) exceeded the
    key's whole daily budget got a 429 with a Retry-After of hours, though it could never be
    admitted. It is a 400 ``invalid_value`` naming the parameter as sent, and the budget, and
    like the budget's 429 it takes no slot of the minute; a stored answer (which uses no
    tokens) is still served."""
    live, keys = keyed_live(tmp_path, rpm=3, daily_tokens=100)
    try:
        h = {"Authorization": f"Bearer {keys['acme']}"}
        msgs = [{"role": "user", "content": "Which river flows through Vienna?"}]

        def chat(**limit: int) -> httpx.Response:
            body = {"messages": msgs, "temperature": 0, **limit}
            return live.http.post("/v1/chat/completions", json=body, headers=h)

        big = arun(live.gateway.store.create_key("acme", daily_tokens=100_000)).secret
        body = {"messages": msgs, "temperature": 0, "max_tokens": 200}
        stored = live.http.post(
            "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {big}"}
        )
        assert stored.status_code == 200, stored.text  # the tenant's other key's answer
        assert stored.json()["choices"][0]["finish_reason"] == "stop"
        r = chat(max_completion_tokens=200)  # more than the whole budget: served stored
        assert r.status_code == 200 and r.headers["x-boundgate-reuse"] == "hit-exact"
        msgs[0]["content"] = "Which river flows through Budapest?"
        for _ in range(2):  # no slot of the minute taken
            r = chat(max_completion_tokens=200)
            assert_error(r, 400, code="invalid_value")
            assert r.json()["error"]["param"] == "max_completion_tokens"
            assert "retry-after" not in r.headers
            assert "daily token budget of 100" in r.json()["error"]["message"]
        plain = live.http.post(
            "/v1/completions", json={"prompt": "Say hi.", "max_tokens": 101}, headers=h
        )
        assert_error(plain, 400, code="invalid_value")
        assert plain.json()["error"]["param"] == "max_tokens"
        assert chat(max_tokens=20).status_code == 200  # counted second: the 400s took no slot
        embed = live.http.post("/v1/embeddings", json={"input": ["a"] * 34}, headers=h)
        assert_error(embed, 400, code="invalid_value")  # 102 tokens
        assert embed.json()["error"]["param"] == "input"
        rows = [r for r in live.ledger().values() if r.tenant == "acme" and r.status == 400]
        assert len(rows) >= 3  # ledgered as refused requests
    finally:
        live.srv_exit(None, None, None)  # type: ignore[attr-defined]


def test_a_local_models_hold_is_at_most_its_context(tmp_path: Path) -> None:
    """A trial's finding: ``max_tokens: 2147483647`` on the local model (context 2,048) was
    held whole on the daily budget, so a key with 5,000 tokens a day was refused a request
    the model answers in a few dozen tokens. A local model's answer stops at its context: the
    hold is at most that."""
    live, keys = keyed_live(tmp_path, daily_tokens=5000)
    try:
        h = {"Authorization": f"Bearer {keys['acme']}"}
        body = {
            "messages": [{"role": "user", "content": "Which river flows through Vienna?"}],
            "max_tokens": 2**31 - 1,
        }
        r = live.http.post("/v1/chat/completions", json=body, headers=h)
        assert r.status_code == 200, r.text
        assert charged_today(live, counted(keys["acme"])) == r.json()["usage"]["total_tokens"]
    finally:
        live.http.close()
