"""``/v1/embeddings`` reads its input into tokens once: the count its daily budget holds and
the vectors come from one tokenization (``Embedder.tokenize``, ``Embedder.embed_tokenized``).
It tokenized the input to count it, then again to embed it.

``test_an_embeddings_request_tokenizes_its_input_once`` needs ``pipeline.py``'s
``Gateway.embed`` to call ``tokenize`` and ``embed_tokenized`` (the report of this change
gives the lines); until then it fails."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from boundgate.assembly import build_app
from boundgate.reuse.embedder import HashEmbedder, OnnxEmbedder, Tokenized, Vectors
from helpers import Live, fake_settings


class CountingEmbedder(HashEmbedder):
    """The bag-of-words embedder, counting the times it reads texts into words: each
    ``count_tokens`` and ``embed`` of texts does; ``embed_tokenized`` embeds the words read
    already."""

    def __init__(self) -> None:
        super().__init__()
        self.readings = 0

    def count_tokens(self, texts: Sequence[str]) -> int:
        self.readings += 1
        return super().count_tokens(texts)

    def embed(self, texts: Sequence[str]) -> Vectors:
        self.readings += 1
        return super().embed(texts)

    def embed_tokenized(self, tokenized: Tokenized) -> Vectors:
        return super().embed(tokenized.texts)


def test_an_embeddings_request_tokenizes_its_input_once(tmp_path: Path) -> None:
    embedder = CountingEmbedder()
    settings = fake_settings(tmp_path, '[reuse]\nembedder = "hash"')
    settings.reuse.persist_index = False
    app = build_app(settings, embedder=embedder)
    with Live.in_process(app) as live:
        texts = ["a red fox", "the quick brown fox jumps", "over the lazy dog"]
        r = live.http.post("/v1/embeddings", json={"input": texts, "model": "all-MiniLM-L6-v2"})
        assert r.status_code == 200, r.text
        assert r.json()["usage"]["prompt_tokens"] == 3 + 5 + 4
        vectors = np.array([d["embedding"] for d in r.json()["data"]], dtype=np.float32)
        assert np.allclose(vectors, HashEmbedder().embed(texts))
        assert embedder.readings == 1  # was 2: counted, then read again to embed


def test_the_minilm_embedder_embeds_what_it_tokenized_as_it_embeds_texts() -> None:
    """One tokenization gives the count and the same vectors as ``embed``: for more texts than
    one batch, with a text cut at the model's window; a ``Tokenized`` another embedder made is
    read anew."""
    embedder = OnnxEmbedder(batch_size=4)
    texts = [f"question number {i} about rivers and towns" for i in range(9)]
    texts.append("a long text " * 100)  # cut at 128 tokens
    tokenized = embedder.tokenize(texts)
    assert tokenized.tokens == sum(len(e.ids) for e in embedder.tokenizer.encode_batch(texts))
    assert tokenized.tokens == embedder.count_tokens(texts)
    assert np.array_equal(embedder.embed_tokenized(tokenized), embedder.embed(texts))
    foreign = HashEmbedder().tokenize(texts)
    assert np.array_equal(embedder.embed_tokenized(foreign), embedder.embed(texts))
