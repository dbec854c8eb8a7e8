"""Prompt registry, bound documents (signing, tamper detection, CLI), stale → rebind, jobs."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import functools
import json
import re
import shlex
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from boundgate.assembly import build_app
from boundgate.backends.fake import FakeBackend
from boundgate.cli import app as cli
from boundgate.clock import FakeClock
from boundgate.errors import RateLimitError
from boundgate.reuse import binding
from boundgate.scheduler.jobs import JobQueue
from boundgate.scheduler.runner import JobRunner
from boundgate.store import SQLiteStore
from boundgate.testing import ThreadedServer
from helpers import Live, fake_settings, wait_until

Q = "What is the boiling point of water at sea level?"


def ask(live: Live, user: str | None = None, content: str = Q, **kw: Any) -> Any:
    body: dict[str, Any] = {"messages": [{"role": "user", "content": content}], "temperature": 0}
    if user:
        body["user"] = user
    return live.http.post("/v1/chat/completions", json=body, **kw)


def serve(tmp: Path, version: str = "v1", **reuse: Any) -> tuple[ThreadedServer, Live]:
    tmp.mkdir(parents=True, exist_ok=True)
    settings = fake_settings(tmp)
    settings.scheduler.policy = "now"  # rebind at once, not in the next clean hours
    for k, v in reuse.items():
        setattr(settings.reuse, k, v)
    app = build_app(settings, backends={"fake": FakeBackend("fake", params_b=1, version=version)})
    srv = ThreadedServer(app).__enter__()
    return srv, Live(srv, app)


def test_third_distinct_asker_binds_a_signed_document(tmp_path: Path) -> None:
    srv, live = serve(tmp_path)
    try:
        first = ask(live, "alice")
        assert first.headers["x-boundgate-document"].startswith("ans_")
        ask(live, "alice")  # the same asker again does not count
        assert live.http.get("/v1/boundgate/documents").json()["data"] == []
        ask(live, "bob")
        third = ask(live, "carol")
        doc_id = third.headers["x-boundgate-document"]
        assert doc_id.startswith("doc_"), third.headers
        listed = live.http.get("/v1/boundgate/documents").json()["data"]
        assert [d["id"] for d in listed] == [doc_id] and listed[0]["askers"] == 3
        r = live.http.get(f"/v1/boundgate/documents/{doc_id}")
        assert r.headers["content-type"].startswith("application/ld+json")
        doc = r.json()
        data_integrity, terms = doc["@context"]
        assert data_integrity == "https://w3id.org/security/data-integrity/v2"
        assert terms["@vocab"] == "https://schema.org/"
        assert doc["proof"]["type"] == "DataIntegrityProof"
        assert doc["proof"]["verificationMethod"].startswith("did:key:z6Mk")
        assert doc["acceptedAnswer"]["text"] == first.json()["choices"][0]["message"]["content"]
        assert doc["bg:model"] == {"name": "fake", "version": "v1"}
        assert doc["bg:supersedes"] is None and doc["bg:askerCount"] == 3
        assert doc["@id"] == binding.content_id(doc)
        # later hits name the document
        assert ask(live, "dave").headers["x-boundgate-document"] == doc_id
        assert live.http.get("/v1/boundgate/documents/doc_nope").status_code == 404
    finally:
        live.http.close()
        srv.__exit__()

    # offline verification with only the public key, and tamper detection
    key = binding.load_public_key(tmp_path / "data" / binding.PUBLIC_KEY_FILE)
    assert binding.verify(doc, key).ok
    for mutate in (
        lambda d: d["acceptedAnswer"].update(text="Something else."),
        lambda d: d.update({"bg:askerCount": 99}),
        lambda d: d["bg:model"].update(version="v2"),
        lambda d: d["proof"].update(proofValue=d["proof"]["proofValue"][:-4] + "AAA="),
        lambda d: d.pop("proof"),
    ):
        bad = json.loads(json.dumps(doc))
        mutate(bad)
        assert not binding.verify(bad, key).ok

    runner = CliRunner()
    good_file = tmp_path / "doc.jsonld"
    good_file.write_text(json.dumps(doc))
    data = ["--data-dir", str(tmp_path / "data")]
    res = runner.invoke(cli, ["docs", "verify", str(good_file), *data])
    assert res.exit_code == 0, res.output
    bad = json.loads(json.dumps(doc))
    bad["acceptedAnswer"]["text"] = "tampered"
    bad_file = tmp_path / "bad.jsonld"
    bad_file.write_text(json.dumps(bad))
    res = runner.invoke(cli, ["docs", "verify", str(bad_file), *data])
    assert res.exit_code == 1 and "INVALID" in res.output
    res = runner.invoke(cli, ["docs", "verify", doc_id, *data])  # by id, from the store
    assert res.exit_code == 0, res.output
    empty = tmp_path / "empty.ndjson"  # an export of a store with nothing bound
    empty.write_text("\n")
    res = runner.invoke(cli, ["docs", "verify", str(empty), *data])
    assert res.exit_code == 1 and "no documents" in res.output


def export_from(tmp_path: Path, name: str) -> Path:
    """``docs export`` of gateway ``name``'s data dir (under ``tmp_path``) as NDJSON."""
    export = tmp_path / "docs.ndjson"
    a = ["--data-dir", str(tmp_path / name / "data")]
    res = CliRunner().invoke(
        cli, ["docs", "export", "--format", "ndjson", "--out", str(export), *a]
    )
    assert res.exit_code == 0, res.output
    return export


def test_export_import_round_trip_serves_in_another_gateway(tmp_path: Path) -> None:
    srv, live = serve(tmp_path / "a", bind_after=1)
    try:
        doc_id = ask(live, "alice").headers["x-boundgate-document"]
        assert doc_id.startswith("doc_")
    finally:
        live.http.close()
        srv.__exit__()
    runner = CliRunner()
    export = export_from(tmp_path, "a")
    a = ["--data-dir", str(tmp_path / "a" / "data")]
    assert len(export.read_text().splitlines()) == 1
    res = runner.invoke(cli, ["docs", "list", *a])
    assert doc_id in res.output
    assert Q in res.output  # whole when not on a terminal (a trial: cut at 40 characters)

    b = ["--data-dir", str(tmp_path / "b" / "data")]
    pub = str(tmp_path / "a" / "data" / binding.PUBLIC_KEY_FILE)
    res = runner.invoke(cli, ["docs", "import", str(export), "--public-key", pub, *b])
    assert res.exit_code == 0 and "imported 1" in res.output, res.output
    res = runner.invoke(cli, ["docs", "import", str(export), "--public-key", pub, *b])
    assert "already present 1" in res.output
    # without the exporter's key the import is refused
    res = runner.invoke(cli, ["docs", "import", str(export), *b])
    assert res.exit_code != 0

    srv, live = serve(tmp_path / "b", bind_after=1)
    try:
        r = ask(live, "zed")
        assert r.headers["x-boundgate-reuse"] == "hit-exact"
        assert r.headers["x-boundgate-document"] == doc_id
    finally:
        live.http.close()
        srv.__exit__()


def test_importing_many_documents_does_not_open_a_file_per_document(tmp_path: Path) -> None:
    """A trial: each imported document left about 1.7 file descriptors open (a loop, worker
    threads and a store reader per document), so 600 documents under the usual limit of
    1,024 ended in a traceback, 503 of them written. The import runs in one loop now: the
    process's open files do not grow with the file's length."""
    import os
    import subprocess
    import sys

    srv, live = serve(tmp_path / "a", bind_after=1)
    try:
        assert ask(live, "alice").headers["x-boundgate-document"].startswith("doc_")
    finally:
        live.http.close()
        srv.__exit__()
    line = export_from(tmp_path, "a").read_text().strip()
    many = tmp_path / "many.ndjson"
    many.write_text("\n".join([line] * 300) + "\n")
    pub = str(tmp_path / "a" / "data" / binding.PUBLIC_KEY_FILE)
    b = ["--data-dir", str(tmp_path / "b" / "data")]
    # in a process allowed 256 open files (the leak needed about 510 for these 300)
    command = [sys.executable, "-m", "boundgate", "docs", "import", str(many), "--public-key"]
    res = subprocess.run(
        ["bash", "-c", 'ulimit -n 256 && exec "$@"', "bash", *command, pub, *b],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "imported 1, already present 299" in res.stdout, res.stdout


def test_docs_list_shows_a_question_with_brackets_as_written(tmp_path: Path) -> None:
    """A trial: a bound question containing "[/b]" crashed `docs list` with a traceback (a
    closing tag for rich), for every listing, revoked or not, and "[bold red]this[/bold red]"
    was shown styled, not as written. The CLI's tables are data, never markup."""
    odd = "Why is [bold red]this[/bold red] text styled, and what does [/b] close?"
    srv, live = serve(tmp_path / "a", bind_after=1)
    try:
        assert ask(live, "alice", content=odd).headers["x-boundgate-document"].startswith("doc_")
    finally:
        live.http.close()
        srv.__exit__()
    res = CliRunner().invoke(cli, ["docs", "list", "--data-dir", str(tmp_path / "a" / "data")])
    assert res.exit_code == 0, res.output
    assert odd in res.output


def test_the_readmes_docs_commands_import_into_another_gateway(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README showed no import, and a trial's import without ``--public-key`` checked
    another gateway's documents with the importing data directory's own key. Its commands,
    run as written in a gateway's directory (data in ./.boundgate), export, verify and
    import a document into the gateway of ``other.toml``."""
    srv, live = serve(tmp_path / "a", bind_after=1, embedder="hash")
    try:
        doc_id = ask(live, "alice").headers["x-boundgate-document"]
    finally:
        live.http.close()
        srv.__exit__()
    here = tmp_path / "a"
    (here / "data").rename(here / ".boundgate")  # where the README's gateway keeps its data
    _, other = _config(tmp_path / "b")  # the other gateway's
    (here / "other.toml").write_text(Path(other).read_text())
    monkeypatch.chdir(here)
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    (block,) = [b for b in re.findall(r"```sh\n(.*?)```", readme, re.S) if " docs " in b]
    commands = [shlex.split(line, comments=True) for line in block.splitlines()]
    commands = [c[1:] for c in commands if c and c[0].endswith("boundgate")]
    assert [c[:2] for c in commands][-1] == ["docs", "import"], commands
    runner = CliRunner(env={"BOUNDGATE_CONFIG": None})
    for command in commands:
        res = runner.invoke(cli, command)
        assert res.exit_code == 0, (command, res.output)
    assert "imported 1" in res.stdout, res.output
    rows = asyncio.run(_documents(tmp_path / "b" / "data"))
    assert [r.id for r in rows] == [doc_id]


def test_documents_imported_with_another_embedder_are_served(tmp_path: Path) -> None:
    """``docs import`` without ``--config`` embeds with the default embedder (MiniLM), while
    the gateway runs with another (here the hash embedder): its documents used to be
    invisible to it, even exactly. Imported before the start or while it runs, each is an
    exact hit at once and is re-embedded in the background with the gateway's embedder (its
    vector written back); a revoked one is neither served nor re-embedded."""
    questions = [Q, "What is the capital of France?", "How many legs does a spider have?"]
    srv, live = serve(tmp_path / "a", bind_after=1, embedder="hash")
    try:
        docs = [ask(live, "alice", q).headers["x-boundgate-document"] for q in questions]
        assert all(d.startswith("doc_") for d in docs)
    finally:
        live.http.close()
        srv.__exit__()
    lines = {
        binding.short_id(json.loads(line)["@id"]): line
        for line in export_from(tmp_path, "a").read_text().splitlines()
    }
    runner = CliRunner()
    b = ["--data-dir", str(tmp_path / "b" / "data")]  # no --config: the default embedder
    pub = str(tmp_path / "a" / "data" / binding.PUBLIC_KEY_FILE)

    def import_(*doc_ids: str) -> None:
        part = tmp_path / "part.ndjson"
        part.write_text("".join(lines[d] + "\n" for d in doc_ids))
        res = runner.invoke(cli, ["docs", "import", str(part), "--public-key", pub, *b])
        assert res.exit_code == 0 and f"imported {len(doc_ids)}" in res.output, res.output

    def embedders() -> dict[str, str]:
        with sqlite3.connect(tmp_path / "b" / "data" / "boundgate.db") as conn:
            rows = conn.execute("SELECT document_id, embedder FROM reuse_entries").fetchall()
        return {str(d): str(e) for d, e in rows if d is not None}

    import_(docs[0], docs[1])
    res = runner.invoke(cli, ["docs", "revoke", docs[1], *b])
    assert res.exit_code == 0, res.output
    minilm = embedders()[docs[0]]
    assert minilm.startswith("all-MiniLM-L6-v2") and embedders()[docs[1]] == minilm
    srv, live = serve(tmp_path / "b", bind_after=1, embedder="hash")
    try:
        r = ask(live, "zed", questions[0])
        assert r.headers["x-boundgate-reuse"] == "hit-exact"
        assert r.headers["x-boundgate-document"] == docs[0]
        assert ask(live, "zed", questions[1]).headers["x-boundgate-reuse"] == "miss"  # revoked
        import_(docs[2])  # while the gateway runs
        r = ask(live, "zed", questions[2])
        assert r.headers["x-boundgate-reuse"] == "hit-exact"
        assert r.headers["x-boundgate-document"] == docs[2]
        wait_until(lambda: embedders()[docs[0]] == embedders()[docs[2]] == "hash-bow-64")
        assert embedders()[docs[1]] == minilm  # revoked: left as it was
        # the outcome is counted once the batch's vectors are written back, a moment after
        # the store shows them (a clean-clone CI read it in between: 1 of 2)

        def reembedded() -> dict[str, Any]:
            stats: dict[str, Any] = live.http.get("/v1/boundgate/stats").json()["reuse"]
            return stats if stats["outcomes"]["reembedded"] >= 2 else {}

        stats = wait_until(reembedded)
        assert stats["vectors_pending"] == 0 and stats["outcomes"]["reembedded"] == 2
    finally:
        live.http.close()
        srv.__exit__()


def test_an_imported_cut_answer_serves_only_its_own_limit(tmp_path: Path) -> None:
    """A trial found a bound document of an answer cut at its limit that did not say so; an
    importing gateway filed it as complete and would serve it to any limit of its class.
    Documents now carry bg:finishReason and bg:completionTokens."""

    def ask_limit(live: Live, max_tokens: int) -> Any:
        body = {"messages": [{"role": "user", "content": Q}], "temperature": 0}
        return live.http.post("/v1/chat/completions", json={**body, "max_tokens": max_tokens})

    srv, live = serve(tmp_path / "a", bind_after=1)
    try:
        cut = ask_limit(live, 3)
        assert cut.json()["choices"][0]["finish_reason"] == "length"
        doc_id = cut.headers["x-boundgate-document"]
    finally:
        live.http.close()
        srv.__exit__()
    runner = CliRunner()
    export = export_from(tmp_path, "a")
    doc = json.loads(export.read_text().splitlines()[0])
    assert doc["bg:finishReason"] == "length" and doc["bg:completionTokens"] == 3
    pub = str(tmp_path / "a" / "data" / binding.PUBLIC_KEY_FILE)
    b = ["--data-dir", str(tmp_path / "b" / "data")]
    res = runner.invoke(cli, ["docs", "import", str(export), "--public-key", pub, *b])
    assert res.exit_code == 0 and "imported 1" in res.output, res.output

    srv, live = serve(tmp_path / "b", bind_after=1)
    try:
        longer = ask_limit(live, 60)  # the same limit class (≤ 64), a longer limit
        assert longer.headers["x-boundgate-reuse"] == "miss"
        assert longer.json()["choices"][0]["finish_reason"] == "stop"
        same = ask_limit(live, 3)
        assert same.headers["x-boundgate-reuse"] == "hit-exact"
        assert same.headers["x-boundgate-document"] == doc_id
        assert same.json()["choices"][0]["finish_reason"] == "length"
    finally:
        live.http.close()
        srv.__exit__()


def _export_and_import(tmp_path: Path) -> dict[str, Any]:
    """Export gateway a's documents and import them into gateway b; the one document."""
    export = export_from(tmp_path, "a")
    pub = str(tmp_path / "a" / "data" / binding.PUBLIC_KEY_FILE)
    b = ["--data-dir", str(tmp_path / "b" / "data")]
    res = CliRunner().invoke(cli, ["docs", "import", str(export), "--public-key", pub, *b])
    assert res.exit_code == 0 and "imported 1" in res.output, res.output
    return dict(json.loads(export.read_text().splitlines()[0]))


def test_an_imported_sampled_answer_is_never_served_to_temperature_0(tmp_path: Path) -> None:
    """A trial's finding: a document bound from answers sampled at 0.3 did not say so, and
    the importing gateway served it to temperature 0 (its home gateway knew better).
    Documents carry bg:temperature; one without it counts as sampled."""

    def ask_at(live: Live, temperature: float) -> str:
        body = {"messages": [{"role": "user", "content": Q}], "temperature": temperature}
        r = live.http.post("/v1/chat/completions", json={**body, "user": "u"})
        assert r.status_code == 200, r.text
        return str(r.headers["x-boundgate-reuse"])

    srv, live = serve(tmp_path / "a", bind_after=1)
    try:
        assert ask_at(live, 0.3) == "miss"
    finally:
        live.http.close()
        srv.__exit__()
    assert _export_and_import(tmp_path)["bg:temperature"] == 0.3
    srv, live = serve(tmp_path / "b", bind_after=1)
    try:
        assert ask_at(live, 0) == "miss"
        assert ask_at(live, 0.3) == "hit-exact"
    finally:
        live.http.close()
        srv.__exit__()


def test_an_imported_text_completion_is_reused_to_the_character(tmp_path: Path) -> None:
    """A text completion's prompt is reused exactly only, to the character: also when its
    document is imported by another gateway."""

    def complete(live: Live, prompt: str) -> str:
        body = {"prompt": prompt, "max_tokens": 8, "temperature": 0}
        r = live.http.post("/v1/completions", json=body)
        assert r.status_code == 200, r.text
        return str(r.headers["x-boundgate-reuse"])

    srv, live = serve(tmp_path / "a", bind_after=1)
    try:
        assert complete(live, "The largest planet is") == "miss"
    finally:
        live.http.close()
        srv.__exit__()
    _export_and_import(tmp_path)
    srv, live = serve(tmp_path / "b", bind_after=1, initial_threshold=0.5, prior=False)
    try:
        assert complete(live, "The largest planet is ") == "miss"
        assert complete(live, "the largest planet is") == "miss"
        assert complete(live, "The largest planet is") == "hit-exact"
    finally:
        live.http.close()
        srv.__exit__()


def test_revoke_stops_serving(tmp_path: Path) -> None:
    srv, live = serve(tmp_path, bind_after=1)
    try:
        doc_id = ask(live, "alice").headers["x-boundgate-document"]
        assert ask(live, "bob").headers["x-boundgate-reuse"] == "hit-exact"
        r = live.http.post(f"/v1/boundgate/documents/{doc_id}/revoke")
        assert r.status_code == 200 and r.json()["state"] == "revoked"
        assert ask(live, "carol").headers["x-boundgate-reuse"] == "miss"
        states = {
            d["id"]: d["state"] for d in live.http.get("/v1/boundgate/documents").json()["data"]
        }
        assert states[doc_id] == "revoked"
        # every state, as `docs export --state all` says it (a trial got 400 here)
        everything = live.http.get("/v1/boundgate/documents", params={"state": "all"})
        assert [d["id"] for d in everything.json()["data"]] == list(states)
        revoked = live.http.get("/v1/boundgate/documents", params={"state": "revoked"})
        assert [d["id"] for d in revoked.json()["data"]] == [doc_id]
        assert live.http.post("/v1/boundgate/documents/doc_nope/revoke").status_code == 404
    finally:
        live.http.close()
        srv.__exit__()


def test_cli_revoke_is_seen_by_a_running_server(tmp_path: Path) -> None:
    srv, live = serve(tmp_path, bind_after=1)
    try:
        doc_id = ask(live, "alice").headers["x-boundgate-document"]
        res = CliRunner().invoke(
            cli, ["docs", "revoke", doc_id, "--data-dir", str(tmp_path / "data")]
        )
        assert res.exit_code == 0, res.output
        assert ask(live, "bob").headers["x-boundgate-reuse"] == "miss"
    finally:
        live.http.close()
        srv.__exit__()


def test_model_change_serves_stale_then_rebinds_and_supersedes(tmp_path: Path) -> None:
    srv, live = serve(tmp_path, version="v1", bind_after=1)
    try:
        old_id = ask(live, "alice").headers["x-boundgate-document"]
        assert old_id.startswith("doc_")
    finally:
        live.http.close()
        srv.__exit__()

    srv, live = serve(tmp_path, version="v2", bind_after=1)
    try:
        docs = {d["id"]: d for d in live.http.get("/v1/boundgate/documents").json()["data"]}
        assert docs[old_id]["state"] in ("stale", "superseded")

        def rebound() -> str | None:
            data = live.http.get("/v1/boundgate/documents").json()["data"]
            new = [d for d in data if d["supersedes"] == old_id]
            return new[0]["id"] if new else None

        new_id = wait_until(rebound)
        old = live.http.get(f"/v1/boundgate/documents/{old_id}")
        assert old.headers["x-boundgate-document-state"] == "superseded"
        new = live.http.get(f"/v1/boundgate/documents/{new_id}").json()
        assert new["bg:model"]["version"] == "v2"
        assert new["bg:supersedes"] == old.json()["@id"]
        assert new["bg:changes"]["answerChanged"] is False  # the fake answers the same
        key = binding.load_public_key(tmp_path / "data" / binding.PUBLIC_KEY_FILE)
        assert binding.verify(new, key).ok
        r = ask(live, "bob")
        assert r.headers["x-boundgate-reuse"] == "hit-exact"
        assert r.headers["x-boundgate-document"] == new_id
        jobs = asyncio.run(live.gateway.store.jobs())
        assert [(j.kind, j.state) for j in jobs] == [("rebind", "done")]
        # the dashboard shows the version chain from either end, oldest first
        for page_id in (old_id, new_id):
            html = live.http.get(f"/dashboard/documents/{page_id}").text
            versions = html.split('id="chain-h"', 1)[1].split("</ol>", 1)[0]
            assert versions.index(old_id) < versions.index(new_id)
            assert "superseded" in versions and "active" in versions
    finally:
        live.http.close()
        srv.__exit__()


def _bound_on_v1_then_v2_without_handlers(tmp_path: Path) -> tuple[str, Any]:
    """A document bound on model version v1 (its id), and an app of v2 whose job runner has
    no handlers (``app.state.job_handlers``, a public test seam): its rebind cannot run."""
    srv, live = serve(tmp_path, version="v1", bind_after=1)
    try:
        old_id = ask(live, "alice").headers["x-boundgate-document"]
    finally:
        live.http.close()
        srv.__exit__()
    settings = fake_settings(tmp_path)
    settings.reuse.bind_after = 1
    settings.scheduler.policy = "now"
    app = build_app(settings, backends={"fake": FakeBackend("fake", params_b=1, version="v2")})
    app.state.job_handlers = lambda gw: {}
    return str(old_id), app


def test_stale_documents_are_served_marked_stale_until_rebound(tmp_path: Path) -> None:
    # v2 with the job runner unable to run rebinds: the document stays stale
    old_id, app = _bound_on_v1_then_v2_without_handlers(tmp_path)
    with ThreadedServer(app) as srv2:
        live2 = Live(srv2, app)
        r = ask(live2, "bob")
        assert r.headers["x-boundgate-reuse"] == "stale"
        assert r.headers["x-boundgate-document"] == old_id
        live2.http.close()


def test_a_rebind_that_failed_for_good_is_queued_again_on_the_next_start(
    tmp_path: Path,
) -> None:
    """A rebind that failed for good (here: at once, with no handler) kept its dedupe key
    for ever, so the next start's stale check could not queue it again and the document
    stayed stale. Only a pending or running job holds its key now."""
    old_id, app = _bound_on_v1_then_v2_without_handlers(tmp_path)  # the rebind fails for good
    with ThreadedServer(app) as srv2:
        live2 = Live(srv2, app)
        store = live2.gateway.store
        wait_until(lambda: [j.state for j in asyncio.run(store.jobs())] == ["failed"])
        live2.http.close()
    srv, live = serve(tmp_path, version="v2", bind_after=1)  # the next start
    try:
        jobs = asyncio.run(live.gateway.store.jobs())
        assert [j.kind for j in jobs] == ["rebind", "rebind"]
        assert jobs[0].dedupe == jobs[1].dedupe and jobs[0].state == "failed"

        def rebound() -> bool:
            old = live.http.get(f"/v1/boundgate/documents/{old_id}")
            return old.headers["x-boundgate-document-state"] == "superseded"

        wait_until(rebound)
    finally:
        live.http.close()
        srv.__exit__()


def test_jobs_survive_a_dead_runner_and_complete_once(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "j.db")
    store.open()
    clock = FakeClock(start=1_800_000_000.0)
    try:
        queue = JobQueue(store, clock)
        job_id = asyncio.run(queue.submit("rebind", {"document": "doc_x"}, dedupe="rebind:doc_x"))
        assert job_id is not None
        assert (
            asyncio.run(queue.submit("rebind", {"document": "doc_x"}, dedupe="rebind:doc_x"))
            is None
        )
        dead = asyncio.run(
            store.claim_job("dead-runner", clock.time(), lease_s=60)
        )  # then it "crashes"
        assert dead is not None and dead.id == job_id
        assert asyncio.run(store.claim_job("other", clock.time(), lease_s=60)) is None  # leased

        ran: list[dict[str, Any]] = []

        async def handler(payload: dict[str, Any]) -> dict[str, Any]:
            ran.append(payload)
            return {"ok": True}

        runner = JobRunner(
            store, {"rebind": handler}, clock=clock, lease_s=60, poll_s=1.0, replan_s=3600.0
        )
        assert asyncio.run(runner.run_once()) is False  # lease still valid
        clock.advance(61)
        assert asyncio.run(runner.run_once()) is True
        assert ran == [{"document": "doc_x"}]
        # the dead runner's late completion does not count
        assert asyncio.run(store.finish_job(job_id, "dead-runner", "done", "{}")) is False
        (job,) = asyncio.run(store.jobs())
        assert (
            job.state == "done"
            and job.attempts == 2
            and json.loads(job.result or "") == {"ok": True}
        )
    finally:
        store.close()


def test_a_job_stopped_by_its_tenants_limits_waits_for_them(tmp_path: Path) -> None:
    """Background work runs under its tenant's limits: a 429 from them (here a rebind over the
    daily budget) is not a failure but a wait until the Retry-After, as a client's would be."""
    store = SQLiteStore(tmp_path / "j.db")
    store.open()
    clock = FakeClock(start=1_800_000_000.0)
    try:
        queue = JobQueue(store, clock)
        job_id = asyncio.run(queue.submit("rebind", {"document": "doc_x"}))
        calls = 0

        async def handler(payload: dict[str, Any]) -> dict[str, Any]:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise RateLimitError("over budget", retry_after=3600.0)
            return {"ok": True}

        runner = JobRunner(
            store, {"rebind": handler}, clock=clock, lease_s=60, poll_s=1.0, replan_s=3600.0
        )
        assert asyncio.run(runner.run_once()) is True
        (job,) = asyncio.run(store.jobs())
        assert job.id == job_id and job.state == "pending"
        assert job.not_before >= clock.time() + 3600.0 - 1e-6
        assert asyncio.run(runner.run_once()) is False  # not before the budget allows
        clock.advance(3601)
        assert asyncio.run(runner.run_once()) is True
        (job,) = asyncio.run(store.jobs())
        assert job.state == "done" and calls == 2
    finally:
        store.close()


@pytest.mark.parametrize("clean_h", [0, 1, 4])
def test_a_replan_never_moves_a_job_before_its_retry_after(tmp_path: Path, clean_h: int) -> None:
    """A job a 429 pushed back for its Retry-After (2 h) is re-planned within [that time, its
    deadline] only: a re-plan used to move it to the cleanest hour from now on (now itself
    with policy "now", clean_h 0), so it ran early again and burnt its attempts."""
    store = SQLiteStore(tmp_path / "j.db")
    store.open()
    t0 = 1_800_000_000.0
    clock = FakeClock(start=t0)
    clean = t0 + clean_h * 3600

    def policy(kind: str, now: float, deadline: float, duration_s: float) -> float:
        return max(now, clean)  # the cleanest hour, or now when it has passed

    calls: list[float] = []

    async def handler(payload: dict[str, Any]) -> dict[str, Any]:
        calls.append(clock.time())
        if len(calls) == 1:
            raise RateLimitError("over budget", retry_after=7200.0)
        return {"ok": True}

    async def main() -> None:
        queue = JobQueue(store, clock, lambda kind, now, deadline, duration_s: now)
        runner = JobRunner(
            store, {"rebind": handler}, clock=clock, poll_s=1.0, replan=queue.replan,
            replan_s=3600.0,
        )  # fmt: skip
        await queue.submit("rebind", {"document": "d"}, deadline_s=6 * 3600, duration_s=60)
        assert await runner.run_once()
        (job,) = await store.jobs()
        assert (job.state, job.not_before) == ("pending", t0 + 7200)
        queue.policy = policy
        clock.advance(60)
        moved = await queue.replan()
        (job,) = await store.jobs()
        assert job.not_before == max(clean, t0 + 7200)
        assert moved == (1 if clean > t0 + 7200 else 0)
        assert not await runner.run_once()  # held: not due
        clock.advance(7200 - 60 - 1)
        await queue.replan()
        assert not await runner.run_once()  # still held, one second before
        clock.advance(1 + max(0.0, clean - t0 - 7200))
        assert await runner.run_once()
        (job,) = await store.jobs()
        assert (job.state, job.attempts) == ("done", 2)
        assert calls == [t0, max(clean, t0 + 7200)]

    try:
        asyncio.run(main())
    finally:
        store.close()


def test_a_failed_attempt_is_retried_after_an_exponential_backoff(tmp_path: Path) -> None:
    """A handler error (an upstream down for a moment) is retried after a backoff that doubles
    with each attempt, 60 s then 120 s by default, held as a Retry-After is (a re-plan does
    not bring it forward); the attempts used to run at once, one after the other, and the
    job failed for good within the outage."""
    store = SQLiteStore(tmp_path / "j.db")
    store.open()
    t0 = 1_800_000_000.0
    clock = FakeClock(start=t0)
    calls: list[float] = []

    async def handler(payload: dict[str, Any]) -> dict[str, Any]:
        calls.append(clock.time())
        if len(calls) < 3:
            raise RuntimeError("upstream 502 for a moment")
        return {"ok": True}

    async def main() -> None:
        queue = JobQueue(store, clock)  # policy "now": a re-plan would start it at once
        runner = JobRunner(
            store, {"rebind": handler}, clock=clock, poll_s=1.0, replan=queue.replan,
            replan_s=3600.0,
        )  # fmt: skip
        await queue.submit("rebind", {"document": "d"}, deadline_s=6 * 3600, duration_s=60)
        for wait in (60.0, 120.0):
            assert await runner.run_once()
            (job,) = await store.jobs()
            assert (job.state, job.not_before) == ("pending", clock.time() + wait)
            clock.advance(wait - 1)
            assert await queue.replan() == 0
            assert not await runner.run_once()  # not before its backoff
            clock.advance(1)
        assert await runner.run_once()
        (job,) = await store.jobs()
        assert (job.state, job.attempts) == ("done", 3)
        assert calls == [t0, t0 + 60, t0 + 180]

    try:
        asyncio.run(main())
    finally:
        store.close()


@pytest.mark.parametrize("bad", ["x", "[1, 2", ""])
def test_verify_rejects_garbage_files(tmp_path: Path, bad: str) -> None:
    srv, live = serve(tmp_path)  # creates the key pair
    live.http.close()
    srv.__exit__()
    f = tmp_path / "x.json"
    f.write_text(bad)
    res = CliRunner().invoke(cli, ["docs", "verify", str(f), "--data-dir", str(tmp_path / "data")])
    assert res.exit_code != 0


def test_a_long_job_renews_its_lease_and_stops_when_it_loses_it(tmp_path: Path) -> None:
    """A batch may outlive its lease: the runner renews it while the handler runs, so no
    other replica takes the job over; if the lease was taken over anyway (this process
    stalled), the handler is stopped and its result does not count."""
    store = SQLiteStore(tmp_path / "j.db")
    store.open()
    t0 = 1_800_000_000.0
    clock = FakeClock(start=t0)
    cancelled = asyncio.Event()

    async def handler(payload: dict[str, Any]) -> dict[str, Any]:
        try:
            await asyncio.sleep(600)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return {"ok": True}

    async def lease_expires() -> float:
        (job,) = await store.jobs()
        return job.lease_expires or 0.0

    async def main() -> None:
        await JobQueue(store, clock).submit("long", {})
        runner = JobRunner(
            store, {"long": handler}, clock=clock, lease_s=3.0, poll_s=1.0, replan_s=3600.0
        )
        running = asyncio.create_task(runner.run_once())
        clock.advance(2)  # the next renewal extends the lease to t0 + 2 + 3
        for _ in range(600):
            if await lease_expires() == t0 + 5:
                break
            await asyncio.sleep(0.05)
        assert await lease_expires() == t0 + 5
        assert await store.claim_job("thief", t0 + 4, 60.0) is None  # renewed: not due
        stolen = await store.claim_job("thief", t0 + 6, 60.0)  # this runner stalled
        assert stolen is not None and stolen.lease_owner == "thief"
        assert await asyncio.wait_for(running, 60) is True
        assert cancelled.is_set()
        (job,) = await store.jobs()
        assert (job.state, job.lease_owner) == ("running", "thief")

    try:
        asyncio.run(main())
    finally:
        store.close()


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("[" * 50_000, "nested too deeply"),  # RecursionError: was a traceback
        ('{"@id": ' + "1" * 5000 + "}", "integer literal is too long"),  # ValueError: same
    ],
)
@pytest.mark.parametrize("command", ["verify", "import"])
def test_docs_commands_refuse_json_python_cannot_parse_in_one_line(
    tmp_path: Path, command: str, content: str, says: str
) -> None:
    data_dir = tmp_path / "data"
    binding.Signer.load_or_create(data_dir)  # the key pair the commands check with
    f = tmp_path / "x.json"
    f.write_text(content)
    args = ["--public-key", str(data_dir / binding.PUBLIC_KEY_FILE)]
    res = CliRunner().invoke(cli, ["docs", command, str(f), *args, "--data-dir", str(data_dir)])
    assert res.exit_code == 2, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    text = " ".join(res.output.split())  # rich wraps long lines at the terminal's width
    assert "Traceback" not in text and text.startswith("error:") and says in text


# --- documents that are validly signed but not servable; proofs; export of revoked ---------

WHEN = datetime(2026, 11, 26, 1, 47, 2, tzinfo=UTC)


def _config(tmp_path: Path) -> list[str]:
    """CLI options for a data dir under ``tmp_path`` with the hash embedder (no model load)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    fake_settings(tmp_path, '[reuse]\nembedder = "hash"')
    return ["--config", str(tmp_path / "boundgate.toml")]


def _signed(signer: binding.Signer, question: str = Q, **fields: Any) -> dict[str, Any]:
    """A document as a gateway binds it, with ``fields`` replaced (None: removed), signed."""
    doc = _built(question)
    for name, value in fields.items():
        if value is None:
            doc.pop(name, None)
        else:
            doc[name] = value
    return signer.sign(doc, WHEN)


def _built(question: str = Q) -> dict[str, Any]:
    """A document as a gateway binds it, unsigned."""
    return binding.build(
        question=question,
        variants=[question],
        answer="100 °C.",
        model="fake",
        model_version="v1",
        tenant="default",
        scope={"endpoint": "/v1/chat/completions", "params": {"max_tokens_class": 1024}},
        askers=3,
        created=WHEN,
        cost_wh=0.002,
        cost_gco2=0.0008,
        temperature=0,
    )


def _write(path: Path, *docs: Any) -> Path:
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    return path


def _one_line(res: Any) -> str:
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    text = " ".join(res.output.split())  # rich wraps long lines at the terminal's width
    assert "Traceback" not in text
    return text


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"bg:generationEnergyWh": -1000.0}, "bg:generationEnergyWh"),  # every hit a 500
        ({"bg:generationEnergyWh": 1e6}, "bg:generationEnergyWh"),  # 1 MWh avoided a hit
        ({"bg:generationEnergyWh": "NaN"}, "bg:generationEnergyWh"),  # active, no answer
        ({"bg:generationEnergyWh": True}, "bg:generationEnergyWh"),
        ({"bg:generationCarbonG": -500.0}, "bg:generationCarbonG"),
        ({"bg:temperature": -1}, "bg:temperature"),
        ({"bg:temperature": "0"}, "bg:temperature"),
        ({"bg:completionTokens": -3}, "bg:completionTokens"),
        # a trial's 1e300 passed docs verify and was an OverflowError traceback on import
        ({"bg:completionTokens": 1e300}, "bg:completionTokens"),
        ({"bg:completionTokens": 2.0**63}, "bg:completionTokens"),
        ({"bg:askerCount": 1e300}, "bg:askerCount"),
        ({"bg:finishReason": "cut"}, "bg:finishReason"),
        ({"bg:scope": None}, "bg:scope"),  # was a KeyError traceback
        ({"bg:scope": {"endpoint": "/v1/chat/completions"}}, "bg:scope.tenant"),
        # a break-it trial imported these: no key can be made for such a tenant, and no
        # request asks a blank question
        ({"bg:scope": {"tenant": "t" * 10_000}}, "bg:scope.tenant"),
        ({"bg:scope": {"tenant": "two words"}}, "bg:scope.tenant"),
        ({"name": "   "}, "name"),
        ({"dateCreated": "yesterday"}, "dateCreated"),  # was a ValueError traceback
        ({"dateCreated": "[/red]"}, "dateCreated"),  # quoted, not read as rich markup
        ({"dateCreated": "9999-12-31T23:59:59+00:00"}, "dateCreated"),  # fresh for ever
        ({"dateCreated": "0001-01-01T00:00:00+14:00"}, "dateCreated"),
        ({"acceptedAnswer": ["a"]}, "acceptedAnswer"),  # was a TypeError traceback
        ({"bg:model": {"name": "fake"}}, "bg:model.version"),
        # PostgreSQL cannot store NUL: its import was a traceback on a shared store
        ({"acceptedAnswer": {"@type": "Answer", "text": "a\u0000"}}, "acceptedAnswer.text"),
        ({"bg:questionVariants": ["q", "\u0000"]}, "bg:questionVariants[1]"),
        # the keys mean what boundgate's context says: under another (or none) they are
        # another document's (a break-it trial's note: neither was checked)
        ({"@context": None}, "@context"),
        ({"@context": ["https://www.w3.org/ns/credentials/v2"]}, "@context"),
        (
            {"@context": [binding.CONTEXT[0], {**binding.CONTEXT[1], "name": "bg:note"}]},
            "@context",
        ),
        ({"@type": None}, "@type"),
        ({"@type": ["Question"]}, "@type"),
        # longer than any request body may be (1 MiB): never asked, ~745 MB to import (a
        # break-it trial's 5 MB question)
        pytest.param({"name": "why " * (1 << 18) + "?"}, "name", id="name-unaskable"),
        # a break-it trial's: a 5 MB answer said to be 12 tokens was served to max_tokens 16
        pytest.param(
            {
                "acceptedAnswer": {"@type": "Answer", "text": "A" * 5_000_000},
                "bg:completionTokens": 12,
            },
            "acceptedAnswer.text",
            id="answer-longer-than-its-tokens",
        ),
        # parameters 480 levels deep overflowed the scope hash's stack (a traceback, and an
        # empty store left behind); docs verify called the document valid
        pytest.param(
            {
                "bg:parameters": {
                    "max_tokens_class": 1024,
                    "x": functools.reduce(lambda inner, _: [inner], range(600), [1]),
                }
            },
            "document",
            id="parameters-nested-too-deeply",
        ),
    ],
)
def test_import_refuses_a_validly_signed_document_it_cannot_serve(
    tmp_path: Path, fields: dict[str, Any], field: str
) -> None:
    """A tester's finding: imported documents were trusted once their signature held; an
    energy of -1000 Wh made every request for the question a 500 (a counter cannot go
    down), 1e6 Wh reported a megawatt-hour avoided per hit, "NaN" imported an active
    document with no answer behind it, and a missing or malformed field was a traceback."""
    cfg = _config(tmp_path)
    signer = binding.Signer.load_or_create(tmp_path / "data")
    good = _signed(signer, "What is the boiling point of water on Everest?")
    bad = _signed(signer, **fields)
    f = _write(tmp_path / "docs.ndjson", good, bad, _signed(signer, "Why is the sky blue?"))
    res = CliRunner().invoke(cli, ["docs", "import", str(f), *cfg])
    text = _one_line(res)
    # after the line naming the store it imports into: one error line
    assert res.exit_code == 1 and res.stderr.splitlines()[-1].startswith("error:"), text
    assert f"document 2 ({bad['@id']}): validly signed, but {field}:" in text
    assert "before it: imported 1, already present 0" in text  # the first stays imported
    rows = asyncio.run(_documents(tmp_path / "data"))
    assert [r.id for r in rows] == [binding.short_id(good["@id"])]
    # docs verify says the same of it, and exits 1
    res = CliRunner().invoke(cli, ["docs", "verify", str(f), *cfg])
    text = _one_line(res)
    assert res.exit_code == 1 and f"INVALID document 2 ({bad['@id']})" in text, text
    assert text.count("INVALID") == 1


def test_import_says_which_store_it_writes_and_warns_when_it_creates_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trial's import without --config went into ./.boundgate of the current directory,
    silently, and the server configured elsewhere never saw the documents. It still goes
    there, but says so (stderr), and warns that no server uses a store it has just created."""
    signer = binding.Signer.load_or_create(tmp_path / "exporter")
    f = _write(tmp_path / "docs.ndjson", _signed(signer))
    pub = ["--public-key", str(tmp_path / "exporter" / binding.PUBLIC_KEY_FILE)]
    monkeypatch.chdir(tmp_path)
    env = {"BOUNDGATE_CONFIG": None, "BOUNDGATE_REUSE__EMBEDDER": "hash"}
    runner = CliRunner(env=env)
    res = runner.invoke(cli, ["docs", "import", str(f), *pub])
    assert res.exit_code == 0 and "imported 1" in res.stdout, res.output
    db = tmp_path / ".boundgate" / "boundgate.db"
    first, warning = res.stderr.splitlines()
    assert f"importing into the SQLite store {db}" in first
    assert warning.startswith("warning:") and "no server uses it yet" in warning
    assert "--config" in warning
    res = runner.invoke(cli, ["docs", "import", str(f), *pub])  # the store is there now
    assert res.exit_code == 0 and "already present 1" in res.stdout, res.output
    assert res.stderr.splitlines() == [first]
    # named with --data-dir, a new store is a note, not advice to give what was given (a
    # re-check's finding, as for keys create)
    res = runner.invoke(cli, ["docs", "import", str(f), *pub, "--data-dir", "named"])
    assert res.exit_code == 0 and "imported 1" in res.stdout, res.output
    said = " ".join(res.stderr.split())
    assert "note: that store did not exist before this import" in said, said
    assert "warning" not in said and "give the server's config" not in said


NO_STORE_ENV = {"BOUNDGATE_CONFIG": None, "BOUNDGATE_STORE__URL": None}


@pytest.mark.parametrize(
    "command",
    [
        ["list"],
        ["list", "--state", "revoked"],
        ["show", "doc_0"],
        ["export"],
        ["export", "--state", "all", "--out", "docs.json"],
        ["bind", "ans_0"],
        ["revoke", "doc_0"],
        ["verify", "doc_0"],
    ],
)
def test_docs_commands_refuse_a_directory_without_a_store_and_create_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    """Run in another directory than the server's, a command that reads or changes stored
    documents created an empty ./.boundgate store there and listed nothing, or said "no
    document". It now refuses (exit 2), naming the database it looked for and how to point
    it at the server's, and leaves the directory as it was."""
    monkeypatch.chdir(tmp_path)
    res = CliRunner(env=NO_STORE_ENV).invoke(cli, ["docs", *command])
    assert res.exit_code == 2, res.output
    text = " ".join(res.stderr.split())
    db = tmp_path.resolve() / ".boundgate" / "boundgate.db"
    assert text.startswith("error:") and f"no boundgate store at {db}" in text, text
    assert "server's directory" in text and "--config" in text and "--data-dir" in text
    assert res.stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_docs_commands_refuse_a_data_dir_without_a_store(tmp_path: Path) -> None:
    """A data directory that exists but holds no store (here: only a signing key) is refused
    the same way, and no database file appears in it."""
    data = tmp_path / "data"
    binding.Signer.load_or_create(data)
    before = sorted(data.iterdir())
    for command in (["list"], ["revoke", "doc_0"], ["verify", "doc_0"]):
        res = CliRunner(env=NO_STORE_ENV).invoke(cli, ["docs", *command, "--data-dir", str(data)])
        assert res.exit_code == 2, res.output
        assert f"no boundgate store at {data.resolve() / 'boundgate.db'}" in res.stderr
    assert sorted(data.iterdir()) == before


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (["show", "doc_missing"], "no document 'doc_missing'"),
        (["revoke", "doc_missing"], "no document 'doc_missing'"),
        (["bind", "ans_missing"], "no stored answer 'ans_missing'"),
        (["verify", "doc_missing"], "no file or document 'doc_missing'"),
    ],
)
def test_docs_commands_exit_2_on_an_id_that_is_not_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str], message: str
) -> None:
    """An id that names nothing in the store is what was given that cannot be used, as a
    missing file, key or store is: exit 2 for all (show, revoke and bind exited 1, verify
    2), leaving 1 for documents that are there but fail."""
    monkeypatch.chdir(tmp_path)
    data = ["--data-dir", str(tmp_path / "data")]
    runner = CliRunner(env=NO_STORE_ENV)
    created = runner.invoke(cli, ["keys", "create", "--tenant", "alice", *data])  # a store
    assert created.exit_code == 0, created.output
    res = runner.invoke(cli, ["docs", *command, *data])
    assert res.exit_code == 2, res.output
    assert res.stderr.startswith("error:") and message in res.stderr, res.stderr
    assert res.stdout == ""


@pytest.mark.parametrize("command", ["verify", "import"])
def test_a_missing_public_key_is_named_with_its_full_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    """Without --public-key a file is checked with the data directory's key; in another
    directory than the gateway's that key is missing, and the error gave its path relative
    to a directory it did not name. It names the file in full and --public-key, and a path
    given with --public-key in full too; nothing is created."""
    signer = binding.Signer.load_or_create(tmp_path / "exporter")
    f = _write(tmp_path / "docs.ndjson", _signed(signer))
    here = tmp_path / "elsewhere"
    here.mkdir()
    monkeypatch.chdir(here)
    runner = CliRunner(env=NO_STORE_ENV)
    res = runner.invoke(cli, ["docs", command, str(f)])
    assert res.exit_code == 2, res.output
    text = " ".join(res.stderr.split())
    key = here.resolve() / ".boundgate" / binding.PUBLIC_KEY_FILE
    assert text.startswith(f"error: public key not found: {key}, the data directory's"), text
    assert "--public-key" in text
    res = runner.invoke(cli, ["docs", command, str(f), "--public-key", "exporter.pem"])
    assert res.exit_code == 2, res.output
    text = " ".join(res.stderr.split())
    assert text == f"error: public key not found: {here.resolve() / 'exporter.pem'} (--public-key)"
    assert list(here.iterdir()) == []


@pytest.mark.parametrize("command", ["verify", "import"])
def test_a_file_that_cannot_be_read_is_named_before_the_public_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    """A trial's ``docs import nothere.ndjson`` (no --public-key, in a directory without a
    gateway) complained that the public key was missing, not the file. The file is read
    first, then the key; nothing is created either way."""
    here = tmp_path / "elsewhere"
    here.mkdir()
    monkeypatch.chdir(here)
    garbage = tmp_path / "garbage.ndjson"
    garbage.write_text("not json\n")
    runner = CliRunner(env=NO_STORE_ENV)
    for name, says in (("nothere.ndjson", "nothere.ndjson"), (str(garbage), "not JSON")):
        res = runner.invoke(cli, ["docs", command, name])
        assert res.exit_code == 2, res.output
        text = " ".join(res.stderr.split())
        assert text.startswith("error:") and says in text, text
        assert "public key" not in text, text
    res = runner.invoke(cli, ["docs", "import", "nothere.ndjson", "--public-key", "k.pem"])
    text = " ".join(res.stderr.split())
    missing = here.resolve() / "nothere.ndjson"
    assert res.exit_code == 2 and text == f"error: no such file: {missing}", text
    assert list(here.iterdir()) == []


async def _documents(data_dir: Path) -> list[Any]:
    store = SQLiteStore(data_dir / "boundgate.db")
    store.open()
    try:
        return list(await store.documents())
    finally:
        store.close()


def test_a_document_error_is_an_openai_shaped_400_naming_the_field(tmp_path: Path) -> None:
    signer = binding.Signer.load_or_create(tmp_path)
    content = binding.parse(_signed(signer))
    assert content.cost_wh == 0.002 and content.temperature == 0.0 and content.tenant == "default"
    limit = binding.MAX_ANSWER_WH
    assert binding.parse(_signed(signer, **{"bg:generationEnergyWh": limit})).cost_wh == limit
    with pytest.raises(binding.DocumentError) as caught:
        binding.parse(_signed(signer, **{"bg:generationEnergyWh": limit * 1.001}))
    err = caught.value
    assert err.status_code == 400 and err.to_dict() == {
        "error": {
            "message": f"bg:generationEnergyWh: must be from 0 to 1000 Wh, not {limit * 1.001!r}",
            "type": "invalid_request_error",
            "param": "bg:generationEnergyWh",
            "code": "invalid_value",
        }
    }
    # documents bound before the optional fields: whole, temperature unknown, no energy
    old = _signed(signer, **{f: None for f in ("bg:temperature", "bg:generationEnergyWh")})
    content = binding.parse(old)
    assert (content.temperature, content.cost_wh, content.finish_reason) == (None, 0.0, "stop")


@pytest.mark.parametrize("command", ["verify", "import"])
@pytest.mark.parametrize("key", ["not a key\n", "directory"])
def test_docs_commands_refuse_a_public_key_that_is_not_pem_in_one_line(
    tmp_path: Path, command: str, key: str
) -> None:
    cfg = _config(tmp_path)
    f = _write(tmp_path / "docs.ndjson", _signed(binding.Signer.load_or_create(tmp_path / "k")))
    pem = tmp_path / "key.pem"
    if key == "directory":
        pem.mkdir()
    else:
        pem.write_text(key)
    res = CliRunner().invoke(cli, ["docs", command, str(f), "--public-key", str(pem), *cfg])
    text = _one_line(res)
    assert res.exit_code == 2 and text.startswith(f"error: {pem} is not an Ed25519 public key")


def test_proof_options_are_checked_and_signed(tmp_path: Path) -> None:
    """A tester's finding: proof.type "None" or another proof.created still verified."""
    signer = binding.Signer.load_or_create(tmp_path)
    doc = _signed(signer)
    assert doc["proof"]["cryptosuite"] == binding.SUITE == "eddsa-jcs-2022"
    assert binding.verify(doc, signer.public).ok
    for name, value, says in (
        ("type", "None", "unsupported proof type"),
        ("type", "Ed25519Signature2020", "unsupported proof type"),
        ("cryptosuite", "ecdsa-jcs-2019", "unsupported cryptosuite"),
        ("@context", ["https://www.w3.org/ns/credentials/v2"], "proof.@context is not"),
        ("proofValue", doc["proof"]["proofValue"][1:], "proofValue is not multibase"),
        ("verificationMethod", binding.key_id(signer.public), "signed by another key"),
        ("proofPurpose", "authentication", "unsupported proofPurpose"),
        ("created", "yesterday", "proof.created is not a timestamp"),
        ("created", "2020-01-01T00:00:00", "proof.created is not a timestamp"),  # no offset
        ("created", "2020-01-01T00:00:00Z", "bad signature"),  # a timestamp, but not signed
        ("nonce", "x", "unexpected proof field 'nonce'"),
    ):
        bad = json.loads(json.dumps(doc))
        bad["proof"][name] = value
        result = binding.verify(bad, signer.public)
        assert not result.ok and result.reason.startswith(says), (name, value, result)
    # NaN in a document has no canonical form: refused, not raised
    nan = {**doc, "bg:generationEnergyWh": float("nan")}
    assert binding.verify(nan, signer.public).reason.startswith("not canonical JSON")


def test_documents_signed_before_the_proof_options_were_covered_still_verify(
    tmp_path: Path,
) -> None:
    """The first cryptosuite signed the document alone: those documents stay valid, with
    their proof options held to exactly what boundgate wrote."""
    signer = binding.Signer.load_or_create(tmp_path)
    doc = _signed(signer)
    body = {k: v for k, v in doc.items() if k != "proof"}
    signature = base64.b64encode(signer.private.sign(binding.canonical(body))).decode()
    old = {**doc, "proof": _legacy_options(doc, signer, binding.SUITE_V1)}
    old["proof"]["proofValue"] = signature
    assert binding.verify(old, signer.public).ok
    new_signature = {**old, "proof": {**old["proof"], "cryptosuite": binding.SUITE_2026}}
    assert not binding.verify(new_signature, signer.public).ok  # the suites do not mix
    for name, value in (("type", "None"), ("created", "yesterday")):
        bad = {**old, "proof": {**old["proof"], name: value}}
        assert not binding.verify(bad, signer.public).ok


def _legacy_options(doc: dict[str, Any], signer: binding.Signer, suite: str) -> dict[str, Any]:
    """The proof options boundgate wrote before eddsa-jcs-2022, for ``suite``."""
    return {
        "type": "Ed25519Signature2020",
        "cryptosuite": suite,
        "created": doc["proof"]["created"],
        "verificationMethod": binding.key_id(signer.public),
        "proofPurpose": "assertionMethod",
    }


def test_documents_signed_with_boundgates_own_proof_suite_still_verify(tmp_path: Path) -> None:
    """Before eddsa-jcs-2022, proofs were ``Ed25519Signature2020`` of boundgate's own suite:
    the same signing input, base64, the key named by fingerprint. They keep verifying, and
    their fields are held to what was written (no proof @context, no multibase value)."""
    signer = binding.Signer.load_or_create(tmp_path)
    doc = _signed(signer)
    body = {k: v for k, v in doc.items() if k != "proof"}
    options = _legacy_options(doc, signer, binding.SUITE_2026)
    value = base64.b64encode(signer.private.sign(binding.signing_input(body, options))).decode()
    old = {**body, "proof": {**options, "proofValue": value}}
    assert binding.verify(old, signer.public).ok
    assert binding.proof_key_id(old) == binding.proof_key_id(doc) == binding.key_id(signer.public)
    for name, bad_value in (
        ("@context", doc["@context"]),  # only eddsa-jcs-2022 proofs carry one
        ("type", "DataIntegrityProof"),
        ("verificationMethod", binding.verification_method(signer.public)),
        ("proofValue", "z" + value),
    ):
        bad = {**old, "proof": {**old["proof"], name: bad_value}}
        assert not binding.verify(bad, signer.public).ok, name


# W3C's test vector for eddsa-jcs-2022 (w3c/vc-di-eddsa, TestVectors/keyPair.json,
# unsigned.json, eddsa-jcs-2022/signedJCS.json; W3C Software and Document License)
W3C_PRIVATE_KEY = "z3u2en7t5LR2WtQH5PfFqMqwVHBeXouLzo6haApm8XHqvjxq"
W3C_PUBLIC_KEY = "z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2"
W3C_UNSIGNED: dict[str, Any] = {
    "@context": [
        "https://www.w3.org/ns/credentials/v2",
        "https://www.w3.org/ns/credentials/examples/v2",
    ],
    "id": "urn:uuid:58172aac-d8ba-11ed-83dd-0b3aef56cc33",
    "type": ["VerifiableCredential", "AlumniCredential"],
    "name": "Alumni Credential",
    "description": "A minimum viable example of an Alumni Credential.",
    "issuer": "https://vc.example/issuers/5678",
    "validFrom": "2023-01-01T00:00:00Z",
    "credentialSubject": {"id": "did:example:abcdefgh", "alumniOf": "The School of Examples"},
}
W3C_PROOF_VALUE = (
    "z2HnFSSPPBzR36zdDgK8PbEHeXbR56YF24jwMpt3R1eHXQzJDMWS93FCzpvJpwTWd3GAVFuUfjoJdcnTMuVor51aX"
)


def test_the_proof_is_w3c_eddsa_jcs_2022_as_its_test_vector_says() -> None:
    """boundgate's proof of W3C's test document with W3C's key is W3C's proof, byte for
    byte (Ed25519 is deterministic), and W3C's signed document verifies here."""
    import base58
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    seed = base58.b58decode(W3C_PRIVATE_KEY[1:])
    assert seed[:2] == b"\x80\x26"  # the multicodec of an Ed25519 private key
    private = Ed25519PrivateKey.from_private_bytes(seed[2:])
    assert binding.did_key(private.public_key()) == f"did:key:{W3C_PUBLIC_KEY}"
    created = datetime(2023, 2, 24, 23, 36, 38, tzinfo=UTC)
    proof = binding.data_integrity_proof(private, W3C_UNSIGNED, created)
    assert proof == {
        "type": "DataIntegrityProof",
        "cryptosuite": "eddsa-jcs-2022",
        "created": "2023-02-24T23:36:38Z",
        "verificationMethod": f"did:key:{W3C_PUBLIC_KEY}#{W3C_PUBLIC_KEY}",
        "proofPurpose": "assertionMethod",
        "@context": W3C_UNSIGNED["@context"],
        "proofValue": W3C_PROOF_VALUE,
    }
    signed = {**W3C_UNSIGNED, "proof": proof}
    public = binding.did_key_public(proof["verificationMethod"])
    assert public is not None
    assert binding.verify_proof(signed, public).ok
    tampered = {**signed, "name": "Alumni Credentials"}
    assert binding.verify_proof(tampered, public).reason.startswith("bad signature")


def test_export_leaves_out_a_document_whose_stored_text_fails_its_check(tmp_path: Path) -> None:
    """An operator's trial: a document changed in the store (by hand, a disk fault) was
    exported silently, and every import of the file stopped at it. It is left out, named on
    stderr, and the export exits 1; the others are exported."""
    import sqlite3

    a = tmp_path / "a"
    cfg = _config(a)
    signer = binding.Signer.load_or_create(a / "data")
    kept, broken = _signed(signer), _signed(signer, "Why is the sky blue?")
    runner = CliRunner()
    f = _write(tmp_path / "in.ndjson", kept, broken)
    assert runner.invoke(cli, ["docs", "import", str(f), *cfg]).exit_code == 0
    with contextlib.closing(sqlite3.connect(a / "data" / "boundgate.db")) as db, db:
        db.execute(
            "UPDATE documents SET body = replace(body, 'sky', 'sea') WHERE id = ?",
            (binding.short_id(broken["@id"]),),
        )
    out = tmp_path / "out.ndjson"
    res = runner.invoke(cli, ["docs", "export", "--format", "ndjson", "-o", str(out), *cfg])
    assert res.exit_code == 1, res.output
    said = " ".join(res.stderr.split())
    assert f"not exported: {binding.short_id(broken['@id'])}: content does not match" in said
    assert "exported 1 active document" in said
    assert [json.loads(line) for line in out.read_text().splitlines()] == [kept]
    # the check export names lists it, and says what can be done (a trial was sent to
    # `docs check --repair`, which said all agreed and changed nothing)
    broken_id = binding.short_id(broken["@id"])
    for repair in ([], ["--repair"]):
        res = runner.invoke(cli, ["docs", "check", *repair, *cfg])
        said = " ".join(res.output.split())
        assert res.exit_code == 1, said
        assert f"{broken_id} (fails its own check): content does not match" in said
        assert f"boundgate docs revoke {broken_id}" in said and "agree" not in said
        assert "0 found" not in said  # (a re-check: "0 found: … --repair repairs them")
    # text that is no JSON at all: one line each, no traceback (a re-check's)
    with contextlib.closing(sqlite3.connect(a / "data" / "boundgate.db")) as db, db:
        db.execute("UPDATE documents SET body = '{not json' WHERE id = ?", (broken_id,))
    for args in (["docs", "check"], ["docs", "verify", broken_id], ["docs", "export"]):
        res = runner.invoke(cli, [*args, *cfg])
        said = " ".join(res.output.split())
        assert res.exit_code == 1 and "no JSON" in said and "Traceback" not in said, said
    # revoked, it is served no more: the check is clean again
    assert runner.invoke(cli, ["docs", "revoke", broken_id, *cfg]).exit_code == 0
    res = runner.invoke(cli, ["docs", "check", *cfg])
    assert res.exit_code == 0 and "agree" in res.output, res.output


def test_export_writes_active_documents_and_marks_the_others(tmp_path: Path) -> None:
    """A tester's finding: export included revoked documents, and as a signed document
    carries no state, importing them elsewhere made them active again."""
    a, b = tmp_path / "a", tmp_path / "b"
    cfg_a, cfg_b = _config(a), _config(b)
    signer = binding.Signer.load_or_create(a / "data")
    kept, dropped = _signed(signer), _signed(signer, "Why is the sky blue?")
    runner = CliRunner()
    f = _write(tmp_path / "in.ndjson", kept, dropped)
    assert runner.invoke(cli, ["docs", "import", str(f), *cfg_a]).exit_code == 0
    dropped_id = binding.short_id(dropped["@id"])
    assert runner.invoke(cli, ["docs", "revoke", dropped_id, *cfg_a]).exit_code == 0
    # `docs list --state all`, as export and the API take it (a trial found it refused)
    listed = runner.invoke(cli, ["docs", "list", "--state", "all", *cfg_a])
    assert listed.exit_code == 0 and dropped_id in listed.output, listed.output
    assert binding.short_id(kept["@id"]) in listed.output

    out = tmp_path / "out.ndjson"
    res = runner.invoke(cli, ["docs", "export", "--format", "ndjson", "-o", str(out), *cfg_a])
    assert res.exit_code == 0, res.output
    assert [json.loads(line) for line in out.read_text().splitlines()] == [kept]

    res = runner.invoke(
        cli, ["docs", "export", "--state", "all", "--format", "ndjson", "-o", str(out), *cfg_a]
    )
    assert res.exit_code == 0, res.output
    written = sorted((json.loads(line) for line in out.read_text().splitlines()), key=len)
    assert written == [{"state": "revoked", "document": dropped}, kept]
    res = runner.invoke(cli, ["docs", "verify", str(out), *cfg_a])
    assert res.exit_code == 0 and "(revoked: not imported by docs import)" in res.output

    pub = ["--public-key", str(a / "data" / binding.PUBLIC_KEY_FILE)]
    res = runner.invoke(cli, ["docs", "import", str(out), *pub, *cfg_b])
    assert res.exit_code == 0, res.output
    assert "imported 1, already present 0, not active (not imported) 1" in res.output
    rows = asyncio.run(_documents(b / "data"))
    assert [(r.id, r.state) for r in rows] == [(binding.short_id(kept["@id"]), "active")]

    # a trial: a file of revoked documents only imported nothing and exited 0, creating a
    # store; a wrapper's state that is no state ("ACTIVE", an object) counted as not active
    c = tmp_path / "c"
    only = _write(tmp_path / "revoked.ndjson", {"state": "revoked", "document": dropped})
    res = runner.invoke(cli, ["docs", "import", str(only), *pub, *_config(c)])
    assert res.exit_code == 1 and "nothing to import" in res.output, res.output
    assert not (c / "data" / "boundgate.db").exists()
    for state, shown in (("ACTIVE", '"ACTIVE"'), ({}, "{}"), (None, "null")):
        odd = _write(tmp_path / "odd.ndjson", {"state": state, "document": dropped})
        res = runner.invoke(cli, ["docs", "import", str(odd), *pub, *_config(c)])
        assert res.exit_code == 1 and "state must be one of" in res.output, res.output
        assert f"not {shown}" in res.output, res.output  # as the file spells it
        # docs verify fails what docs import refuses (a trial's "bogus" state was "valid")
        res = runner.invoke(cli, ["docs", "verify", str(odd), *pub])
        assert res.exit_code == 1 and "state must be one of" in res.output, res.output
    # without --public-key, an import of another gateway's documents says how to give it
    d = tmp_path / "d"
    binding.Signer.load_or_create(d / "data")  # a gateway with a key of its own
    res = runner.invoke(cli, ["docs", "import", str(out), *_config(d)])
    assert res.exit_code == 1 and "signed by another key" in res.output, res.output
    assert "with --public-key" in " ".join(res.output.split())


def test_a_document_naming_a_member_twice_is_refused_and_integral_decimals_are_integers(
    tmp_path: Path,
) -> None:
    """A trial: a file with an unsigned "name" before the signed one verified valid (Python
    keeps the last member; RFC 8785, which the signature is over, forbids names given twice),
    and "bg:askerCount": 3.0, the signed 3 as JCS writes it, was refused."""
    a = tmp_path / "a"
    cfg = _config(a)
    signer = binding.Signer.load_or_create(a / "data")
    doc = _signed(signer)
    text = json.dumps(doc)
    twice = text.replace('"name": ', '"name": "unsigned text", "name": ', 1)
    assert json.loads(twice) == doc  # what Python's parser alone made of it
    f = tmp_path / "twice.jsonld"
    f.write_text(twice)
    runner = CliRunner()
    res = runner.invoke(cli, ["docs", "verify", str(f), *cfg])
    assert res.exit_code == 2 and "duplicate member name 'name'" in res.output, res.output
    lines = tmp_path / "twice.ndjson"  # the place named is the file's, not its line's
    lines.write_text(text + "\n" + twice + "\n")
    res = runner.invoke(cli, ["docs", "verify", str(lines), *cfg])
    assert res.exit_code == 2 and "'name': line 2 column 1" in res.output, res.output
    decimals = tmp_path / "decimals.jsonld"
    decimals.write_text(text.replace('"bg:askerCount": 3', '"bg:askerCount": 3.0'))
    assert '"bg:askerCount": 3.0' in decimals.read_text()
    res = runner.invoke(cli, ["docs", "verify", str(decimals), *cfg])
    assert res.exit_code == 0 and "valid" in res.output, res.output


@pytest.mark.parametrize("command", ["list", "export"])
def test_docs_state_must_be_a_state(tmp_path: Path, command: str) -> None:
    """A tester's finding: `docs list --state bogus` printed an empty table and exit 0."""
    res = CliRunner().invoke(cli, ["docs", command, "--state", "bogus", *_config(tmp_path)])
    assert res.exit_code == 2 and "bogus" in res.output


# --- documents imported from another gateway: verified with their issuer's key -------------


def test_imported_documents_verify_with_their_issuers_key(tmp_path: Path) -> None:
    """The bug: gateway B verified its documents with its own key only, so a document it
    imported from A read "signed by another key" in `docs verify` (by id, and its export) and
    on the dashboard. B now keeps the key each import was verified with, and its export
    carries that key endorsed by B, so a third gateway trusting B can verify A's document."""
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    cfg_b, cfg_c = _config(b), _config(c)
    signer_a = binding.Signer.load_or_create(a / "data")
    signer_b = binding.Signer.load_or_create(b / "data")
    theirs, ours = _signed(signer_a), _signed(signer_b, "Why is the sky blue?")
    theirs_id, ours_id = binding.short_id(theirs["@id"]), binding.short_id(ours["@id"])
    runner = CliRunner()
    pub_a = ["--public-key", str(a / "data" / binding.PUBLIC_KEY_FILE)]
    res = runner.invoke(
        cli, ["docs", "import", str(_write(tmp_path / "a.ndjson", theirs)), *pub_a, *cfg_b]
    )
    assert res.exit_code == 0, res.output
    res = runner.invoke(cli, ["docs", "import", str(_write(tmp_path / "b.ndjson", ours)), *cfg_b])
    assert res.exit_code == 0, res.output
    for doc_id in (theirs_id, ours_id):  # by id, from B's store, with B's own key file
        res = runner.invoke(cli, ["docs", "verify", doc_id, *cfg_b])
        assert res.exit_code == 0 and "valid" in res.output, _one_line(res)

    out = tmp_path / "b-export.ndjson"
    res = runner.invoke(cli, ["docs", "export", "--format", "ndjson", "-o", str(out), *cfg_b])
    assert res.exit_code == 0, res.output
    res = runner.invoke(cli, ["docs", "verify", str(out), *cfg_b])
    assert res.exit_code == 0 and _one_line(res).count("valid ") == 2, _one_line(res)
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert ours in written  # B's own document: bare, as before
    wrapped = next(i for i in written if i is not ours and "issuer" in i)
    assert set(wrapped) == {"document", "issuer"} and wrapped["document"] == theirs
    assert wrapped["issuer"]["publicKeyPem"] == binding.public_pem(signer_a.public).decode()
    assert wrapped["issuer"]["endorsedBy"] == binding.key_id(signer_b.public)

    # a third gateway that trusts B (only B's key) imports and verifies both
    pub_b = ["--public-key", str(b / "data" / binding.PUBLIC_KEY_FILE)]
    res = runner.invoke(cli, ["docs", "import", str(out), *pub_b, *cfg_c])
    assert res.exit_code == 0 and "imported 2" in res.output, _one_line(res)
    for doc_id in (theirs_id, ours_id):
        res = runner.invoke(cli, ["docs", "verify", doc_id, *cfg_c])
        assert res.exit_code == 0, _one_line(res)
    rows = {r.id: r for r in asyncio.run(_documents(c / "data"))}
    assert rows[theirs_id].public_key == binding.public_pem(signer_a.public).decode()
    assert rows[ours_id].public_key == binding.public_pem(signer_b.public).decode()
    # B keeps no key for its own document (NULL: its own key)
    rows = {r.id: r for r in asyncio.run(_documents(b / "data"))}
    assert rows[ours_id].public_key is None and rows[theirs_id].public_key is not None


def _import_from_a(tmp_path: Path) -> tuple[list[str], dict[str, Any], binding.Signer]:
    """Gateway B (config options returned) with one document imported from A (returned,
    with B's signer)."""
    cfg_b = _config(tmp_path / "b")
    signer_a = binding.Signer.load_or_create(tmp_path / "a" / "data")
    signer_b = binding.Signer.load_or_create(tmp_path / "b" / "data")
    theirs = _signed(signer_a)
    pub_a = ["--public-key", str(tmp_path / "a" / "data" / binding.PUBLIC_KEY_FILE)]
    f = _write(tmp_path / "a.ndjson", theirs)
    res = CliRunner().invoke(cli, ["docs", "import", str(f), *pub_a, *cfg_b])
    assert res.exit_code == 0, res.output
    return cfg_b, theirs, signer_b


def test_an_imported_document_verifies_by_id_without_this_directorys_key(
    tmp_path: Path,
) -> None:
    """It verifies with the issuer key kept at import; `docs verify ID` still demanded the
    data directory's own public key first (a replica's data directory without one, a key
    file moved) and exited 2."""
    cfg_b, theirs, _ = _import_from_a(tmp_path)
    (tmp_path / "b" / "data" / binding.PUBLIC_KEY_FILE).unlink()
    res = CliRunner().invoke(cli, ["docs", "verify", binding.short_id(theirs["@id"]), *cfg_b])
    assert res.exit_code == 0 and "valid" in res.output, _one_line(res)


def test_a_document_is_named_by_its_full_id_too(tmp_path: Path) -> None:
    """A trial: `docs verify urn:boundgate:doc:sha256:…` (the id `docs import` and `docs
    verify FILE` print) said "no file or document"; only the short doc_… id worked."""
    cfg_b, theirs, _ = _import_from_a(tmp_path)
    for command in ("verify", "show"):
        res = CliRunner().invoke(cli, ["docs", command, theirs["@id"], *cfg_b])
        assert res.exit_code == 0, _one_line(res)


def test_an_imported_document_that_no_longer_verifies_with_its_key_is_invalid(
    tmp_path: Path,
) -> None:
    cfg_b, theirs, _ = _import_from_a(tmp_path)
    doc_id = binding.short_id(theirs["@id"])
    runner = CliRunner()
    res = runner.invoke(cli, ["docs", "verify", doc_id, *cfg_b])
    assert res.exit_code == 0, _one_line(res)
    db = tmp_path / "b" / "data" / "boundgate.db"
    tampered = json.loads(json.dumps(theirs))
    tampered["acceptedAnswer"]["text"] = "Something else."
    other = binding.Signer.load_or_create(tmp_path / "x")
    for column, value, says in (
        ("body", json.dumps(tampered), "content does not match its id (tampered)"),
        ("public_key", binding.public_pem(other.public).decode(), "signed by another key"),
        ("public_key", "not a key", "its stored key: "),
    ):
        with sqlite3.connect(db) as conn:
            before = conn.execute(f"SELECT {column} FROM documents").fetchone()[0]
            conn.execute(f"UPDATE documents SET {column} = ?", (value,))
        res = runner.invoke(cli, ["docs", "verify", doc_id, *cfg_b])
        text = _one_line(res)
        assert res.exit_code == 1 and f"INVALID document 1 ({theirs['@id']}): {says}" in text
        with sqlite3.connect(db) as conn:
            conn.execute(f"UPDATE documents SET {column} = ?", (before,))
    res = runner.invoke(cli, ["docs", "verify", doc_id, *cfg_b])
    assert res.exit_code == 0, _one_line(res)


def test_an_export_whose_issuer_keys_were_changed_is_refused(tmp_path: Path) -> None:
    """The issuer key an export carries counts only if the exporting gateway endorsed it
    for that very document: a key put in its place, or an endorsement moved to another
    document, is refused by `docs verify` and `docs import`."""
    cfg_b, theirs, signer_b = _import_from_a(tmp_path)
    runner = CliRunner()
    out = tmp_path / "b.ndjson"
    res = runner.invoke(cli, ["docs", "export", "--format", "ndjson", "-o", str(out), *cfg_b])
    assert res.exit_code == 0, res.output
    (wrapped,) = [json.loads(line) for line in out.read_text().splitlines()]
    endorsement = wrapped["issuer"]
    assert binding.endorsed_key(endorsement, theirs, signer_b.public).ok
    mallory = binding.Signer.load_or_create(tmp_path / "m")
    forged = _signed(mallory, "Is the earth flat?")
    tampered = json.loads(json.dumps(theirs))
    tampered["acceptedAnswer"]["text"] = "Something else."
    mallory_pem = binding.public_pem(mallory.public).decode()
    for item, says in (
        ({"document": tampered, "issuer": endorsement}, "content does not match its id"),
        ({"document": forged, "issuer": endorsement}, "bad issuer endorsement"),
        (
            {"document": forged, "issuer": {**endorsement, "publicKeyPem": mallory_pem}},
            "bad issuer endorsement",
        ),
        (
            {"document": forged, "issuer": mallory.endorse(forged["@id"], mallory.public)},
            "issuer key endorsed by another key",
        ),
        ({"document": forged, "issuer": {**endorsement, "extra": 1}}, "unexpected issuer"),
        ({"document": theirs}, "signed by another key"),  # no key carried: B's own key
    ):
        f = _write(tmp_path / "bad.ndjson", item)
        res = runner.invoke(cli, ["docs", "verify", str(f), *cfg_b])
        text = _one_line(res)
        assert res.exit_code == 1 and "INVALID document 1" in text and says in text, text
        cfg_c = _config(tmp_path / "c")
        pub_b = ["--public-key", str(tmp_path / "b" / "data" / binding.PUBLIC_KEY_FILE)]
        res = runner.invoke(cli, ["docs", "import", str(f), *pub_b, *cfg_c])
        assert res.exit_code == 1 and says in _one_line(res)
        assert asyncio.run(_documents(tmp_path / "c" / "data")) == []


def test_import_document_stores_only_what_verifies_with_the_key_it_is_given(
    tmp_path: Path,
) -> None:
    """``Documents.import_document`` checks the document with the key it will keep for it
    (the CLI checks first; this guards any other caller), and keeps none for its own key."""
    from boundgate.cli.docs import _engine

    settings = fake_settings(tmp_path, '[reuse]\nembedder = "hash"')
    signer_a = binding.Signer.load_or_create(tmp_path / "a")
    store = SQLiteStore(settings.db_path)
    store.open()
    try:
        own = binding.Signer.load_or_create(settings.server.data_dir)
        engine = _engine(settings, store, signer=own)
        theirs, ours = _signed(signer_a), _signed(own, "Why is the sky blue?")
        with pytest.raises(binding.DocumentError) as caught:
            asyncio.run(engine.documents.import_document(theirs, public_key=own.public))
        assert caught.value.field == "proof" and "signed by another key" in caught.value.problem
        assert asyncio.run(store.documents()) == []
        asyncio.run(engine.documents.import_document(theirs, public_key=signer_a.public))
        asyncio.run(engine.documents.import_document(ours, public_key=own.public))
        keys = {r.id: r.public_key for r in asyncio.run(store.documents())}
        assert keys == {
            binding.short_id(theirs["@id"]): binding.public_pem(signer_a.public).decode(),
            binding.short_id(ours["@id"]): None,
        }
    finally:
        store.close()


def test_an_import_whose_first_document_fails_creates_no_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file whose first document fails verification (tampered, or JSON that is no
    document) imported nothing but created a store and a signing key pair in ./.boundgate,
    so the next `docs list` there listed an empty store instead of refusing. Documents are
    verified before the store is opened; one that fails after valid ones still stops the
    import there, the ones before it imported."""
    signer = binding.Signer.load_or_create(tmp_path / "exporter")
    pub = str(tmp_path / "exporter" / binding.PUBLIC_KEY_FILE)
    good = _signed(signer)
    tampered = json.loads(json.dumps(good))
    tampered["acceptedAnswer"]["text"] = "50 °C."
    here = tmp_path / "elsewhere"
    here.mkdir()
    monkeypatch.chdir(here)
    runner = CliRunner(env=NO_STORE_ENV)
    for name, item in (("tampered", tampered), ("not a document", {"a": 1})):
        f = _write(tmp_path / f"{name}.ndjson", item)
        res = runner.invoke(cli, ["docs", "import", str(f), "--public-key", pub])
        assert res.exit_code == 1, res.output
        assert "before it: imported 0" in " ".join(res.stderr.split())
        assert list(here.iterdir()) == [], name
    # a valid document before a failing one: imported, then the import stops
    other = _signed(signer, question="What is the freezing point of water at sea level?")
    f = tmp_path / "mixed.ndjson"
    f.write_text(json.dumps(other) + "\n" + json.dumps(tampered) + "\n")
    res = runner.invoke(cli, ["docs", "import", str(f), "--public-key", pub])
    assert res.exit_code == 1, res.output
    assert "before it: imported 1" in " ".join(res.stderr.split())
    assert (here / ".boundgate" / "boundgate.db").exists()


def _signing_key_fingerprint(data_dir: str) -> str:
    return binding.Signer.load_or_create(Path(data_dir)).fingerprint


def test_processes_starting_together_share_one_signing_key(tmp_path: Path) -> None:
    """A clean-clone CI run: two gateway processes starting on one new data directory, the
    second failed with FileExistsError on signing-key.pem (an exclusive create after an
    existence check), or could read the first one's key half written. All get one key now."""
    import multiprocessing

    fork = multiprocessing.get_context("fork")
    for run in range(15):
        data = tmp_path / f"d{run}"
        with fork.Pool(6) as pool:
            prints = pool.map(_signing_key_fingerprint, [str(data)] * 12)
        assert len(set(prints)) == 1
        assert (
            binding.key_fingerprint(binding.load_public_key(data / binding.PUBLIC_KEY_FILE))
            == prints[0]
        )
        assert [f.name for f in data.iterdir() if f.name.startswith(".")] == []  # no leftovers


def test_line_separators_inside_an_ndjson_document_are_text(tmp_path: Path) -> None:
    """A trial: an answer holding U+2028 (or U+2029, U+0085), written as is by the ndjson
    export, split its line when read back, and the whole file was refused by `docs verify`
    and `docs import`. NDJSON lines end at "\\n" only."""
    cfg = _config(tmp_path)
    signer = binding.Signer.load_or_create(tmp_path / "data")
    odd = _signed(signer, "Line one\u2028line two\u2029and\u0085three: what is this?")
    docs = [odd, _signed(signer, "Why is the sky blue?")]
    f = tmp_path / "docs.ndjson"
    f.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs), "utf-8")
    res = CliRunner().invoke(cli, ["docs", "verify", str(f), *cfg])
    assert res.exit_code == 0, _one_line(res)
    res = CliRunner().invoke(cli, ["docs", "import", str(f), *cfg])
    assert res.exit_code == 0 and "imported 2" in _one_line(res), _one_line(res)


def test_a_document_file_may_start_with_a_byte_order_mark(tmp_path: Path) -> None:
    """A trial's export saved by an editor with a UTF-8 byte-order mark was refused as "not
    JSON" by docs verify and docs import (request bodies and batch input files skip one)."""
    cfg = _config(tmp_path)
    signer = binding.Signer.load_or_create(tmp_path / "data")
    f = tmp_path / "bom.ndjson"
    f.write_bytes(b"\xef\xbb\xbf" + json.dumps(_signed(signer)).encode() + b"\n")
    runner = CliRunner()
    res = runner.invoke(cli, ["docs", "verify", str(f), *cfg])
    assert res.exit_code == 0 and "valid" in res.output, res.output
    res = runner.invoke(cli, ["docs", "import", str(f), *cfg])
    assert res.exit_code == 0 and "imported 1" in " ".join(res.output.split()), res.output


def test_the_first_documents_context_and_a_single_type_still_parse() -> None:
    """Documents bound under the first context (boundgate's terms alone, ``proof`` among
    them) and a ``@type`` written as one string (JSON-LD allows either) are still read."""
    doc = _built()
    old = {**doc, "@context": copy.deepcopy(binding.LEGACY_CONTEXT), "@type": "bg:BoundAnswer"}
    assert binding.parse(old, WHEN.timestamp()).question == Q
    with pytest.raises(binding.DocumentError, match="@context"):
        binding.parse({**old, "@context": binding.CONTEXT[1]}, WHEN.timestamp())
