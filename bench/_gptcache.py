"""GPTCache itself, run side by side with boundgate on the same questions and embeddings.

GPTCache is installed into its own virtualenv (bench/.venv-gptcache) on first use and driven
through bench/_gptcache_worker.py, so its dependencies never mix with ours.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from _harness import side_venv

PACKAGES = ["gptcache==0.1.44", "faiss-cpu", "sqlalchemy", "numpy"]
WORKER = Path(__file__).resolve().parent / "_gptcache_worker.py"


def run_gptcache(
    stored: list[str],
    stored_vectors: np.ndarray,
    asked: list[str],
    asked_vectors: np.ndarray,
    thresholds: list[float],
) -> dict[float, np.ndarray]:
    """For each threshold, the index into ``stored`` GPTCache served per asked question
    (-1: a miss)."""
    python = side_venv("gptcache", PACKAGES) / "python"
    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(tmp) / "questions.npz"
        np.savez(
            npz,
            stored=np.array(stored),
            stored_vectors=stored_vectors.astype("float32"),
            asked=np.array(asked),
            asked_vectors=asked_vectors.astype("float32"),
        )
        out = subprocess.run(
            [str(python), str(WORKER), str(npz), ",".join(str(t) for t in thresholds)],
            check=True,
            stdout=subprocess.PIPE,
            text=True,
        ).stdout
    return {float(t): np.array(v) for t, v in json.loads(out).items()}
