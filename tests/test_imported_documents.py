"""Imported documents served for what they are: of their own model version (never stale for
good), of their answer's true age, of a length that fits the request (an audit's findings:
an import from another version was served marked stale for ever, its age counted from its
binding, and a document without a token count fitted every ``max_tokens``)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from boundgate.assembly import build_app
from boundgate.backends.base import GenerationRequest, Message
from boundgate.backends.fake import FakeBackend
from boundgate.cli import app as cli
from boundgate.reuse import binding
from boundgate.reuse.scope import reuse_key
from boundgate.store import SQLiteStore
from helpers import Live, arun, fake_settings, wait_until

Q = "What is the boiling point of water at sea level?"
TIMELY = "What is the current price of bitcoin?"  # time-sensitive (TimeSensitivity)
HASH = '[reuse]\nembedder = "hash"'
WEEK = timedelta(days=7)


@contextmanager
def gateway(
    tmp: Path, version: str = "v1", *, answers: bool = False, **reuse: Any
) -> Iterator[Live]:
    """The fake model at ``version`` on the data dir under ``tmp``, in-process. Without
    ``answers`` its answers are empty, so a miss stores none: whatever is reused is what
    was imported."""
    tmp.mkdir(parents=True, exist_ok=True)
    settings = fake_settings(tmp, HASH)
    settings.scheduler.policy = "now"
    settings.scheduler.poll_s = 0.05
    for k, v in reuse.items():
        setattr(settings.reuse, k, v)
    fake = FakeBackend("fake", params_b=1, version=version, answers=None if answers else silent)
    app = build_app(settings, backends={"fake": fake})
    with Live.in_process(app) as live:
        yield live


def silent(question: str) -> str:
    return ""


def ask(live: Live, content: str = Q, cache_control: str = "", **body: Any) -> Any:
    payload = {"messages": [{"role": "user", "content": content}], "temperature": 0, **body}
    headers = {"Cache-Control": cache_control} if cache_control else {}
    return live.http.post("/v1/chat/completions", json=payload, headers=headers)


def signed(
    signer: binding.Signer,
    *,
    question: str = Q,
    answer: str = "100 °C.",
    version: str = "v1",
    max_tokens: int = 1024,
    created: datetime | None = None,
    answer_created: datetime | None = None,
    drop: tuple[str, ...] = (),
    limit_class: bool = False,
) -> dict[str, Any]:
    """A document as gateway ``signer`` binds it for the fake model at ``version``, in the
    scope an open-mode request for ``question`` with ``max_tokens`` has (``limit_class``: as
    scopes were made before the limit left them, with its class); ``drop``: fields removed (a
    document bound before them)."""
    req = GenerationRequest(
        model="fake", messages=[Message("user", question)], max_tokens=max_tokens, temperature=0
    )
    key = reuse_key(req, tenant="local", model_version=version, endpoint="/v1/chat/completions")
    assert key is not None and key.legacy is not None
    key = key.legacy if limit_class else key
    now = datetime.now(UTC)
    doc = binding.build(
        question=question,
        variants=[question],
        answer=answer,
        model="fake",
        model_version=version,
        tenant="local",
        scope=key.scope_doc,
        askers=3,
        created=created or now,
        cost_wh=0.002,
        cost_gco2=0.001,
        completion_tokens=len(answer.split()),
        temperature=0,
        **({} if answer_created is None else {"answer_created": answer_created}),
    )
    for name in drop:
        doc.pop(name)
    return signer.sign(doc, created or now)


def import_into(tmp: Path, issuer: Path, *docs: dict[str, Any]) -> None:
    """``docs import`` of ``docs`` (signed with the key in ``issuer``) into the data dir
    under ``tmp`` (its config written if it is not there)."""
    tmp.mkdir(parents=True, exist_ok=True)
    if not (tmp / "boundgate.toml").exists():
        fake_settings(tmp, HASH)
    f = tmp / "import.ndjson"
    f.write_text("".join(json.dumps(d) + "\n" for d in docs))
    pub = str(issuer / binding.PUBLIC_KEY_FILE)
    config = str(tmp / "boundgate.toml")
    res = CliRunner().invoke(cli, ["docs", "import", str(f), "--public-key", pub, "-c", config])
    assert res.exit_code == 0 and f"imported {len(docs)}" in res.output, res.output


def states(live: Live) -> dict[str, str]:
    return {d["id"]: d["state"] for d in live.http.get("/v1/boundgate/documents").json()["data"]}


def jobs(live: Live) -> list[tuple[str, str, Any]]:
    rows = arun(live.gateway.store.jobs())
    return [(j.kind, j.state, json.loads(j.result) if j.result else None) for j in rows]


# --- another model version ----------------------------------------------------------------


def test_an_imported_document_of_another_version_is_neither_stale_nor_rebound(
    tmp_path: Path,
) -> None:
    """An audit: a document imported from a gateway on another version of a configured model
    was marked stale and served so for good (its rebind job skipped: an import records no
    request to rerun), and every start queued another job. It stays active, a document of
    its version, not served to this one (as an answer never bound)."""
    issuer = binding.Signer.load_or_create(tmp_path / "a")
    doc = signed(issuer, version="vA")
    doc_id = binding.short_id(doc["@id"])
    import_into(tmp_path / "b", tmp_path / "a", doc)
    for _start in range(2):
        with gateway(tmp_path / "b", version="vB") as live:
            r = ask(live)
            assert r.headers["x-boundgate-reuse"] == "miss"  # was "stale", doc_id
            assert states(live)[doc_id] == "active"
            assert jobs(live) == []
    with gateway(tmp_path / "b", version="vA") as live:  # its own version: served
        r = ask(live)
        assert (r.headers["x-boundgate-reuse"], r.headers["x-boundgate-document"]) == (
            "hit-exact",
            doc_id,
        )


def _mark_stale(data_dir: Path, doc_id: str) -> None:
    store = SQLiteStore(data_dir / "boundgate.db")
    store.open()
    try:
        arun(store.set_document_state(doc_id, "stale"))
    finally:
        store.close()


def test_a_document_marked_stale_that_cannot_be_rebound_is_made_active(tmp_path: Path) -> None:
    """A store from before the fix holds the imported document stale: the next start makes it
    active again, and neither serves it stale nor queues a job for it."""
    issuer = binding.Signer.load_or_create(tmp_path / "a")
    doc = signed(issuer, version="vA")
    doc_id = binding.short_id(doc["@id"])
    import_into(tmp_path / "b", tmp_path / "a", doc)
    _mark_stale(tmp_path / "b" / "data", doc_id)
    with gateway(tmp_path / "b", version="vB") as live:
        assert states(live)[doc_id] == "active"
        assert ask(live).headers["x-boundgate-reuse"] == "miss"
        assert jobs(live) == []


def test_a_rebind_job_that_finds_no_request_makes_its_document_active(tmp_path: Path) -> None:
    """The job's own way out: a stale document whose entry records no request (here an
    import, marked stale while this gateway runs, as a start of an older replica did) is made
    active by its rebind job, which says so, and is no longer served marked stale."""
    issuer = binding.Signer.load_or_create(tmp_path / "a")
    doc = signed(issuer, version="vA")
    doc_id = binding.short_id(doc["@id"])
    import_into(tmp_path / "b", tmp_path / "a", doc)
    with gateway(tmp_path / "b", version="vB", sync_interval_s=0.05) as live:
        arun(live.gateway.store.set_document_state(doc_id, "stale"))
        asked = iter(range(1000))
        # the change log brings the state here; served marked stale until its job runs
        wait_until(
            lambda: ask(live, user=f"u{next(asked)}").headers["x-boundgate-reuse"] == "stale"
        )
        arun(live.gateway.jobs.submit("rebind", {"document": doc_id}))
        wait_until(lambda: [j[1] for j in jobs(live)] == ["done"])
        assert jobs(live)[0][2] == {"skipped": "original request not recorded", "state": "active"}
        assert states(live)[doc_id] == "active"
        r = ask(live, user="another asker")
        assert r.headers["x-boundgate-reuse"] != "stale"


# --- the answer's age -------------------------------------------------------------------


def test_a_bound_document_carries_its_answers_age_to_the_importer(tmp_path: Path) -> None:
    """The audit's case: an answer stored a week ago and bound today was served by the
    importing gateway to max-age=3600 (its age counted from dateCreated, the binding). The
    document says when the answer was generated (bg:answerCreated), and the importer counts
    from that."""
    with gateway(tmp_path / "a", answers=True, bind_after=2) as live:
        assert ask(live, user="alice").headers["x-boundgate-reuse"] == "miss"
        db = sqlite3.connect(tmp_path / "a" / "data" / "boundgate.db")
        db.execute("UPDATE reuse_entries SET created = created - ?", (WEEK.total_seconds(),))
        db.commit()
        db.close()
        doc_id = ask(live, user="bob").headers["x-boundgate-document"]  # bound now
        doc = live.http.get(f"/v1/boundgate/documents/{doc_id}").json()
    bound = binding.parse_timestamp(doc["dateCreated"])
    answered = binding.parse_timestamp(doc["bg:answerCreated"])
    assert bound is not None and answered is not None
    assert timedelta(days=6) < bound - answered < timedelta(days=8)
    import_into(tmp_path / "b", tmp_path / "a" / "data", doc)
    with gateway(tmp_path / "b") as live:
        fresh = ask(live, user="dave", cache_control="max-age=3600")
        assert fresh.headers["x-boundgate-reuse"] == "miss"  # was hit-exact
        weekly = ask(live, user="erin", cache_control=f"max-age={8 * 86400}")
        assert (weekly.headers["x-boundgate-reuse"], weekly.headers["x-boundgate-document"]) == (
            "hit-exact",
            doc_id,
        )


def test_an_answer_of_unknown_age_is_served_only_where_age_does_not_matter(
    tmp_path: Path,
) -> None:
    """A document bound before bg:answerCreated says only when it was bound: its answer may
    be any age, so no request with a max-age and no time-sensitive question gets it; others
    do. One that says is served by its answer's age."""
    issuer = binding.Signer.load_or_create(tmp_path / "a")
    just_now = datetime.now(UTC) - timedelta(seconds=60)
    import_into(
        tmp_path / "b",
        tmp_path / "a",
        signed(issuer),  # no answer_created: the field is absent
        signed(issuer, question=TIMELY, answer="About 90,000 dollars."),
        signed(issuer, question=TIMELY + " Quick.", answer="90k.", answer_created=just_now),
    )
    with gateway(tmp_path / "b") as live:
        r = ask(live, cache_control="max-age=86400")
        assert r.headers["x-boundgate-reuse"] == "miss"  # was hit-exact: bound just now
        r = ask(live, user="u2", boundgate={"max_age": 86400})
        assert r.headers["x-boundgate-reuse"] == "miss"
        r = ask(live, user="u3")  # no limit on its age: served
        assert r.headers["x-boundgate-reuse"] == "hit-exact"
        r = ask(live, TIMELY, user="u4")  # time-sensitive: at most 300 s old, unknown here
        assert r.headers["x-boundgate-reuse"] == "miss"
        r = ask(live, TIMELY + " Quick.", user="u5")  # says it is a minute old
        assert r.headers["x-boundgate-reuse"] == "hit-exact"


def test_an_answer_dated_ahead_has_no_age_to_judge(tmp_path: Path) -> None:
    """A trial: documents whose bg:answerCreated was 23 h ahead (an exporter's clock running
    fast; import accepts up to a day ahead) met max-age=0 and the 300 s time-sensitive limit
    (a negative age passed every test). They are served only where age does not matter."""
    issuer = binding.Signer.load_or_create(tmp_path / "a")
    ahead = datetime.now(UTC) + timedelta(hours=23)
    import_into(
        tmp_path / "b",
        tmp_path / "a",
        signed(issuer, created=ahead, answer_created=ahead),
        signed(issuer, question=TIMELY, answer="90k.", created=ahead, answer_created=ahead),
    )
    with gateway(tmp_path / "b") as live:
        for cache_control in ("max-age=0", "max-age=86400"):
            r = ask(live, cache_control=cache_control, user=cache_control)
            assert r.headers["x-boundgate-reuse"] == "miss", cache_control  # was hit-exact
        assert ask(live, TIMELY, user="u1").headers["x-boundgate-reuse"] == "miss"
        assert ask(live, user="u2").headers["x-boundgate-reuse"] == "hit-exact"


def test_bg_answer_created_is_checked_like_date_created(tmp_path: Path) -> None:
    signer = binding.Signer.load_or_create(tmp_path)
    earlier = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    doc = signed(signer, created=earlier + WEEK, answer_created=earlier)
    assert binding.parse(doc).answer_created == earlier
    assert binding.parse(signed(signer)).answer_created is None  # not said
    for bad in ("last week", "9999-12-31T00:00:00Z", 1764576000):
        broken = signer.sign({**doc, "bg:answerCreated": bad}, earlier)
        with pytest.raises(binding.DocumentError) as caught:
            binding.parse(broken)
        assert caught.value.field == "bg:answerCreated"


# --- the answer's length -----------------------------------------------------------------

TEN_WORDS = " ".join(f"word{i}" for i in range(10))  # 59 bytes


def test_an_answer_without_a_token_count_fits_only_a_limit_above_its_bytes(
    tmp_path: Path,
) -> None:
    """An audit: a document bound before bg:completionTokens imported as 0 tokens, which fits
    every limit (a 60-word answer served to max_tokens 5, with usage 0). Its length is
    unknown: it serves only a limit above its UTF-8 bytes (no token count exceeds them), and
    reports an estimate of its tokens, 4 bytes a token."""
    issuer = binding.Signer.load_or_create(tmp_path / "a")
    legacy = signed(
        issuer, answer=TEN_WORDS, max_tokens=64, drop=("bg:finishReason", "bg:completionTokens")
    )
    import_into(tmp_path / "b", tmp_path / "a", legacy)
    size = len(TEN_WORDS.encode())
    assert size == 59
    with gateway(tmp_path / "b") as live:
        for user, limit in (("u1", 5), ("u2", size)):  # in the class of 64, not above 59
            r = ask(live, user=user, max_tokens=limit)
            assert r.headers["x-boundgate-reuse"] == "miss", limit  # was hit-exact
        r = ask(live, user="u3", max_tokens=size + 1)
        assert r.headers["x-boundgate-reuse"] == "hit-exact"
        body = r.json()
        assert body["choices"][0]["message"]["content"] == TEN_WORDS
        assert body["usage"]["completion_tokens"] == size // 4  # was 0


def test_legacy_answers_keep_their_count_where_they_have_one(tmp_path: Path) -> None:
    """A document with its count is fitted by it, as before (10 tokens: any limit above)."""
    issuer = binding.Signer.load_or_create(tmp_path / "a")
    import_into(tmp_path / "b", tmp_path / "a", signed(issuer, answer=TEN_WORDS, max_tokens=64))
    with gateway(tmp_path / "b") as live:
        assert ask(live, user="u1", max_tokens=10).headers["x-boundgate-reuse"] == "miss"
        r = ask(live, user="u2", max_tokens=11)
        assert r.headers["x-boundgate-reuse"] == "hit-exact"
        assert r.json()["usage"]["completion_tokens"] == 10


def test_a_document_serves_every_limit_it_fits_and_an_older_one_its_class(
    tmp_path: Path,
) -> None:
    """A document bound now carries no limit class: any limit above its 10 tokens is served
    it. One bound before, in its ``max_tokens`` class's scope (the class of 64 here), is
    still found by the requests of that class, and only by them (its signed scope says so)."""
    issuer = binding.Signer.load_or_create(tmp_path / "a")
    import_into(tmp_path / "b", tmp_path / "a", signed(issuer, answer=TEN_WORDS, max_tokens=64))
    with gateway(tmp_path / "b") as live:
        for user, limit in (("u1", 11), ("u2", 64), ("u3", 65), ("u4", 5000)):
            r = ask(live, user=user, max_tokens=limit)
            assert r.headers["x-boundgate-reuse"] == "hit-exact", limit
    old = signed(issuer, answer=TEN_WORDS, max_tokens=64, limit_class=True)
    assert old["bg:parameters"]["max_tokens_class"] == 64
    import_into(tmp_path / "c", tmp_path / "a", old)
    with gateway(tmp_path / "c") as live:
        assert ask(live, user="u1", max_tokens=10).headers["x-boundgate-reuse"] == "miss"
        for user, limit in (("u2", 11), ("u3", 64)):
            r = ask(live, user=user, max_tokens=limit)
            assert r.headers["x-boundgate-reuse"] == "hit-exact", limit
            assert r.json()["choices"][0]["message"]["content"] == TEN_WORDS
        for user, limit in (("u4", 65), ("u5", 5000)):
            assert ask(live, user=user, max_tokens=limit).headers["x-boundgate-reuse"] == "miss"


# --- what a revocation reaches ------------------------------------------------------------


def test_a_revocation_reaches_no_other_gateway(tmp_path: Path) -> None:
    """What docs/reuse.md says of revocations (an audit found it claimed more): the state
    marker of an export is not signed. It keeps that very export from importing the
    document, but the document stripped of it imports and is served, and a gateway that
    imported the document before keeps serving it after a revoked-marked import."""
    issuer = binding.Signer.load_or_create(tmp_path / "a")
    doc = signed(issuer)
    doc_id = binding.short_id(doc["@id"])
    import_into(tmp_path / "early", tmp_path / "a", doc)  # before the revocation
    revoked = tmp_path / "revoked.ndjson"
    revoked.write_text(json.dumps({"state": "revoked", "document": doc}) + "\n")
    pub = ["--public-key", str(tmp_path / "a" / binding.PUBLIC_KEY_FILE)]
    (tmp_path / "late").mkdir()
    fake_settings(tmp_path / "late", HASH)
    for where in ("late", "early"):
        config = ["--config", str(tmp_path / where / "boundgate.toml")]
        res = CliRunner().invoke(cli, ["docs", "import", str(revoked), *pub, *config])
        # nothing active in it: nothing imported, exit 1 (a trial found it exited 0)
        assert res.exit_code == 1 and "none active" in res.output, res.output
    import_into(tmp_path / "late", tmp_path / "a", doc)  # the same document, unwrapped
    for where in ("late", "early"):
        with gateway(tmp_path / where) as live:
            r = ask(live)
            assert (r.headers["x-boundgate-reuse"], r.headers["x-boundgate-document"]) == (
                "hit-exact",
                doc_id,
            )


def test_a_fresh_answer_never_takes_a_documents_place(tmp_path: Path) -> None:
    """A trial: one ``no-cache`` request's fresh answer took the bound document's exact
    slot, and every exact repeat (streamed or not, across restarts) was served that unbound
    answer while the document stayed active. The document keeps its place."""
    with gateway(tmp_path / "a", answers=True, bind_after=2) as live:
        assert ask(live, user="alice").headers["x-boundgate-reuse"] == "miss"
        doc_id = ask(live, user="bob").headers["x-boundgate-document"]
        assert doc_id.startswith("doc_")
        assert ask(live, user="carol", cache_control="no-cache").headers["x-boundgate-reuse"] in (
            "bypass",
            "miss",
        )
        again = ask(live, user="dave")
        assert again.headers["x-boundgate-reuse"] == "hit-exact"
        assert again.headers.get("x-boundgate-document") == doc_id  # was the fresh ans_…
    with gateway(tmp_path / "a", answers=True, bind_after=2) as live:  # and after a restart
        assert ask(live, user="erin").headers.get("x-boundgate-document") == doc_id


def test_an_import_says_which_active_document_it_takes_the_place_of(tmp_path: Path) -> None:
    """A trial: a second signed document for the same question and scope imported with
    "imported 1" and nothing else, and the first, still listed active, was never served
    again. The import warns, naming the document it displaces; a repeat warns of nothing."""
    issuer = binding.Signer.load_or_create(tmp_path / "a")
    first = signed(issuer, answer="100 °C.")
    second = signed(issuer, answer="212 °F.", created=datetime.now(UTC) + timedelta(seconds=1))
    import_into(tmp_path / "b", tmp_path / "a", first)
    f = tmp_path / "second.ndjson"
    f.write_text(json.dumps(second) + "\n")
    pub = str(tmp_path / "a" / binding.PUBLIC_KEY_FILE)
    args = [
        "docs",
        "import",
        str(f),
        "--public-key",
        pub,
        "-c",
        str(tmp_path / "b" / "boundgate.toml"),
    ]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0 and "imported 1" in res.stdout, res.output
    first_id = binding.short_id(first["@id"])
    assert f"takes the place of {first_id}" in " ".join(res.stderr.split())
    res = CliRunner().invoke(cli, args)  # already present: nothing displaced
    assert "already present 1" in res.stdout and "takes the place" not in res.stderr
    with gateway(tmp_path / "b") as live:  # the newest is served, as the warning says
        assert ask(live).headers["x-boundgate-document"] == binding.short_id(second["@id"])
