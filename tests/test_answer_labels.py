"""Labels from answers only where a model's answers carry them (``reuse/answer_labels.py``):
the default local model's answers were measured to label paraphrases "same" no more often
than look-alikes, so its lookups are neither verified nor observed (issue #11)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from boundgate.assembly import build_app
from boundgate.backends.llama_cpp import file_sha256, packaged_model_path
from boundgate.reuse.answer_labels import Measurement, measurement, resolve
from boundgate.reuse.pair import OnnxPairScorer, packaged_model_dir
from boundgate.reuse.prior import Prior
from boundgate.reuse.scoring import PairModelScorer
from boundgate.reuse.verifier import Verdict, Verifier
from boundgate.settings import ReuseSettings
from boundgate.testing import ThreadedServer
from helpers import Live, fake_settings, wait_until


def test_the_packaged_models_answers_are_measured_uninformative() -> None:
    """The shipped measurement is keyed by the packaged model's version as the backend
    computes it (a new model file would not be read as measured), and resolves to off."""
    path = packaged_model_path()
    version = f"{path.name}@sha256:{file_sha256(path)[:16]}"
    m = measurement(version, 0.9)
    assert m is not None and m.answer_similarity == 0.9
    assert (m.paraphrases_same, m.paraphrases, m.lookalikes_same, m.lookalikes) == (
        16,
        150,
        16,
        150,
    )
    src = resolve("auto", m, 0.95)
    assert not src.in_force and "uninformative" in src.reason and "16 of 150" in src.reason
    # the nearest measured answer similarity is read
    near = measurement(version, 0.82)
    assert near is not None and near.answer_similarity == 0.8
    assert not resolve("auto", near, 0.95).in_force
    assert measurement("some-other.gguf@sha256:0000000000000000", 0.9) is None


def test_auto_keeps_the_labels_of_a_model_not_measured_or_measured_informative() -> None:
    assert resolve("auto", None, 0.95).in_force
    good = Measurement(0.9, 120, 150, 15, 150, "2026-12-03")
    assert good.z() > 10 and resolve("auto", good, 0.95).in_force
    # a gap the pairs cannot tell from chance is no information
    close = Measurement(0.9, 20, 150, 14, 150, "2026-12-03")
    assert 0 < close.z() < 1.645 and not resolve("auto", close, 0.95).in_force
    assert not resolve("off", good, 0.95).in_force
    assert resolve("on", close, 0.95).in_force
    assert Measurement(0.9, 0, 0, 0, 0, "x").z() == 0.0


@pytest.fixture(scope="module")
def prior() -> Prior:
    return Prior.load(packaged_model_dir() / "calibration.json", OnnxPairScorer(threads=1).name)


def test_without_answer_labels_a_proven_hit_is_served_unverified_and_nothing_observed(
    prior: Prior,
) -> None:
    """Verification would recompute only to compare answers that say nothing: a would-be
    hit the prior proves is served, one below the threshold is a miss (not observed), and
    without a proof (no prior, no labels) nothing is served."""
    warm = Verifier(ReuseSettings(), scorer=PairModelScorer(), prior=prior, rng=random.Random(1))
    for i in range(100):
        warm.note_lookup(0.9, pair=0.97) if i % 20 == 0 else warm.note_lookup(None)
    assert warm.estimate().decided_by == "prior"
    with_labels = [warm.decide(1, 0.9, pair=0.97) for _ in range(100)]
    assert Verdict.VERIFY in with_labels  # the prior alone vouches: 20 % verified
    assert all(warm.decide(1, 0.9, pair=0.97, labels=False) is Verdict.SERVE for _ in range(100))
    assert warm.decide(1, 0.9, pair=0.3) is Verdict.OBSERVE
    assert warm.decide(1, 0.9, pair=0.3, labels=False) is Verdict.MISS
    cold = Verifier(ReuseSettings(), scorer=PairModelScorer(), rng=random.Random(1))
    assert cold.decide(1, 0.9, pair=0.97) is Verdict.VERIFY
    assert cold.decide(1, 0.9, pair=0.97, labels=False) is Verdict.MISS


@pytest.mark.parametrize("answer_labels", ["auto", "on", "off"])
def test_a_model_whose_answers_do_not_label_is_served_on_the_prior(
    tmp_path: Path, answer_labels: str
) -> None:
    """Through HTTP, every would-be hit verified (verify_rate 1): with labels on (and auto for
    the fake model: not measured), the
    paraphrase is recomputed and labelled; with them off it is served from the store, the
    model is not called, no observation is recorded, and the stats say why."""
    settings = fake_settings(tmp_path, f'answer_labels = "{answer_labels}"')
    settings.reuse.verify_rate = 1.0
    first, para, other = (
        "How can I reset my password?",
        "How do I reset my password?",
        "How do I reset my router?",
    )
    app = build_app(settings)
    with ThreadedServer(app) as srv:
        live = Live(srv, app)
        fake = live.gateway.backends["fake"]
        fake.meanings = {first: "reset password", para: "reset password"}

        def ask(q: str) -> str:
            r = live.http.post(
                "/v1/chat/completions",
                json={"messages": [{"role": "user", "content": q}], "temperature": 0},
            )
            assert r.status_code == 200, r.text
            return r.headers["x-boundgate-reuse"]

        assert ask(first) == "miss"
        calls = fake.calls
        status = ask(para)
        assert ask(other) == "miss"

        def stats() -> dict[str, Any]:
            out: dict[str, Any] = live.http.get("/v1/boundgate/stats").json()["reuse"]
            return out

        if answer_labels == "on":  # labelled off the response path
            wait_until(lambda: bool(stats()["observations_by_source"]))
        got = stats()
        live.http.close()
    labels = got["answer_labels"]["fake"]
    if answer_labels == "off":
        assert status == "hit-semantic" and fake.calls == calls + 1  # only `other` computed
        assert labels == {"in_force": False, "reason": "answer_labels = off"}
        assert got["observations_by_source"] == {}
    else:
        assert status == "miss" and fake.calls == calls + 2
        reason = (
            "auto: not measured, its answers label"
            if answer_labels == "auto"
            else "answer_labels = on"
        )
        assert labels == {"in_force": True, "reason": reason}
