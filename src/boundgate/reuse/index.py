"""Approximate nearest neighbours, partitioned by reuse scope.

One usearch HNSW index per scope key: a lookup searches the index of its own scope and no
other, so entries of another tenant, model, conversation or parameter set cannot be returned
whatever their similarity. Vectors are unit length. With ``dtype = "f32"`` the index holds
them as they are and the similarity it reports (usearch returns ``1 - cos``) is exact; with
``f16`` or ``i8`` the graph is walked with rounded vectors, so the float32 vectors are kept
beside it and the best candidates are rescored with exact dot products: the verifier's
threshold always compares exact cosines.

The store is the durable copy of every vector. ``index_files.IndexFiles`` saves these
indexes to the data dir so a restart reloads them instead of rebuilding; ``adopt`` takes a
reloaded index in, and ``dirty`` says which scopes changed since they were last saved.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np
from usearch.compiled import ScalarKind
from usearch.index import Index

from ..settings import ReuseSettings
from .embedder import Vectors

PARALLEL_ADD_MIN = 10_000  # batches at least this large are inserted on all cores


@dataclass(frozen=True)
class Neighbour:
    key: int
    similarity: float


@dataclass(frozen=True)
class IndexParams:
    """HNSW parameters. ``connectivity`` and ``dtype`` shape the saved graph (a saved index
    with others is rebuilt); ``expansion_add`` only affects how later entries are linked and
    ``expansion_search`` only how queries walk it, so both may change across restarts.

    They are the ``reuse.index_*`` settings (``of``), whose defaults were picked with
    ``bench/lookup.py --knobs`` at a million entries: see bench/RESULTS.md."""

    connectivity: int
    expansion_add: int
    expansion_search: int
    dtype: str

    @classmethod
    def of(cls, settings: ReuseSettings) -> IndexParams:
        """The ``reuse.index_*`` settings."""
        return cls(
            connectivity=settings.index_connectivity,
            expansion_add=settings.index_expansion_add,
            expansion_search=settings.index_expansion_search,
            dtype=settings.index_dtype,
        )

    @property
    def quantized(self) -> bool:
        return self.dtype != "f32"

    def build_params(self) -> dict[str, object]:
        """What a saved index must match to be reused."""
        return {"metric": "cos", "connectivity": self.connectivity, "dtype": self.dtype}


_SCALARS = {"f32": ScalarKind.F32, "f16": ScalarKind.F16, "i8": ScalarKind.I8}


class ScopedIndex:
    def __init__(self, dim: int, params: IndexParams) -> None:
        self.dim = dim
        self.params = params
        if self.params.dtype not in _SCALARS:
            raise ValueError(f"index dtype must be one of {sorted(_SCALARS)}")
        self._indexes: dict[str, Index] = {}
        self._scope_of: dict[int, str] = {}
        self._dirty: set[str] = set()
        self._exact: dict[int, bytes] = {}  # key → float32 vector, for rescoring (quantized)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._scope_of)

    def scopes(self) -> int:
        return len(self._indexes)

    def holds(self, scope: str) -> bool:
        """Whether ``scope`` has any vector to search."""
        idx = self._indexes.get(scope)
        return idx is not None and len(idx) > 0

    def new_index(self) -> Index:
        p = self.params
        return Index(
            ndim=self.dim,
            metric="cos",
            dtype=_SCALARS[p.dtype],
            connectivity=p.connectivity,
            expansion_add=p.expansion_add,
            expansion_search=p.expansion_search,
        )

    def fits(self, idx: Index) -> bool:
        """Whether a reloaded index was built with this index's dimension and parameters."""
        return (
            idx.ndim == self.dim
            and idx.connectivity == self.params.connectivity
            and idx.dtype == _SCALARS[self.params.dtype]
            and str(idx.metric_kind).lower().endswith("cos")
        )

    def set_expansion_search(self, ef: int) -> None:
        """Change how wide queries search (recall against latency); no rebuild needed."""
        with self._lock:
            self.params = replace(self.params, expansion_search=ef)
            for idx in self._indexes.values():
                idx.expansion_search = ef  # type: ignore[misc]  # settable, see adopt

    def _index(self, scope: str) -> Index:
        idx = self._indexes.get(scope)
        if idx is None:
            idx = self.new_index()
            self._indexes[scope] = idx
        return idx

    def add(self, scope: str, key: int, vector: Vectors) -> None:
        with self._lock:
            if key in self._scope_of:
                return
            v = np.asarray(vector, dtype=np.float32)
            self._index(scope).add(key, v)
            self._scope_of[key] = scope
            if self.params.quantized:
                self._exact[key] = v.tobytes()
            self._dirty.add(scope)

    def add_many(self, scope: str, keys: list[int], vectors: Vectors) -> None:
        with self._lock:
            fresh = [i for i, k in enumerate(keys) if k not in self._scope_of]
            if not fresh:
                return
            vs = np.asarray(vectors[fresh], dtype=np.float32)
            # usearch inserts a batch on all cores, and a graph built that way sometimes
            # loses a node's nearest neighbour for good (seen at 300 vectors: an exact
            # cos-0.96 match unreachable at search width 256, in about 1 build in 10); a
            # small batch gains nothing from threads, so it is inserted one by one
            threads = 0 if len(fresh) >= PARALLEL_ADD_MIN else 1
            self._index(scope).add(
                np.asarray([keys[i] for i in fresh], dtype=np.uint64), vs, threads=threads
            )
            for row, i in enumerate(fresh):
                self._scope_of[keys[i]] = scope
                if self.params.quantized:
                    self._exact[keys[i]] = vs[row].tobytes()
            self._dirty.add(scope)

    def adopt(self, scope: str, idx: Index, keys: list[int], exact: Mapping[int, bytes]) -> None:
        """Take in a reloaded index holding exactly ``keys`` as the scope's index (clean).
        ``exact``: the float32 vectors of those keys still in the store (for rescoring);
        the caller removes the others right after."""
        # usearch defines these setters apart from their getters, which mypy reads as
        # read-only properties; they are settable (usearch/index.py)
        idx.expansion_add = self.params.expansion_add  # type: ignore[misc]
        idx.expansion_search = self.params.expansion_search  # type: ignore[misc]
        with self._lock:
            old = self._indexes.pop(scope, None)
            if old is not None:
                for k in [k for k, s in self._scope_of.items() if s == scope]:
                    del self._scope_of[k]
            self._indexes[scope] = idx
            for k in keys:
                self._scope_of[k] = scope
                v = exact.get(k)
                if self.params.quantized and v is not None:
                    self._exact[k] = v
            self._dirty.discard(scope)

    def remove(self, key: int) -> None:
        with self._lock:
            scope = self._scope_of.pop(key, None)
            if scope is not None:
                self._indexes[scope].remove(key)
                self._exact.pop(key, None)
                self._dirty.add(scope)

    def vector(self, key: int) -> Vectors | None:
        """The stored vector of an entry (None if it is not indexed)."""
        scope = self._scope_of.get(key)
        if scope is None:
            return None
        exact = self._exact.get(key)
        if exact is not None:  # a quantized index keeps the float32 vector beside it
            return np.frombuffer(exact, dtype=np.float32).copy()
        v = self._indexes[scope].get(key)
        return None if v is None else np.asarray(v, dtype=np.float32)

    def search(self, scope: str, vector: Vectors, k: int = 8) -> list[Neighbour]:
        idx = self._indexes.get(scope)
        if idx is None or len(idx) == 0:
            return []
        q = np.asarray(vector, dtype=np.float32)
        if not self.params.quantized:
            m = idx.search(q, min(k, len(idx)), threads=1)
            return [
                Neighbour(int(key), 1.0 - float(dist))
                for key, dist in zip(m.keys, m.distances, strict=True)
            ]
        # rounded distances may misorder close candidates: take twice as many, rescore
        m = idx.search(q, min(2 * k, len(idx)), threads=1)
        keys = [int(key) for key in m.keys if int(key) in self._exact]
        if not keys:
            return []
        rows = np.frombuffer(b"".join(self._exact[key] for key in keys), dtype=np.float32)
        sims = rows.reshape(len(keys), -1) @ q
        best = np.argsort(-sims)[:k]
        return [Neighbour(keys[i], float(sims[i])) for i in best]

    # --- persistence support --------------------------------------------------------------
    def dirty(self) -> set[str]:
        """Scopes changed since they were built from scratch, adopted or marked saved."""
        return set(self._dirty)

    def keys_by_scope(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {s: [] for s in self._indexes}
        for k, s in self._scope_of.items():
            out[s].append(k)
        return out

    @contextmanager
    def frozen(self) -> Iterator[dict[str, Index]]:
        """Hold off adds and removes (searches go on) while the indexes are written out."""
        with self._lock:
            yield self._indexes

    def mark_saved(self, scopes: set[str]) -> None:
        self._dirty -= scopes
