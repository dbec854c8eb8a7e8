"""Bound documents' writes and state transitions, on SQLite and PostgreSQL: an import or a
bind is one write (the entry and its document together), a revocation stops every entry
serving the document and is never undone (by a rebind finishing, by the stale check at
start-up), a wrong exact answer that is bound gets its document revoked rather than its
entry deleted, and a rebind runs only where the model is at the version it is for.

Gateways are driven in-process (``Gateway.complete``, the job handler, ``JobRunner``) on real
stores. A process killed between two writes, or another process acting at a given moment, is
a store subclass that acts at one of its methods (``open_store(Mixin)``), not a patch of our
code.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from boundgate.assembly import build_gateway
from boundgate.backends.base import GenerationRequest, Message, model_versions
from boundgate.backends.fake import FakeBackend
from boundgate.clock import FakeClock
from boundgate.gateway import Gateway
from boundgate.scheduler.handlers import job_handlers, model_requirements, rebind
from boundgate.scheduler.jobs import JobQueue, model_requirement
from boundgate.scheduler.runner import JobRunner
from boundgate.store import DocumentRow, JobRow, SQLiteStore, Store, StoredEntry
from boundgate.tenants import Tenant
from helpers import OpenStore, arun, fake_settings, store_opener

Q = "What is the boiling point of water at sea level?"
ACME = Tenant("acme")
CLOCK_START = 1_900_000_000.0  # after any real time the stores see in these tests


class Killed(Exception):
    """The process dies here (a kill, an OOM, a disk error)."""


@pytest.fixture(params=["sqlite", "postgres"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenStore]:
    """Opens a store on the test's fresh database; ``open_store(Mixin)``: of a subclass of
    the implementation with ``Mixin`` first (a store that acts at one of its methods).
    Closes them all afterwards."""
    yield from store_opener(request, tmp_path)


def gateway(
    tmp: Path, store: Store, version: str = "v1", clock: FakeClock | None = None
) -> Gateway:
    """A gateway process on ``store`` (its data dir, so its signing key, under ``tmp``)
    whose fake model is at ``version``; a meaning is bound at its first asker."""
    tmp.mkdir(parents=True, exist_ok=True)
    settings = fake_settings(tmp, '[reuse]\nembedder = "hash"')
    settings.reuse.persist_index = False
    settings.reuse.bind_after = 1
    settings.scheduler.policy = "now"
    backend = FakeBackend("fake", params_b=1, version=version)
    return build_gateway(settings, store=store, backends={"fake": backend}, clock=clock)


async def started(gw: Gateway) -> Gateway:
    """``gw`` with what its store holds loaded, as a process starts."""
    assert gw.reuse is not None
    await gw.reuse.load()
    return gw


async def ask(gw: Gateway, user: str) -> tuple[str, str | None, str]:
    """The reuse status, the served document (or answer) id and the request id of ``Q``."""
    req = GenerationRequest(
        model="fake", messages=[Message("user", Q)], temperature=0, max_tokens=60, user=user
    )
    ctx = gw.context(ACME, "/v1/chat/completions")
    result = await gw.complete(ctx, req)
    assert result.reuse is not None
    row = await gw.store.get_row(ctx.request_id)
    return result.reuse.status, row.document_id if row else None, ctx.request_id


async def documents(store: Store) -> list[tuple[str, str]]:
    return sorted((d.id, d.state) for d in await store.documents())


# --- one write: import and bind ---------------------------------------------------------------


class DiesBetweenEntryAndDocument:
    """The first import dies after its entry was written and before its document, as an
    import of a gateway before this fix could (two writes): through ``put_document`` there
    (the entry written by ``put_entry`` before), or by writing the entry alone here."""

    died = False

    def _die_once(self) -> None:
        if not self.died:
            self.died = True
            raise Killed

    async def put_document(self, doc: DocumentRow) -> bool:
        self._die_once()
        return await super().put_document(doc)  # type: ignore[misc]

    async def import_document(self, entry: StoredEntry, doc: DocumentRow) -> StoredEntry | None:
        if not self.died:
            await self.put_entry(entry)  # type: ignore[attr-defined]
            self._die_once()
        return await super().import_document(entry, doc)  # type: ignore[misc]


def test_an_import_run_again_after_it_died_is_revoked_whole(
    tmp_path: Path, open_store: OpenStore
) -> None:
    """An import that died between its entry and its document, run again, used to bind the
    document to an entry key never stored (the entry's insert ignored its id's conflict)
    while the first entry kept serving, and ``docs revoke`` then revoked nothing. Now the
    second run binds the document to the stored entry, and a revocation stops it."""

    async def main() -> None:
        source = SQLiteStore(tmp_path / "a.db")  # another gateway, which bound the answer
        source.open()
        try:
            a = await started(gateway(tmp_path / "a", source))
            assert (await ask(a, "alice"))[0] == "miss"
            (bound,) = await source.documents()
            doc = json.loads(bound.body)
            assert a.reuse is not None and a.reuse.documents.signer is not None
            issuer = a.reuse.documents.signer.public
        finally:
            source.close()

        store = open_store(DiesBetweenEntryAndDocument)
        first = await started(gateway(tmp_path / "b", store))
        assert first.reuse is not None
        with pytest.raises(Killed):
            await first.reuse.documents.import_document(doc, public_key=issuer)
        again = await started(gateway(tmp_path / "b", store))  # `docs import` run again
        assert again.reuse is not None
        assert await again.reuse.documents.import_document(doc, public_key=issuer) == bound.id
        (stored,) = await store.entries()  # one entry, the document's
        row = await store.get_document(bound.id)
        assert row is not None and row.entry == stored.key and stored.document_id == bound.id
        server = await started(gateway(tmp_path / "b", store))
        assert (await ask(server, "bob"))[:2] == ("hit-exact", bound.id)

        revoker = await started(gateway(tmp_path / "b", store))  # `docs revoke`
        assert revoker.reuse is not None and await revoker.reuse.documents.revoke(bound.id)
        assert [e.revoked for e in await store.entries()] == [True]
        restarted = await started(gateway(tmp_path / "b", store))
        assert (await ask(restarted, "carol"))[:2] != ("hit-exact", bound.id)
        assert (await ask(server, "dave"))[:2] != ("hit-exact", bound.id)  # running, too

    arun(main())


class DiesAtEachWriteOnce:
    """The process dies at the first document write and at the first entry re-pointing (a
    bind of a gateway before this fix wrote the document, then pointed the entry at it)."""

    died: set[str]

    def _die_once(self, name: str) -> None:
        died = self.__dict__.setdefault("died", set())
        if name not in died:
            died.add(name)
            raise Killed

    async def put_document(self, doc: DocumentRow) -> bool:
        self._die_once("put_document")
        return await super().put_document(doc)  # type: ignore[misc]

    async def set_entry_document(
        self, entry: int, doc_id: str | None, revoked: bool = False
    ) -> None:
        self._die_once("set_entry_document")
        await super().set_entry_document(entry, doc_id, revoked)  # type: ignore[misc]


def test_a_bind_that_died_and_ran_again_leaves_one_active_document(
    tmp_path: Path, open_store: OpenStore
) -> None:
    """A bind that died between writing the document and pointing its entry at it left an
    active document the entry did not name, and the next bind added a second active one for
    the same entry. The two are one write now: whenever it dies, there is one document."""

    async def main() -> None:
        store = open_store(DiesAtEachWriteOnce)
        gw = await started(gateway(tmp_path, store))
        gw.reuse.settings.bind_after = 3  # type: ignore[union-attr]  # bound by hand here
        assert (await ask(gw, "alice"))[0] == "miss"
        (entry,) = await store.entries()
        for _ in range(3):  # each a process that binds it (the API, the CLI, a third ask)
            process = await started(gateway(tmp_path, store))
            assert process.reuse is not None
            with contextlib.suppress(Killed):
                await process.reuse.documents.bind(entry.key)
        docs = await store.documents()
        assert [d.state for d in docs] == ["active"]
        stored = await store.get_entry(entry.key)
        assert stored is not None and stored.document_id == docs[0].id

    arun(main())


class ReadsOnceBefore:
    """``get_entry`` of a key in ``self.before`` returns, once, the entry as it was before
    (a process that read it just before another process's write)."""

    before: dict[int, StoredEntry]

    async def get_entry(self, key: int) -> StoredEntry | None:
        planted = self.__dict__.setdefault("before", {}).pop(key, None)
        return planted if planted is not None else await super().get_entry(key)  # type: ignore[misc]


def test_two_binds_of_one_entry_at_once_make_one_document(
    tmp_path: Path, open_store: OpenStore
) -> None:
    """Two processes binding one answer at the same moment, each having read it unbound (the
    API's bind and an ask through another replica, say): one document, the one the entry
    names, which the other process gets too. The later bind used to add a second active
    document and point the entry at it."""

    async def main() -> None:
        store = open_store(ReadsOnceBefore)
        gw = await started(gateway(tmp_path, store))
        gw.reuse.settings.bind_after = 3  # type: ignore[union-attr]  # bound by hand here
        assert (await ask(gw, "alice"))[0] == "miss"
        (unbound,) = await store.entries()
        one, two = [await started(gateway(tmp_path, store)) for _ in range(2)]
        assert one.reuse is not None and two.reuse is not None
        first = await one.reuse.documents.bind(unbound.key)
        store.before[unbound.key] = unbound  # type: ignore[attr-defined]  # two read it then
        late = await two.reuse.documents.bind(unbound.key)
        assert first is not None and late is not None and late.id == first.id
        assert await documents(store) == [(first.id, "active")]
        stored = await store.get_entry(unbound.key)
        assert stored is not None and stored.document_id == first.id

    arun(main())


# --- revocation is never undone ---------------------------------------------------------------


class RevokesWhenAnswerIsStored:
    """Runs ``self.meanwhile`` (once) when an answer is about to be stored: another process
    revoking a document while a rebind's generation ran."""

    meanwhile: Callable[[], Awaitable[Any]] | None = None

    async def put_entry(self, entry: StoredEntry) -> None:
        act, self.meanwhile = self.meanwhile, None
        if act is not None:
            await act()
        await super().put_entry(entry)  # type: ignore[misc]


def test_a_revocation_during_a_rebind_stays(tmp_path: Path, open_store: OpenStore) -> None:
    """``docs revoke`` of a stale document while its rebind generated the new answer: the
    rebind used to supersede the revoked document and bind the new answer active."""

    async def main() -> None:
        store = open_store(RevokesWhenAnswerIsStored)
        v1 = await started(gateway(tmp_path, store, "v1"))
        assert (await ask(v1, "alice"))[0] == "miss"
        ((old, _),) = await documents(store)
        v2 = await started(gateway(tmp_path, store, "v2"))
        assert v2.reuse is not None
        assert old in await v2.reuse.documents.mark_stale(model_versions(v2.backends))
        (job,) = await store.jobs()
        revoker = await started(gateway(tmp_path, store, "v2"))  # `docs revoke`
        assert revoker.reuse is not None
        documents_of = revoker.reuse.documents

        async def revoke() -> None:
            assert await documents_of.revoke(old)

        store.meanwhile = revoke  # type: ignore[attr-defined]
        result = await rebind(v2, json.loads(job.payload))
        assert "skipped" in result and "revoked" in result["skipped"]
        assert await documents(store) == [(old, "revoked")]
        assert (await ask(v2, "bob"))[1] != old

    arun(main())


class RevokesAfterListing:
    """Another process revokes every document listed as active right after it is listed (a
    ``docs revoke`` between the stale check's read and its write)."""

    async def documents(self, state: str | None = None, limit: int | None = None) -> Any:
        rows = await super().documents(state, limit)  # type: ignore[misc]
        if state == "active":
            for d in rows:
                await self.set_document_state(d.id, "revoked")  # type: ignore[attr-defined]
        return rows


def test_the_stale_check_does_not_undo_a_revocation(tmp_path: Path, open_store: OpenStore) -> None:
    """A document revoked between the start-up's read of the active documents and its write
    of their new state used to become stale again, with a rebind queued for it."""

    async def main() -> None:
        store = open_store(RevokesAfterListing)
        v1 = await started(gateway(tmp_path, store, "v1"))
        assert (await ask(v1, "alice"))[0] == "miss"
        ((doc, _),) = await documents(store)
        v2 = await started(gateway(tmp_path, store, "v2"))
        assert v2.reuse is not None
        assert await v2.reuse.documents.mark_stale(model_versions(v2.backends)) == []
        assert await documents(store) == [(doc, "revoked")]
        assert await store.jobs() == []

    arun(main())


def test_wrong_feedback_on_a_bound_answer_revokes_its_document(
    tmp_path: Path, open_store: OpenStore
) -> None:
    """``correct: false`` for an exact hit of a bound answer used to delete its entry and
    leave its document active (listed, exported, verified as current). The document is
    revoked now; it and its entry are kept, revoked."""

    async def main() -> None:
        store = open_store()
        gw = await started(gateway(tmp_path, store))
        assert gw.reuse is not None
        assert (await ask(gw, "alice"))[0] == "miss"
        ((doc, _),) = await documents(store)
        status, served, request_id = await ask(gw, "bob")
        assert (status, served) == ("hit-exact", doc)
        await gw.drain()
        row = await store.get_row(request_id)
        # (it judges the answer, not a match: noted, the shared verifier learns nothing)
        assert await gw.reuse.feedback(row, False, ACME.name, admin=False) == "noted"
        assert await documents(store) == [(doc, "revoked")]
        (entry,) = await store.entries()
        assert entry.document_id == doc and entry.revoked
        status, served, _ = await ask(gw, "carol")
        assert status == "miss" and served != doc
        restarted = await started(gateway(tmp_path, store))
        assert (await ask(restarted, "dave"))[1] != doc

    arun(main())


# --- stores an older gateway left inconsistent -------------------------------------------------


def test_a_start_repairs_what_an_older_gateway_left_inconsistent(
    tmp_path: Path, open_store: OpenStore
) -> None:
    """A store written by a gateway before this session's fixes: a revocation that stopped
    after the document (its entry still serving it), and "wrong" feedback that deleted a
    bound answer's entry and left its document active. A gateway started on it served the
    revoked answer. Start-up revokes the entry; the document nothing serves is left to an
    operator (``docs check --repair`` revokes it): a valid document whose entry a replica
    deleted before it saw the binding looks the same (a review's finding)."""

    other = "Why is the sky blue?"

    async def main() -> None:
        store = open_store()
        old = await started(gateway(tmp_path, store))
        assert (await ask(old, "alice"))[0] == "miss"
        ((revoked, _),) = await documents(store)
        # the older gateway's revocation: the document's state written, then it died
        assert await store.set_document_state(revoked, "revoked")
        # its "wrong" feedback on another bound answer: the entry deleted, the document kept
        req = GenerationRequest(model="fake", messages=[Message("user", other)], temperature=0)
        await old.complete(old.context(ACME, "/v1/chat/completions"), req)
        await old.drain()
        wronged = next(d for d, state in await documents(store) if d != revoked)
        row = await store.get_document(wronged)
        assert row is not None and row.entry is not None
        await store.set_entry_document(row.entry, None)  # (deletes keep bound entries now)
        await store.delete_entries([row.entry])

        restarted = await started(gateway(tmp_path, store))
        assert await documents(store) == sorted([(revoked, "revoked"), (wronged, "active")])
        assert [e.revoked for e in await store.entries()] == [True]
        assert [p.kind for p in await store.document_problems()] == ["unserved"]
        status, served, _ = await ask(restarted, "bob")
        assert status == "miss" and served != revoked
        await store.repair_documents(everything=True)
        states = dict(await documents(store))
        assert (states[revoked], states[wronged]) == ("revoked", "revoked")

    arun(main())


def test_docs_check_reports_what_disagrees_and_repairs_it(tmp_path: Path) -> None:
    """``boundgate docs check`` lists each inconsistency with what a repair does and exits 1;
    ``--repair`` repairs them (exit 0); then it finds nothing (exit 0)."""
    from typer.testing import CliRunner

    from boundgate.cli import app as cli

    settings = fake_settings(tmp_path)
    store = SQLiteStore(settings.db_path)
    store.open()
    try:

        async def damage() -> str:
            gw = await started(gateway(tmp_path, store))
            assert (await ask(gw, "alice"))[0] == "miss"
            ((doc, _),) = await documents(store)
            assert await store.set_document_state(doc, "revoked")  # its entry not revoked
            return doc

        doc = arun(damage())
    finally:
        store.close()
    (entry,) = arun(_entries(settings.db_path))

    def check(*args: str) -> tuple[int, str]:
        res = CliRunner().invoke(
            cli, ["docs", "check", *args, "--config", str(tmp_path / "boundgate.toml")]
        )
        assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
        return res.exit_code, " ".join(res.output.split())

    code, text = check()
    assert code == 1, text
    assert f"{doc} (revoked_served): revoked, but its entry {entry} still serves it" in text
    assert "1 found: `boundgate docs check --repair` repairs them" in text
    code, text = check("--repair")
    assert code == 0 and f"{doc} (revoked_served)" in text, text
    assert "repaired: entry revoked" in text and "repaired 1" in text
    assert check() == (0, "documents and their stored answers agree")


async def _entries(db: Path) -> list[int]:
    store = SQLiteStore(db)
    store.open()
    try:
        return [e.key for e in await store.entries() if not e.revoked]
    finally:
        store.close()


# --- rebinding at the right version ------------------------------------------------------------


async def _stale_on_v2(
    tmp_path: Path, store: Store, clock: FakeClock
) -> tuple[Gateway, Gateway, str, JobRow]:
    """A rolling upgrade: a document bound on v1, then a replica on v2 finds it stale and
    queues its rebind. The v1 and v2 gateways, the document, the queued job."""
    v1 = await started(gateway(tmp_path, store, "v1", clock))
    assert (await ask(v1, "alice"))[0] == "miss"
    ((old, _),) = await documents(store)
    v2 = await started(gateway(tmp_path, store, "v2", clock))
    assert v2.reuse is not None
    await v2.reuse.documents.mark_stale(model_versions(v2.backends))
    (queued,) = await store.jobs()
    return v1, v2, old, queued


def test_a_replica_on_the_old_version_leaves_the_rebind_alone(
    tmp_path: Path, open_store: OpenStore
) -> None:
    """A rolling upgrade: the replica on v2 finds the document stale and queues its rebind;
    one still on v1 polls the queue. It used to rebind at v1 (superseding the stale document
    with one of the same old version), then to claim the job and hand it back, a write per
    due rebind and poll. It passes the job over now, writing nothing, and the v2 replica
    rebinds it."""

    async def main() -> None:
        clock = FakeClock(start=CLOCK_START)
        store = open_store()
        _v1, v2, old, queued = await _stale_on_v2(tmp_path, store, clock)
        assert queued.requires == model_requirement("fake", "v2")

        old_replica = await started(gateway(tmp_path, store, "v1", clock))
        for _ in range(3):
            assert not await runner(old_replica, store, clock).run_once()
            clock.advance(61.0)
        assert await store.jobs() == [queued]  # never claimed: not a write
        assert await documents(store) == [(old, "stale")]
        assert await runner(v2, store, clock).run_once()
        (job,) = await store.jobs()
        assert (job.state, job.attempts) == ("done", 1)
        assert json.loads(job.payload)["version"] == "v2"  # what it was queued for
        new = json.loads(job.result or "{}")["document"]
        row = await store.get_document(new)
        assert row is not None and (row.model_version, row.supersedes) == ("v2", old)
        assert dict(await documents(store)) == {old: "superseded", new: "active"}

    arun(main())


def test_a_rebind_no_replica_at_its_version_took_is_skipped_past_its_deadline(
    tmp_path: Path, open_store: OpenStore
) -> None:
    """Past its deadline (``scheduler.rebind_window_s``) a rebind that no process at its
    version took is finished by any runner, ``done`` and skipped, its handler not run: it
    does not wait in the queue for a version that may never come back (the next start that
    finds the document stale queues it again)."""

    async def main() -> None:
        clock = FakeClock(start=CLOCK_START)
        store = open_store()
        v1, _v2, old, queued = await _stale_on_v2(tmp_path, store, clock)
        clock.advance(queued.deadline - clock.time())
        assert await runner(v1, store, clock).run_once()
        (job,) = await store.jobs()
        assert job.state == "done"
        assert json.loads(job.result or "{}") == {
            "skipped": f"no process running {queued.requires} took it before its deadline"
        }
        assert await documents(store) == [(old, "stale")]  # untouched

    arun(main())


def runner(gw: Gateway, store: Store, clock: FakeClock) -> JobRunner:
    """A job runner of ``gw``'s process, as the server makes it: it accepts the jobs that
    require its models at their versions."""
    return JobRunner(
        store,
        job_handlers(gw),
        clock=clock,
        poll_s=1.0,
        replan_s=3600.0,
        accepts=model_requirements(gw),
    )


def test_a_rebind_queued_without_its_version_never_binds_the_old_one_again(
    tmp_path: Path, open_store: OpenStore
) -> None:
    """A job queued before jobs carried their version names only the document: a process at
    the document's own (stale) version hands it back too."""

    from boundgate.scheduler.jobs import HandBack

    async def main() -> None:
        store = open_store()
        v1 = await started(gateway(tmp_path, store, "v1"))
        assert (await ask(v1, "alice"))[0] == "miss"
        ((old, _),) = await documents(store)
        await store.set_document_state(old, "stale")
        with pytest.raises(HandBack):
            await rebind(await started(gateway(tmp_path, store, "v1")), {"document": old})
        assert await documents(store) == [(old, "stale")]
        result = await rebind(await started(gateway(tmp_path, store, "v2")), {"document": old})
        assert result["supersedes"] == old

    arun(main())


def test_a_job_handed_back_past_its_deadline_is_skipped(tmp_path: Path) -> None:
    """Handed back until its deadline, then finished ``done`` with the reason: no process
    that can run it took it in its window."""
    from boundgate.scheduler.jobs import HandBack

    store = SQLiteStore(tmp_path / "j.db")
    store.open()
    clock = FakeClock(start=CLOCK_START)

    async def not_here(payload: dict[str, Any]) -> dict[str, Any]:
        raise HandBack("not at this version here", 60.0)

    async def main() -> None:
        queue = JobQueue(store, clock)
        await queue.submit("rebind", {"document": "doc_x"}, deadline_s=100.0, duration_s=1.0)
        runner = JobRunner(
            store, {"rebind": not_here}, clock=clock, poll_s=1.0, replan_s=3600.0, max_attempts=1
        )
        for _ in range(2):  # never failed for it, whatever max_attempts
            assert await runner.run_once()
            (job,) = await store.jobs()
            assert (job.state, job.attempts) == ("pending", 0)
            clock.advance(61.0)
        assert await runner.run_once()
        (job,) = await store.jobs()
        assert job.state == "done"
        assert json.loads(job.result or "{}") == {"skipped": "not at this version here"}

    try:
        arun(main())
    finally:
        store.close()
