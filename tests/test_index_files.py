"""Saved ANN indexes: a restart reloads them, replays only what they lack, and falls back to
a rebuild from the store whenever a file does not check out."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import numpy as np
import pytest

from boundgate.assembly import build_app
from boundgate.backends.base import Completion, GenerationRequest, Message, Usage
from boundgate.clock import FakeClock
from boundgate.reuse.embedder import HashEmbedder
from boundgate.reuse.engine import Lookup, ReuseEngine
from boundgate.reuse.index import IndexParams, ScopedIndex
from boundgate.reuse.verifier import Observation, Verifier
from boundgate.settings import ReuseSettings
from boundgate.store import SQLiteStore
from boundgate.testing import ThreadedServer
from helpers import fake_settings, wait_until

QUESTIONS = {
    "everest": ("how tall is mount everest", "mount everest how tall is", "8849 m"),
    "nile": ("how long is the river nile", "the river nile is how long", "6650 km"),
    "paris": ("what is the capital of france", "the capital of france is what", "Paris"),
    "sun": ("how hot is the surface of the sun", "the sun surface is how hot", "5500 C"),
}


def chat(question: str) -> GenerationRequest:
    return GenerationRequest(model="m", messages=[Message("user", question)], temperature=0)


class Run:
    """One process lifetime of an engine over the same store file and data dir."""

    def __init__(self, tmp: Path, settings: ReuseSettings | None = None) -> None:
        self.store = SQLiteStore(tmp / "b.db")
        self.store.open()
        # a loose bound that one label makes trusted: what is tested here is the index
        verifier = Verifier(
            ReuseSettings(
                error_bound=0.9, initial_threshold=0.5, verify_rate=0.0, min_observations=1
            )
        )
        verifier.add(Observation(0.99, True, "verify", None))
        self.engine = ReuseEngine(
            store=self.store,
            embedder=HashEmbedder(),
            verifier=verifier,
            settings=settings or ReuseSettings(),
            rebind_window_s=3600.0,
            clock=FakeClock(start=1_800_000_000.0),
            index_dir=tmp / "index",
        )
        asyncio.run(self.engine.load())

    def lookup(self, question: str) -> Lookup:
        p, k = self.engine.plan_for(
            chat(question), tenant="t", model_version="v", endpoint="/e", cache_control=None
        )
        return asyncio.run(self.engine.lookup(p, k))

    def remember(self, name: str) -> int:
        question, _, answer = QUESTIONS[name]
        lookup = self.lookup(question)
        assert not lookup.hit
        stored = asyncio.run(
            self.engine.remember(
                lookup,
                Completion(answer, "stop", Usage(3, 3)),
                tenant="t",
                model="m",
                model_version="v",
                cost_wh=0.2,
                cost_gco2=0.1,
            )
        )
        assert stored is not None
        key = self.engine.entry_key(stored)
        assert key is not None
        return key

    def answer(self, name: str) -> str | None:
        """The answer served for the paraphrase of a stored question (semantic only)."""
        lookup = self.lookup(QUESTIONS[name][1])
        if lookup.entry is None:
            return None
        assert lookup.status == "hit-semantic"
        return lookup.entry.answer

    def close(self) -> None:
        self.store.close()


def test_restart_reloads_the_index_and_replays_only_the_tail(tmp_path: Path) -> None:
    run = Run(tmp_path)
    run.remember("everest")
    run.remember("nile")
    assert run.engine.save_index() == 1  # one scope
    run.remember("paris")  # after the last save: the process "crashes" before another
    run.close()

    run = Run(tmp_path)
    load = run.engine.index_load
    assert load is not None
    assert (load.reloaded_scopes, load.reused, load.replayed, load.rebuilt) == (1, 2, 1, 0)
    assert [run.answer(n) for n in ("everest", "nile", "paris")] == ["8849 m", "6650 km", "Paris"]
    assert run.answer("sun") is None
    run.close()

    run = Run(tmp_path)  # nothing was saved since the replay: the same tail again
    assert run.engine.index_load is not None and run.engine.index_load.replayed == 1
    assert run.engine.save_index() == 1
    run.close()
    run = Run(tmp_path)
    assert run.engine.index_load is not None and run.engine.index_load.replayed == 0
    assert run.engine.save_index() == 0  # nothing changed: nothing written
    run.close()


def test_a_fresh_build_is_saved_at_once(tmp_path: Path) -> None:
    run = Run(tmp_path)
    run.remember("everest")
    run.close()  # no save: a crash
    assert not (tmp_path / "index").exists()
    run = Run(tmp_path)
    assert run.engine.index_load is not None and run.engine.index_load.rebuilt == 1
    run.close()
    run = Run(tmp_path)
    assert run.engine.index_load is not None
    assert (run.engine.index_load.reused, run.engine.index_load.rebuilt) == (1, 0)
    run.close()


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:100])


def _garbage(path: Path) -> None:
    path.write_bytes(b"\x00" * path.stat().st_size)


@pytest.mark.parametrize(
    "damage",
    ["flipped byte", "truncated", "zeroed", "missing", "key list flipped", "manifest garbage"],
)
def test_a_damaged_save_falls_back_to_a_rebuild(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    run = Run(tmp_path)
    for name in ("everest", "nile", "paris"):
        run.remember(name)
    run.engine.save_index()
    run.close()
    index_dir = tmp_path / "index"
    [usearch_file] = index_dir.glob("*.usearch")
    [keys_file] = index_dir.glob("*.keys.npy")
    if damage == "flipped byte":
        _flip(usearch_file)
    elif damage == "truncated":
        _truncate(usearch_file)
    elif damage == "zeroed":
        _garbage(usearch_file)
    elif damage == "missing":
        usearch_file.unlink()
    elif damage == "key list flipped":
        _flip(keys_file)
    else:
        (index_dir / "manifest.json").write_text("{not json")

    with caplog.at_level("WARNING", logger="boundgate.reuse"):
        run = Run(tmp_path)
    assert "rebuilding" in caplog.text
    load = run.engine.index_load
    assert load is not None and (load.reused, load.rebuilt) == (0, 3)
    assert [run.answer(n) for n in ("everest", "nile", "paris")] == ["8849 m", "6650 km", "Paris"]
    assert run.answer("sun") is None
    run.close()


@pytest.mark.parametrize(
    "other",
    [
        ReuseSettings(index_connectivity=8),
        ReuseSettings(index_dtype="f16"),
        ReuseSettings(index_dtype="f32"),
    ],
)
def test_an_index_saved_with_other_parameters_is_rebuilt(
    tmp_path: Path, other: ReuseSettings
) -> None:
    run = Run(tmp_path)
    run.remember("everest")
    assert run.engine.save_index() == 1
    run.close()
    run = Run(tmp_path, other)
    assert run.engine.index_load is not None and run.engine.index_load.rebuilt == 1
    assert run.answer("everest") == "8849 m"
    run.close()
    # search-time parameters do not change the saved graph: no rebuild for them
    run = Run(tmp_path, other.model_copy(update={"index_expansion_search": 200}))
    assert run.engine.index_load is not None and run.engine.index_load.reused == 1
    assert run.answer("everest") == "8849 m"
    run.close()


@pytest.mark.parametrize("dtype", ["f32", "f16", "i8"])
def test_similarities_are_exact_cosines_whatever_the_dtype(dtype: str) -> None:
    rng = np.random.default_rng(7)
    vecs = rng.standard_normal((300, 32)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    index = ScopedIndex(32, IndexParams.of(ReuseSettings(index_dtype=dtype)))
    index.add_many("s", list(range(300)), vecs)
    for i in range(0, 300, 30):
        q = vecs[i] + 0.05 * rng.standard_normal(32).astype(np.float32)
        q /= np.linalg.norm(q)
        found = index.search("s", q, 8)
        sims = [n.similarity for n in found]
        assert sims == sorted(sims, reverse=True)
        assert found[0].key == int(np.argmax(vecs @ q))
        for n in found:
            assert n.similarity == pytest.approx(float(vecs[n.key] @ q), abs=1e-5)
    index.remove(0)
    assert all(n.key != 0 for n in index.search("s", vecs[0], 8))


def test_an_index_of_another_embedder_is_rebuilt(tmp_path: Path) -> None:
    run = Run(tmp_path)
    run.remember("everest")
    assert run.engine.save_index() == 1
    run.close()
    manifest = tmp_path / "index" / "manifest.json"
    body = json.loads(manifest.read_text())
    body["embedder"] = "another-embedder"
    manifest.write_text(json.dumps(body))
    run = Run(tmp_path)
    assert run.engine.index_load is not None and run.engine.index_load.rebuilt == 1
    run.close()


def test_deleted_and_revoked_entries_never_come_back(tmp_path: Path) -> None:
    run = Run(tmp_path)
    everest, nile = run.remember("everest"), run.remember("nile")
    run.remember("paris")
    run.engine.save_index()
    asyncio.run(run.engine.forget([everest]))  # evicted: gone from the store
    asyncio.run(run.store.set_entry_document(nile, "doc_x", True))  # revoked: kept, never served
    run.close()  # no save after them

    run = Run(tmp_path)
    load = run.engine.index_load
    assert load is not None and (load.reused, load.dropped, load.replayed) == (1, 2, 0)
    assert len(run.engine.index) == 1
    assert [run.answer(n) for n in ("everest", "nile", "paris")] == [None, None, "Paris"]
    assert not run.lookup(QUESTIONS["everest"][0]).hit
    run.engine.save_index()
    run.close()
    run = Run(tmp_path)
    assert run.engine.index_load is not None and run.engine.index_load.dropped == 0
    assert [run.answer(n) for n in ("everest", "nile", "paris")] == [None, None, "Paris"]
    run.close()


def test_a_deleted_entrys_key_is_not_handed_out_again(tmp_path: Path) -> None:
    """Keys come from the store's counter (``new_entry_key``), so after the newest entry is
    deleted without a save its key does not come back for another question (it did when
    keys restarted above the highest one left): the saved vector of the old entry is
    dropped and never answers for the new one."""
    run = Run(tmp_path)
    run.remember("everest")
    nile = run.remember("nile")
    run.engine.save_index()
    asyncio.run(run.engine.forget([nile]))
    run.close()  # crash: the saved index still holds the nile entry under its key

    run = Run(tmp_path)
    assert run.remember("sun") > nile  # a fresh key, not the deleted entry's
    run.close()  # crash again, before any save

    run = Run(tmp_path)
    load = run.engine.index_load
    assert load is not None and (load.reused, load.dropped, load.replayed) == (1, 1, 1)
    assert [run.answer(n) for n in ("everest", "nile", "sun")] == ["8849 m", None, "5500 C"]
    run.close()


def _ask_new_question(base_url: str, question: str) -> None:
    """A deterministic question the gateway has not seen: answered fresh and stored."""
    r = httpx.post(
        base_url + "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": question}], "temperature": 0},
        timeout=60,
    )
    assert r.status_code == 200 and r.headers["x-boundgate-reuse"] == "miss"


def test_the_server_saves_at_shutdown_and_reloads_at_start(tmp_path: Path) -> None:
    settings = fake_settings(tmp_path, "[reuse]\nembedder = 'hash'\n")
    app = build_app(settings)
    with ThreadedServer(app) as srv:
        _ask_new_question(srv.base_url, "how tall is mount everest")
    assert (tmp_path / "data" / "index" / "manifest.json").exists()

    app = build_app(settings)
    with ThreadedServer(app) as srv:
        load = httpx.get(srv.base_url + "/v1/boundgate/stats", timeout=60).json()["reuse"][
            "index_load"
        ]
        assert (load["reused"], load["replayed"], load["rebuilt"]) == (1, 0, 0)


def test_the_server_saves_changed_indexes_while_serving(tmp_path: Path) -> None:
    """With ``index_save_interval_s`` the index is on disk before any shutdown: a crash
    would cost no replay of this entry."""
    settings = fake_settings(tmp_path, "[reuse]\nembedder = 'hash'\nindex_save_interval_s = 0.1\n")
    manifest = tmp_path / "data" / "index" / "manifest.json"
    with ThreadedServer(build_app(settings)) as srv:
        _ask_new_question(srv.base_url, "how deep is the mariana trench")

        def counts() -> list[int]:
            if not manifest.exists():
                return []
            scopes = json.loads(manifest.read_text())["scopes"]
            return [s["count"] for s in scopes.values()]

        wait_until(lambda: counts() == [1])
