"""Saved ANN indexes: each scope's usearch index in the data dir, so a restart reloads it.

Building an HNSW graph is the slow part of start-up (minutes at a million entries); loading
a saved one is reading a file. The store stays the source of truth: a saved index is only a
head start, checked against the store before it is used.

Layout of ``<data_dir>/index/``::

    manifest.json          embedder, dimension, build parameters, and per scope: its files,
                           their sizes and CRC-32s, entry count and highest key
    <scope>.<n>.usearch    usearch's own file format (n: the save that wrote it)
    <scope>.<n>.keys.npy   (key, fingerprint) rows: fingerprint = CRC-32 of the entry's id

The fingerprints let start-up tell a key that still means the same entry from one the store
has since given to another entry (keys restart above the highest key left in the store), so
a stale vector can never answer for a new entry. Every file is written under a temporary
name, renamed to a name no earlier save used, and the manifest goes last: a crash leaves the
old manifest with its files or the new one with its files. A file that does not match its
manifest line (missing, truncated, corrupt, other parameters) costs a rebuild of that scope,
never a wrong answer.

Several worker processes sharing a data dir: one saves (the first to take ``saver.lock``,
an ``flock`` held for its life); the others skip saving, since their indexes hold the same
entries (each follows the store's change log). Loading needs no lock: a file replaced
while being read fails its checksum and costs a rebuild of its scope.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from usearch.index import Index

from .index import ScopedIndex

log = logging.getLogger("boundgate.reuse")

MANIFEST = "manifest.json"
FORMAT = 1

# directory → the descriptor of its saver.lock, held by this process. An flock belongs to
# the process (its open file), not to one IndexFiles: engines rebuilt in one process (a
# restart in tests, the CLI) stay the saver.
_SAVER_LOCKS: dict[Path, int] = {}


def fingerprint(entry_id: str) -> int:
    return zlib.crc32(entry_id.encode())


def _crc_of(path: Path) -> int:
    crc = 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 22):
            crc = zlib.crc32(chunk, crc)
    return crc


@dataclass
class Saved:
    """One scope's reloaded index and what it holds."""

    index: Index
    fingerprints: dict[int, int]  # key → fingerprint of the entry it was built from
    max_key: int


class IndexFiles:
    """Reads and writes the saved indexes of one ``ScopedIndex`` for one embedder."""

    def __init__(self, directory: Path, *, embedder: str, index: ScopedIndex) -> None:
        self.directory = directory
        self.embedder = embedder
        self.index = index
        self._files: dict[str, dict[str, Any]] = {}  # scope → its manifest entry, as on disk
        self._generation = 0

    def _header(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "embedder": self.embedder,
            "dim": self.index.dim,
            "params": self.index.params.build_params(),
        }

    # --- reading --------------------------------------------------------------------------
    def read(self) -> dict[str, Saved]:
        """Every saved scope whose files check out. Anything else is logged and left out."""
        self._files = {}
        path = self.directory / MANIFEST
        if not path.exists():
            return {}
        try:
            manifest = json.loads(path.read_text())
            scopes = manifest["scopes"]
            self._generation = int(manifest["generation"])
            header = {k: manifest[k] for k in ("format", "embedder", "dim", "params")}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("saved ANN index: unreadable manifest (%s); rebuilding from the store", exc)
            return {}
        if header != self._header():
            log.warning(
                "saved ANN index was built for %s, not %s; rebuilding from the store",
                header,
                self._header(),
            )
            return {}
        out: dict[str, Saved] = {}
        for scope, entry in scopes.items():
            try:
                saved = self._read_scope(entry)
            except Exception as exc:  # any failure means: rebuild this scope
                log.warning("saved ANN index of scope %s unusable (%s); rebuilding it", scope, exc)
                continue
            out[scope] = saved
            self._files[scope] = entry
        return out

    def _read_scope(self, entry: dict[str, Any]) -> Saved:
        index_path = self.directory / str(entry["file"])
        keys_path = self.directory / str(entry["keys"])
        for p, size, crc in (
            (index_path, entry["size"], entry["crc32"]),
            (keys_path, entry["keys_size"], entry["keys_crc32"]),
        ):
            if not p.exists():
                raise ValueError(f"{p.name} is missing")
            if p.stat().st_size != size:
                raise ValueError(f"{p.name} is {p.stat().st_size} bytes, expected {size}")
            if _crc_of(p) != crc:
                raise ValueError(f"{p.name} fails its checksum")
        rows = np.load(keys_path, allow_pickle=False)
        if rows.ndim != 2 or rows.shape[1] != 2 or len(rows) != entry["count"]:
            raise ValueError("key list does not match the manifest")
        idx = Index.restore(index_path)
        if idx is None or not self.index.fits(idx):
            raise ValueError("index parameters differ")
        if len(idx) != len(rows) or not np.all(idx.contains(rows[:, 0])):
            raise ValueError("index and key list disagree")
        keys = rows[:, 0].tolist()
        return Saved(idx, dict(zip(keys, rows[:, 1].tolist(), strict=True)), int(entry["max_key"]))

    # --- writing --------------------------------------------------------------------------
    def saver(self) -> bool:
        """Whether this process saves the directory's indexes: the first process to lock
        ``saver.lock`` does, for as long as it lives."""
        where = self.directory.resolve()
        if where in _SAVER_LOCKS:
            return True
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory / "saver.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        _SAVER_LOCKS[where] = fd
        return True

    def save(self, fingerprint_of: Callable[[int], int]) -> int:
        """Write the scopes changed since the last save, then the manifest. Returns the
        number of scopes written (0 when another process is the saver, see ``saver``).
        Adds and removes wait meanwhile; searches go on."""
        if not self.saver():
            return 0
        written = 0
        self._generation += 1
        with self.index.frozen() as indexes:
            keys_by_scope = self.index.keys_by_scope()
            dirty = self.index.dirty()
            files: dict[str, dict[str, Any]] = {}
            for scope, keys in keys_by_scope.items():
                if not keys:
                    continue
                if scope in dirty or scope not in self._files:
                    files[scope] = self._write_scope(scope, indexes[scope], keys, fingerprint_of)
                    written += 1
                else:
                    files[scope] = self._files[scope]
            manifest = {**self._header(), "generation": self._generation, "scopes": files}
            tmp = self.directory / (MANIFEST + ".tmp")
            with tmp.open("w") as fh:
                json.dump(manifest, fh, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.directory / MANIFEST)
            self.index.mark_saved(dirty)
            self._files = files
        self._remove_unlisted()
        return written

    def _write_scope(
        self, scope: str, idx: Index, keys: list[int], fingerprint_of: Callable[[int], int]
    ) -> dict[str, Any]:
        stem = f"{scope}.{self._generation}"
        index_name, keys_name = f"{stem}.usearch", f"{stem}.keys.npy"
        rows = np.array([(k, fingerprint_of(k)) for k in keys], dtype=np.uint64).reshape(-1, 2)
        tmp_index = self.directory / (index_name + ".tmp")
        tmp_keys = self.directory / (keys_name + ".tmp")
        idx.save(tmp_index)
        with tmp_keys.open("wb") as fh:
            np.save(fh, rows, allow_pickle=False)
        entry = {
            "file": index_name,
            "size": tmp_index.stat().st_size,
            "crc32": _crc_of(tmp_index),
            "keys": keys_name,
            "keys_size": tmp_keys.stat().st_size,
            "keys_crc32": _crc_of(tmp_keys),
            "count": len(keys),
            "max_key": max(keys),
        }
        os.replace(tmp_index, self.directory / index_name)
        os.replace(tmp_keys, self.directory / keys_name)
        return entry

    def _remove_unlisted(self) -> None:
        listed = {MANIFEST} | {
            name for e in self._files.values() for name in (e["file"], e["keys"])
        }
        for p in self.directory.iterdir():
            if p.name not in listed and (p.suffix in (".usearch", ".npy", ".tmp")):
                p.unlink(missing_ok=True)


@dataclass
class LiveScope:
    """A scope's entries as the store has them: the truth a saved index is checked against."""

    keys: list[int]
    fingerprints: list[int]
    vectors: list[bytes]  # float32, as stored


@dataclass
class IndexLoad:
    """What start-up did per scope: reloaded a saved index (then replayed the entries it
    lacked and dropped the ones the store no longer has) or built the index from scratch."""

    reloaded_scopes: int = 0
    reused: int = 0  # entries found in a saved index
    replayed: int = 0  # entries added on top of a saved index
    dropped: int = 0  # saved entries gone from the store (evicted, revoked, replaced)
    rebuilt_scopes: int = 0
    rebuilt: int = 0  # entries indexed from scratch
    # entries left out, to be indexed once re-embedded (``reembed.py``): their vector is
    # another embedder's, or they have none yet
    waiting: int = 0

    def summary(self) -> str:
        return (
            f"{self.reloaded_scopes} scopes reloaded ({self.reused} entries, "
            f"{self.replayed} replayed, {self.dropped} dropped), "
            f"{self.rebuilt_scopes} rebuilt ({self.rebuilt} entries), "
            f"{self.waiting} entries waiting to be re-embedded"
        )


def _matrix(vectors: list[bytes], dim: int) -> np.ndarray:
    return np.frombuffer(b"".join(vectors), dtype=np.float32).reshape(-1, dim)


def load_index(
    index: ScopedIndex, files: IndexFiles | None, live: Mapping[str, LiveScope]
) -> IndexLoad:
    """Fill ``index`` with the live entries, reusing saved indexes where they check out."""
    saved = files.read() if files is not None else {}
    out = IndexLoad()
    # first take in every saved index and drop what the store no longer has, so that a key
    # the store has since given to an entry of another scope is out of its old index ...
    for scope, entries in live.items():
        s = saved.get(scope)
        if s is None:
            continue
        want = dict(zip(entries.keys, entries.fingerprints, strict=True))
        exact = dict(zip(entries.keys, entries.vectors, strict=True))
        index.adopt(scope, s.index, list(s.fingerprints), exact)
        gone = [k for k, fp in s.fingerprints.items() if want.get(k) != fp]
        for k in gone:
            index.remove(k)
        out.reloaded_scopes += 1
        out.reused += len(s.fingerprints) - len(gone)
        out.dropped += len(gone)
    out.dropped += sum(len(s.fingerprints) for scope, s in saved.items() if scope not in live)
    # ... then add what each index lacks: the tail of a reloaded one, all of a rebuilt one
    for scope, entries in live.items():
        s = saved.get(scope)
        have = s.fingerprints if s is not None else {}
        fresh = [
            i
            for i, (k, fp) in enumerate(zip(entries.keys, entries.fingerprints, strict=True))
            if have.get(k) != fp
        ]
        if fresh:
            index.add_many(
                scope,
                [entries.keys[i] for i in fresh],
                _matrix([entries.vectors[i] for i in fresh], index.dim),
            )
        if s is None:
            out.rebuilt_scopes += 1
            out.rebuilt += len(fresh)
        else:
            out.replayed += len(fresh)
    return out
