"""The gateway's signing key: made once, never again behind the store's back (an audit: a lost
``signing-key.pem`` was silently replaced by a new key, at start-up or by ``docs
revoke/bind/export``, and the data directory's ``signing-key.pub.pem`` was never checked
against it; every earlier document then failed ``docs verify``, "signed by another key", and
an import of the gateway's export stopped at the first of them)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from boundgate.assembly import build_app
from boundgate.backends.fake import FakeBackend
from boundgate.cli import app as cli
from boundgate.reuse import binding
from boundgate.reuse.documents import SigningKeyLost
from boundgate.store import SQLiteStore
from helpers import Live, assert_error, fake_settings, wait_until

Q = "What is the boiling point of water at sea level?"
HASH = '[reuse]\nembedder = "hash"'


def app_of(tmp: Path, bind_after: int = 1) -> Any:
    settings = fake_settings(tmp, HASH)
    settings.reuse.bind_after = bind_after
    return build_app(settings, backends={"fake": FakeBackend("fake", params_b=1)})


def bind_one(tmp: Path, question: str = Q, bind_after: int = 1) -> str:
    """Serve ``question`` once on the gateway under ``tmp``; the id of its document (bound
    at once), or of its stored answer (``bind_after`` above 1)."""
    with Live.in_process(app_of(tmp, bind_after)) as live:
        body = {"messages": [{"role": "user", "content": question}], "temperature": 0}
        r = live.http.post("/v1/chat/completions", json=body)
        return str(r.headers["x-boundgate-document"])


def docs(tmp: Path, *args: str) -> tuple[int, str]:
    res = CliRunner().invoke(cli, ["docs", *args, "--config", str(tmp / "boundgate.toml")])
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    return res.exit_code, " ".join(res.output.split())  # rich wraps at the terminal's width


def test_a_lost_signing_key_is_not_replaced_behind_the_stores_back(tmp_path: Path) -> None:
    old_doc = bind_one(tmp_path)
    data = tmp_path / "data"
    old_public = (data / binding.PUBLIC_KEY_FILE).read_bytes()
    old_print = binding.key_fingerprint(binding.public_key_from_pem(old_public))
    (data / binding.PRIVATE_KEY_FILE).unlink()  # lost; its .pub.pem stays
    # the server refuses to start, in its lifespan however the app is run ...
    with pytest.raises(SigningKeyLost), Live.in_process(app_of(tmp_path)):
        pass
    # ... and at the command line in one line, exit 2 (before it listens; its port, bound
    # first, is any free one: the default 8080 may be another server's)
    cfg = str(tmp_path / "boundgate.toml")
    res = CliRunner().invoke(cli, ["serve", "--config", cfg, "--port", "0"])
    text = " ".join(res.output.split())
    assert res.exit_code == 2 and text.startswith("error: the signing key"), text
    assert str(data / binding.PRIVATE_KEY_FILE) in text and "docs new-key" in text
    assert binding.key_id_of(old_print) in text  # the key the store's documents name
    # revoke and export (of its own documents) need no key, and make none
    assert docs(tmp_path, "export", "--out", str(tmp_path / "x.json"))[0] == 0
    assert docs(tmp_path, "revoke", old_doc) == (0, f"revoked {old_doc}")
    assert not (data / binding.PRIVATE_KEY_FILE).exists()
    assert (data / binding.PUBLIC_KEY_FILE).read_bytes() == old_public

    # a new key, on purpose: the old public key is kept to verify what it signed
    code, text = docs(tmp_path, "new-key")
    kept = data / binding.kept_public_key_file(old_print)
    assert code == 0 and f"an earlier key's public key: {kept}" in text, text
    assert kept.read_bytes() == old_public
    new = binding.Signer.load(data)
    assert new is not None and new.fingerprint != old_print
    assert binding.public_pem(new.public) == (data / binding.PUBLIC_KEY_FILE).read_bytes()
    assert docs(tmp_path, "verify", old_doc, "--public-key", str(kept))[0] == 0
    new_doc = bind_one(tmp_path, "Why is the sky blue?")  # the server starts and signs again
    assert docs(tmp_path, "verify", new_doc)[0] == 0
    code, text = docs(tmp_path, "new-key")  # not twice
    assert code == 2 and "is there" in text


def test_docs_bind_refuses_to_sign_with_a_key_the_store_does_not_know(tmp_path: Path) -> None:
    bind_one(tmp_path)  # a document signed with the key about to be lost
    answer = bind_one(tmp_path, "Why is the sky blue?", bind_after=3)  # stored, not bound
    assert answer.startswith("ans_")
    (tmp_path / "data" / binding.PRIVATE_KEY_FILE).unlink()
    code, text = docs(tmp_path, "bind", answer)
    assert code == 2 and text.startswith("error: the signing key") and "docs new-key" in text
    assert not (tmp_path / "data" / binding.PRIVATE_KEY_FILE).exists()


def test_a_public_key_file_of_another_key_is_rewritten_and_kept(tmp_path: Path) -> None:
    """A signing-key.pub.pem left from an earlier key (the private key replaced beside it)
    made ``docs verify`` with the data directory's key call every new document "signed by
    another key". Loading the key rewrites it, and keeps the other beside it."""
    ours = binding.Signer.load_or_create(tmp_path / "d")
    theirs = binding.Signer.load_or_create(tmp_path / "other")
    pub = tmp_path / "d" / binding.PUBLIC_KEY_FILE
    pub.write_bytes(binding.public_pem(theirs.public))
    loaded = binding.Signer.load(tmp_path / "d")
    assert loaded is not None and loaded.fingerprint == ours.fingerprint
    assert pub.read_bytes() == binding.public_pem(ours.public)
    kept = tmp_path / "d" / binding.kept_public_key_file(theirs.fingerprint)
    assert kept.read_bytes() == binding.public_pem(theirs.public)
    pub.write_text("not a key")  # nothing to keep: rewritten
    assert binding.Signer.load(tmp_path / "d") is not None
    assert pub.read_bytes() == binding.public_pem(ours.public)
    assert binding.Signer.load(tmp_path / "nowhere") is None  # never made by loading


def test_commands_that_sign_nothing_make_no_key(tmp_path: Path) -> None:
    """``docs import`` into a new data directory made a signing key there (the gateway's
    own, as far as a later server knew); ``docs export`` of an imported document with no
    key here made one to endorse it. Neither makes one now; the export says what is
    missing (exit 2)."""
    issuer = binding.Signer.load_or_create(tmp_path / "issuer")
    doc = issuer.sign(
        binding.build(
            question=Q, variants=[Q], answer="100 °C.", model="fake", model_version="v1",
            tenant="local", scope={"endpoint": "/v1/chat/completions", "params": {}},
            askers=3, created=binding.EARLIEST_CREATED.replace(year=2026), cost_wh=0.0,
            cost_gco2=0.0,
        ),
        binding.EARLIEST_CREATED.replace(year=2026),
    )  # fmt: skip
    f = tmp_path / "docs.ndjson"
    f.write_text(json.dumps(doc) + "\n")
    b = tmp_path / "b"
    b.mkdir()
    fake_settings(b, HASH)
    pub = str(tmp_path / "issuer" / binding.PUBLIC_KEY_FILE)
    assert docs(b, "import", str(f), "--public-key", pub)[0] == 0
    assert not (b / "data" / binding.PRIVATE_KEY_FILE).exists()
    code, text = docs(b, "export", "--out", str(tmp_path / "out.json"))
    assert code == 2 and "was imported" in text and binding.PRIVATE_KEY_FILE in text, text
    assert not (b / "data" / binding.PRIVATE_KEY_FILE).exists()
    # a server on it starts (its store holds no document of its own) and makes its key
    with Live.in_process(app_of(b)):
        pass
    assert (b / "data" / binding.PRIVATE_KEY_FILE).exists()
    assert docs(b, "export", "--out", str(tmp_path / "out.json"))[0] == 0


def test_a_document_signed_with_a_lost_key_verifies_with_the_key_kept_for_it(
    tmp_path: Path,
) -> None:
    """After ``docs new-key``, ``docs verify ID`` of a document the lost key signed called it
    "signed by another key" unless given the kept public key with ``--public-key``, and an
    import of the gateway's export stopped at the first such document. The data directory
    keeps that key (``signing-key.FINGERPRINT.pub.pem``) and the document names it: verify
    uses it and says so, and the export carries it endorsed by the new key, so whoever
    trusts the gateway's key imports the old documents too."""
    old_doc = bind_one(tmp_path)
    data = tmp_path / "data"
    old_print = binding.Signer.load(data).fingerprint  # type: ignore[union-attr]
    (data / binding.PRIVATE_KEY_FILE).unlink()
    assert docs(tmp_path, "new-key")[0] == 0
    new_doc = bind_one(tmp_path, "Why is the sky blue?")
    new_print = binding.Signer.load(data).fingerprint  # type: ignore[union-attr]
    kept = data / binding.kept_public_key_file(old_print)

    code, text = docs(tmp_path, "verify", old_doc)
    assert code == 0, text
    assert text.startswith("valid") and f"key {binding.key_id_of(old_print)} ({kept}" in text
    assert "an earlier signing key of this data directory" in text
    code, text = docs(tmp_path, "verify", new_doc)
    pub = data / binding.PUBLIC_KEY_FILE
    assert code == 0 and f"key {binding.key_id_of(new_print)} ({pub})" in text, text

    out = tmp_path / "export.ndjson"
    assert docs(tmp_path, "export", "--format", "ndjson", "--out", str(out))[0] == 0
    items = [json.loads(line) for line in out.read_text().splitlines()]
    wrapped = [i for i in items if "issuer" in i]
    assert [binding.short_id(i["document"]["@id"]) for i in wrapped] == [old_doc]
    assert wrapped[0]["issuer"]["endorsedBy"] == binding.key_id_of(new_print)
    # another gateway that knows only the new public key verifies and imports both
    other = tmp_path / "other"
    other.mkdir()
    fake_settings(other, HASH)
    public = ["--public-key", str(pub)]
    res = CliRunner().invoke(
        cli, ["docs", "verify", str(out), *public, "--config", str(other / "boundgate.toml")]
    )
    assert res.exit_code == 0 and res.output.count("valid ") == 2, res.output
    res = CliRunner().invoke(
        cli, ["docs", "import", str(out), *public, "--config", str(other / "boundgate.toml")]
    )
    assert res.exit_code == 0 and "imported 2" in res.output, res.output
    # where no key of it is kept, it still names the way out
    kept.unlink()
    code, text = docs(tmp_path, "verify", old_doc)
    assert code == 1 and "give it with --public-key" in text, text


def test_the_dashboard_reads_a_document_signed_with_a_lost_key_as_valid(tmp_path: Path) -> None:
    """The dashboard's document page checked a gateway's own documents with the signing key
    in use only, so after ``docs new-key`` every document the lost key signed read "invalid:
    signed by another key" there while ``docs verify`` called it valid."""
    old_doc = bind_one(tmp_path)
    data = tmp_path / "data"
    (data / binding.PRIVATE_KEY_FILE).unlink()
    assert docs(tmp_path, "new-key")[0] == 0
    with Live.in_process(app_of(tmp_path)) as live:
        page = live.http.get(f"/dashboard/documents/{old_doc}")
        assert page.status_code == 200 and ">valid<" in page.text, page.text


def test_a_replica_with_a_key_of_its_own_is_refused_where_the_store_signs_with_another(
    tmp_path: Path,
) -> None:
    """A trial's replica had made a key of its own (it had served another database first):
    it started without a word on the shared store and signed documents the other replicas
    called "signed by another key". It is refused at start, naming both keys; with the
    store's key copied in, it starts."""
    bind_one(tmp_path)
    data = tmp_path / "data"
    store_key = {
        f: (data / f).read_bytes() for f in (binding.PRIVATE_KEY_FILE, binding.PUBLIC_KEY_FILE)
    }
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    own = binding.Signer.load_or_create(elsewhere)
    for f in store_key:
        (data / f).write_bytes((elsewhere / f).read_bytes())
    refused = pytest.raises(SigningKeyLost, match="is not the key the store's documents are")
    with refused, Live.in_process(app_of(tmp_path)):
        pass
    res = CliRunner().invoke(
        cli, ["serve", "--config", str(tmp_path / "boundgate.toml"), "--port", "0"]
    )
    text = " ".join(res.output.split())
    assert res.exit_code == 2 and binding.key_id(own.public) in text, text
    for f, content in store_key.items():
        (data / f).write_bytes(content)
    assert bind_one(tmp_path, "Why is the sky blue?").startswith("doc_")


def test_replicas_that_made_keys_of_their_own_on_an_empty_store_bind_with_one(
    tmp_path: Path,
) -> None:
    """A trial: two replicas started together on an empty store, each made a key (the store
    held no document to refuse it by) and both bound documents, with two keys; an import of
    their export stopped at the first document of the other key. The one that binds second
    now binds nothing (counted, logged) until it has the store's key."""
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        d.mkdir()
        fake_settings(d, HASH)

    def replica(tmp: Path) -> Any:  # its own data directory (key), the shared store
        settings = fake_settings(tmp, HASH)
        settings.reuse.bind_after = 1
        store = SQLiteStore(tmp_path / "shared.db")
        return build_app(settings, store=store, backends={"fake": FakeBackend("fake", params_b=1)})

    def ask(live: Live, question: str) -> Any:
        body = {"messages": [{"role": "user", "content": question}], "temperature": 0}
        return live.http.post("/v1/chat/completions", json=body)

    with Live.in_process(replica(a)) as ra, Live.in_process(replica(b)) as rb:
        keys = {binding.Signer.load(d / "data").fingerprint for d in (a, b)}  # type: ignore[union-attr]
        assert len(keys) == 2  # both made one: the store held no document
        first = ask(ra, Q)
        assert first.headers["x-boundgate-document"].startswith("doc_")
        second = ask(rb, "Why is the sky blue?")
        assert second.status_code == 200
        assert second.headers["x-boundgate-document"].startswith("ans_")  # stored, not bound
        stats = rb.http.get("/v1/boundgate/stats").json()
        assert "bind_refused_other_key" in json.dumps(stats)
        # an operator's bind through it says why (a trial: a 404 "cannot be bound")
        answer_id = second.headers["x-boundgate-document"]
        r = rb.http.post("/v1/boundgate/documents", json={"answer_id": answer_id})
        err = assert_error(r, 500, code="signing_key_mismatch")
        assert "cannot bind documents" in err["message"], err
        # an answer bound already (by the replica with the store's key) needs no signing
        bound = first.headers["x-boundgate-document"]
        wait_until(lambda: rb.gateway.reuse.entry_key(bound) is not None)
        r = rb.http.post("/v1/boundgate/documents", json={"answer_id": bound})
        assert r.status_code == 200, r.text
    store = SQLiteStore(tmp_path / "shared.db")
    store.open()
    rows = asyncio.run(store.documents())
    store.close()
    signer_a = binding.Signer.load(a / "data")
    assert signer_a is not None and len(rows) == 1
    assert binding.verify(json.loads(rows[0].body), signer_a.public).ok
