"""The blend scorer: max(pair, f(cosine)), f the shipped map of a cosine to the pair score of
equal precision (``training/blend_fit.py``), and its own prior
(``training/lookup_calibration.py --scorer blend``)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest

from boundgate.assembly import build_reuse
from boundgate.backends.base import Completion, Usage
from boundgate.clock import FakeClock
from boundgate.reuse.embedder import HashEmbedder
from boundgate.reuse.engine import Lookup, ReuseEngine
from boundgate.reuse.pair import FakePairScorer, packaged_model_dir
from boundgate.reuse.prior import Prior
from boundgate.reuse.scoring import (
    SCORERS,
    BlendScorer,
    CosineMap,
    Evidence,
    PairModelScorer,
    Scorer,
    packaged_cosine_map,
)
from boundgate.reuse.verifier import Observation, Verifier
from boundgate.settings import ReuseSettings
from boundgate.store import SQLiteStore
from helpers import engine_lookup, fake_settings

IDENTITY = CosineMap((0.0, 1.0), (0.0, 1.0))


def test_the_shipped_cosine_map_is_monotone_and_on_the_pair_scale() -> None:
    f = packaged_cosine_map()
    doc = json.loads((packaged_model_dir() / "blend.json").read_text())
    assert doc["source"].startswith("quora_val.csv")  # fitted on validation pairs only
    assert np.all(np.diff(f.cosine) > 0)
    grid = np.linspace(-1.0, 1.0, 4001)
    values = np.array([f(c) for c in grid])
    assert np.all(np.diff(values) >= 0)  # a higher cosine never scores lower
    assert values.min() >= 0.0 and values.max() <= 1.0
    # a near-identical pair is as precise as a high pair score; a loose one is not
    assert f(0.999) >= 0.9 > f(0.8)


def test_a_cosine_map_refuses_knots_that_would_make_f_fall() -> None:
    with pytest.raises(ValueError, match="must not fall"):
        CosineMap((0.7, 0.8, 0.9), (0.1, 0.5, 0.4))
    with pytest.raises(ValueError, match="must rise"):
        CosineMap((0.7, 0.7), (0.1, 0.2))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        CosineMap((0.7, 0.9), (0.1, 1.2))


def test_the_blend_is_the_higher_of_the_pair_score_and_the_mapped_cosine() -> None:
    f = CosineMap((0.7, 0.9, 1.0), (0.0, 0.5, 0.95))
    blend = BlendScorer(f)
    assert blend.score(Evidence(0.95, 0.0, 0.2)) == pytest.approx(0.725)  # f wins
    assert blend.score(Evidence(0.95, 0.0, 0.9)) == pytest.approx(0.9)  # the pair wins
    assert blend.score(Evidence(0.6, 0.0, 0.3)) == pytest.approx(0.3)  # below the knots: f = 0
    assert blend.score(Evidence(1.0, 0.0, None)) == pytest.approx(0.95)  # unscored: cosine only
    # never below the pair score alone, and equal to it where f is lower
    pair = PairModelScorer()
    for cos in np.linspace(0.7, 1.0, 31):
        for p in np.linspace(0.0, 1.0, 11):
            e = Evidence(float(cos), 0.0, float(p))
            assert blend.score(e) == pytest.approx(max(pair.score(e), f(float(cos))))
    assert SCORERS["blend"] is BlendScorer and BlendScorer().name == "blend"


def _prior(dup: list[float], non: list[float], lookups: int) -> Prior:
    return Prior(tuple(sorted(dup)), tuple(sorted(non)), "test", "fake", lookups)


def test_the_verifier_takes_the_blends_prior_as_blend_scores() -> None:
    """The pair model's calibration holds pair probabilities, which a scorer reads as evidence;
    the blend's holds blend scores, taken as they are (a cosine map that lifts low scores
    must not lift the prior's)."""
    lifting = BlendScorer(CosineMap((0.0, 1.0), (0.5, 0.5)))  # f = 0.5 everywhere
    prior = _prior([0.2, 0.96, 0.97], [0.1, 0.3], lookups=10)
    v = Verifier(ReuseSettings(), scorer=lifting, prior=prior)
    assert v.prior is not None and v.prior.duplicates == prior.duplicates
    assert v.prior.non_duplicates == prior.non_duplicates

    class Lifted(Scorer):  # a scorer without a prior of its own reads pair probabilities
        name = "lifted"

        def score(self, e: Evidence) -> float:
            return 0.5 if e.pair is None else max(0.5, e.pair)

    w = Verifier(ReuseSettings(), scorer=Lifted(), prior=prior)
    assert w.prior is not None and w.prior.non_duplicates == (0.5, 0.5)


def test_a_gateway_with_the_blend_scorer_starts_from_the_blends_prior(tmp_path: Path) -> None:
    model = packaged_model_dir()
    blend_cal = Prior.load(model / "calibration_blend.json", "pair")
    pair_cal = Prior.load(model / "calibration.json", "pair")
    assert "--scorer blend" in blend_cal.source
    thresholds = {}
    for name, cal in (("blend", blend_cal), ("pair", pair_cal)):
        (tmp_path / name).mkdir()
        settings = fake_settings(tmp_path / name, f'[reuse]\nembedder = "hash"\nscorer = "{name}"')
        store = SQLiteStore(tmp_path / f"{name}.db")
        store.open()
        engine = build_reuse(settings, store, FakeClock(start=1_800_000_000.0), HashEmbedder())
        v = engine.verifier
        assert v.scorer.name == name and engine.pair_scorer is not None
        assert v.prior is not None and v.prior.source == cal.source
        assert v.prior.duplicates == cal.duplicates  # on the scorer's scale as written
        # the fresh threshold is the one its own prior proves
        assert v.threshold == Verifier(ReuseSettings(), scorer=v.scorer, prior=cal).threshold
        assert v.estimate().decided_by == "prior"
        thresholds[name] = v.threshold
        store.close()
    assert 0.7 < thresholds["blend"] <= 1.0


def test_the_lookup_takes_the_survivor_with_the_best_blend_score(tmp_path: Path) -> None:
    """The pair model prefers one survivor, the cosine another: the blend's candidate is the
    one its score ranks first, and the pair scorer's the pair model's first."""
    asked = "reset password account now please tell"
    close, paired = "reset password account now please", "reset password account now"
    embedder = HashEmbedder()
    va, vc, vp = embedder.embed([asked, close, paired])
    cos_close, cos_paired = float(va @ vc), float(va @ vp)
    assert cos_close > 0.85 and cos_paired > 0.7 and cos_close > cos_paired
    rule = {close: 0.3, paired: 0.6}
    chosen = {}
    for scorer in (BlendScorer(IDENTITY), PairModelScorer()):
        verifier = Verifier(
            ReuseSettings(error_bound=0.9, verify_rate=0.0, min_observations=1),
            scorer=scorer,
        )
        verifier.add(Observation(0.9, True, "verify", None, pair=0.99))
        store = SQLiteStore(tmp_path / f"{scorer.name}.db")
        store.open()
        e = ReuseEngine(
            store=store,
            embedder=embedder,
            verifier=verifier,
            settings=ReuseSettings(pair_candidates=4),
            rebind_window_s=3600.0,
            clock=FakeClock(start=1_800_000_000.0),
            pair_scorer=FakePairScorer(lambda a, b: rule.get(b, 0.0)),
        )

        async def run(e: ReuseEngine = e) -> Lookup:
            await e.load()
            for q in (close, paired):
                done = Completion(f"answer to {q}", "stop", Usage(3, 3))
                await e.remember(
                    await engine_lookup(e, q),
                    done,
                    tenant="t",
                    model="m",
                    model_version="v",
                    cost_wh=0.1,
                    cost_gco2=0.05,
                )
            return await engine_lookup(e, asked)

        got = asyncio.run(run())
        meta = got.entry.query if got.entry is not None else None
        meta = meta or (got.candidate.query if got.candidate is not None else None)
        chosen[scorer.name] = (meta, got.pair)
        store.close()
    assert chosen["blend"] == (close, pytest.approx(0.3))
    assert chosen["pair"] == (paired, pytest.approx(0.6))
