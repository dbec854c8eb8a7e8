"""Approximate nearest neighbours, partitioned by reuse scope.

One usearch HNSW index per scope key: a lookup searches the index of its own scope and no
other, so entries of another tenant, model, conversation or parameter set cannot be returned
whatever their similarity. Vectors are unit length and stored as float32, so the reported
similarity is the exact cosine (usearch returns ``1 - cos``).

The indexes live in memory and are rebuilt from the store's embeddings at start-up; the
store is the durable copy.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
from usearch.compiled import ScalarKind
from usearch.index import Index

from .embedder import Vectors


@dataclass(frozen=True)
class Neighbour:
    key: int
    similarity: float


class ScopedIndex:
    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._indexes: dict[str, Index] = {}
        self._scope_of: dict[int, str] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._scope_of)

    def scopes(self) -> int:
        return len(self._indexes)

    def _index(self, scope: str) -> Index:
        idx = self._indexes.get(scope)
        if idx is None:
            idx = Index(ndim=self.dim, metric="cos", dtype=ScalarKind.F32, connectivity=16)
            self._indexes[scope] = idx
        return idx

    def add(self, scope: str, key: int, vector: Vectors) -> None:
        with self._lock:
            if key in self._scope_of:
                return
            self._index(scope).add(key, np.asarray(vector, dtype=np.float32))
            self._scope_of[key] = scope

    def add_many(self, scope: str, keys: list[int], vectors: Vectors) -> None:
        with self._lock:
            fresh = [i for i, k in enumerate(keys) if k not in self._scope_of]
            if not fresh:
                return
            self._index(scope).add(
                np.asarray([keys[i] for i in fresh], dtype=np.uint64),
                np.asarray(vectors[fresh], dtype=np.float32),
            )
            for i in fresh:
                self._scope_of[keys[i]] = scope

    def remove(self, key: int) -> None:
        with self._lock:
            scope = self._scope_of.pop(key, None)
            if scope is not None:
                self._indexes[scope].remove(key)

    def vector(self, key: int) -> Vectors | None:
        """The stored vector of an entry (None if it is not indexed)."""
        scope = self._scope_of.get(key)
        if scope is None:
            return None
        v = self._indexes[scope].get(key)
        return None if v is None else np.asarray(v, dtype=np.float32)

    def search(self, scope: str, vector: Vectors, k: int = 8) -> list[Neighbour]:
        idx = self._indexes.get(scope)
        if idx is None or len(idx) == 0:
            return []
        m = idx.search(np.asarray(vector, dtype=np.float32), min(k, len(idx)))
        return [
            Neighbour(int(key), 1.0 - float(dist))
            for key, dist in zip(m.keys, m.distances, strict=True)
        ]
