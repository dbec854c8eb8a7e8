"""Runs inside bench/.venv-gptcache: GPTCache itself, fed boundgate's embeddings.

Not imported by boundgate. Reads an .npz (stored questions and their vectors, asked questions
and theirs), and for each similarity threshold builds a fresh GPTCache with its documented
default pieces (SQLite cache store, faiss vector store, SearchDistanceEvaluation; capacity
raised above the number of stored questions so nothing is evicted), `put`s
every stored question with its index as the answer, then `get`s every asked question. Prints
JSON: {threshold: [index of the answer served, or -1 on a miss, per asked question]}.

The embedding function is the only part swapped: GPTCache's default ONNX model is fetched from
the Hugging Face hub at run time, which this project does not allow, so it gets the vectors
boundgate's own all-MiniLM-L6-v2 int8 embedder produced for the same texts.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from gptcache import Cache, Config
from gptcache.adapter.api import get, put
from gptcache.manager import CacheBase, VectorBase, get_data_manager
from gptcache.processor.pre import get_prompt
from gptcache.similarity_evaluation.distance import SearchDistanceEvaluation


def main() -> None:
    data = np.load(sys.argv[1], allow_pickle=False)
    thresholds = [float(t) for t in sys.argv[2].split(",")]
    stored = [str(s) for s in data["stored"]]
    asked = [str(s) for s in data["asked"]]
    vectors = {t: v for t, v in zip(stored, data["stored_vectors"], strict=True)}
    vectors.update(zip(asked, data["asked_vectors"], strict=True))
    dim = int(data["stored_vectors"].shape[1])

    def embed(text: str, **_: object) -> np.ndarray:
        return np.asarray(vectors[text], dtype="float32")

    out: dict[str, list[int]] = {}
    work = Path(sys.argv[1]).parent  # removed by the caller; GPTCache flushes at exit
    for t in thresholds:
        tmp = work / f"threshold-{t}"
        tmp.mkdir()
        cache = Cache()
        cache.init(
            pre_embedding_func=get_prompt,
            embedding_func=embed,
            data_manager=get_data_manager(
                CacheBase("sqlite", sql_url=f"sqlite:///{tmp / 'cache.db'}"),
                VectorBase("faiss", dimension=dim, index_path=str(tmp / "faiss.index")),
                # GPTCache evicts beyond 1000 entries by default; keep all, as boundgate does
                # here, so the comparison is of the reuse decision, not of capacity
                max_size=len(stored) + 1,
            ),
            similarity_evaluation=SearchDistanceEvaluation(),
            config=Config(similarity_threshold=t),
        )
        for i, q in enumerate(stored):
            put(q, str(i), cache_obj=cache)
        served = []
        for q in asked:
            answer = get(q, cache_obj=cache)
            served.append(int(answer) if answer is not None else -1)
        out[str(t)] = served
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
