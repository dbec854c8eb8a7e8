"""Reuse quality: how many true paraphrases are reused, and how many requests get a wrong answer.

Drives boundgate's public HTTP API. The upstream is the in-package fake OpenAI-compatible
server, told which questions share a meaning (duplicate pairs, joined transitively), so each
meaning has its own distinct answer and a reused answer is *wrong* exactly when it differs
from the answer of the asked question's meaning.

Phase 1 asks every question1 (stored as misses); phase 2 asks every question2 and reads
``x-boundgate-reuse`` and the answer. Reported:

- recall: duplicates answered from the store with the right answer, over all duplicates;
- wrong-reuse rate: requests of phase 2 answered from the store with a wrong answer, over all
  phase-2 requests (vCache's definition of the error bound δ), and over non-duplicates;
- energy avoided: the gateway's ``x-boundgate-energy-avoided-wh`` summed, over the energy
  phase 2 would have spent without reuse;
- hard negatives: questions from the same file turned into their negation or antonym
  ("Is X safe?" → "Is X not safe?", "turn on" → "turn off"); serving the answer of the
  question it contradicts is wrong (another stored question's answer is counted apart: a
  generated negation can paraphrase another question of the file, "advantages" for a stored
  "benefits");
- hand-written contradictions (``tests/data/contradictions.tsv``, the list the guards were
  developed on, and ``contradictions_heldout.tsv``, written before the guards were extended
  and not used to develop them): after phase 2 the first side of each pair is stored and the
  second asked; serving the first side's answer is wrong.

With ``--mixed`` the contradictions arrive among the pairs instead of after them (first sides
shuffled into phase 1, second sides and the generated negatives into phase 2), so what the
verifier learns from them also shapes the paraphrases' recall; "wrong / all requests" is then
over every phase-2 request, contradictions included.

Side by side, on the same pairs and the same embeddings: GPTCache 0.1.44 itself (installed
into bench/.venv-gptcache; its SQLite store, faiss index and default SearchDistanceEvaluation)
at similarity thresholds 0.7/0.8/0.9, over the last message only. Only its embedding function
is swapped for boundgate's all-MiniLM-L6-v2 int8 vectors, since its default model downloads
from the Hugging Face hub at run time. GPTCache is slow to fill (about 25 ms per put or get
here), so it runs on the first ``--gptcache-pairs`` pairs; its decision rule is then applied
to all pairs. With that evaluator a threshold t serves a candidate when its squared L2
distance d² ≤ 4·(1 − t), i.e. cosine ≥ 2t − 1 for unit vectors (0.8 → cosine 0.6); the run
prints how often the rule and GPTCache itself agree. A plain cosine threshold of 0.95 is
listed for scale.

    python bench/reuse_quality.py --pairs ../shared/data/cache/quora_val.csv [--limit N]
        [--gptcache-pairs 1500]
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from _gptcache import run_gptcache

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "training"))

from pairdata import Components, flipped, read_review

from _harness import gateway_over_fake_upstream, gateway_over_local_model, settled, track
from boundgate.backends.fake import fake_answer
from boundgate.reuse.embedder import OnnxEmbedder
from boundgate.settings import DEFAULT_MODEL_NAME

AUX = re.compile(
    r"^(is|are|was|were|can|could|do|does|did|should|would|will|has|have)\s", re.IGNORECASE
)
SWAPS = [
    ("increase", "decrease"),
    ("enable", "disable"),
    ("turn on", "turn off"),
    ("before", "after"),
    ("best", "worst"),
    ("more", "less"),
    ("buy", "sell"),
    ("start", "stop"),
    ("advantages", "disadvantages"),
    ("legal", "illegal"),
    ("possible", "impossible"),
    ("good", "bad"),
    ("safe", "unsafe"),
    ("rich", "poor"),
]


def negate(q: str) -> str | None:
    """A contradicting question, or None if no simple rule applies."""
    m = AUX.match(q)
    if m:
        return q[: m.end()] + "not " + q[m.end() :]
    low = q.lower()
    for a, b in SWAPS:
        for x, y in ((a, b), (b, a)):
            hit = re.search(rf"\b{re.escape(x)}\b", low)
            if hit:
                return q[: hit.start()] + y + q[hit.end() :]
    return None


def read_contradictions(path: Path) -> list[tuple[str, str]]:
    """Pairs from a tab-separated file ("#" comments; a third column is a note)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    rows = [line.split("\t") for line in lines if line.strip() and not line.startswith("#")]
    return [(r[0], r[1]) for r in rows]


def load_pairs(path: Path, limit: int | None, seed: int) -> list[tuple[str, str, int]]:
    """CSV with question1,question2,is_duplicate; or GPTCache's JSON list of
    {"origin", "similar"} (all duplicates)."""
    if path.suffix == ".json":
        items = json.loads(path.read_text())
        rows = [(i["origin"].strip(), i["similar"].strip(), 1) for i in items]
    else:
        with path.open(newline="") as fh:
            rows = [
                (r["question1"].strip(), r["question2"].strip(), int(r["is_duplicate"]))
                for r in csv.DictReader(fh)
            ]
    rows = [r for r in rows if r[0] and r[1] and r[0] != r[1]]
    random.Random(seed).shuffle(rows)
    return rows[:limit] if limit else rows


RUNTIME_PACKAGES = ("onnxruntime", "tokenizers", "usearch", "numpy", "pystemmer", "pyspellchecker")


def runtime_versions() -> str:
    """The versions of the packages the reuse decisions run on, as "name version, …"."""
    from importlib.metadata import PackageNotFoundError, version

    def one(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "absent"

    return ", ".join(f"{name} {one(name)}" for name in RUNTIME_PACKAGES)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--pairs", type=Path, required=True)
    ap.add_argument("--limit", type=int, default=None, help="use the first N pairs (shuffled)")
    ap.add_argument(
        "--seed",
        type=int,
        default=0,
        help="orders the pairs and seeds the verifier's draws of would-be hits to verify",
    )
    ap.add_argument("--negatives", type=int, default=500, help="hard negatives to generate")
    ap.add_argument(
        "--scorer",
        choices=["pair", "blend", "density", "cosine"],
        default=None,
        help="reuse.scorer for the gateway (default: the setting's default)",
    )
    ap.add_argument(
        "--review",
        type=Path,
        default=Path(__file__).resolve().parent / "data" / "quora_val_label_review.tsv",
        help="pairs whose 'not duplicate' label was reviewed as wrong: the 'reviewed' figures "
        "count them as duplicates (the gateway runs on the raw labels either way)",
    )
    ap.add_argument(
        "--answer-reviewed",
        action="store_true",
        help="the fake upstream answers the pairs of --review with one answer, as an LLM "
        "would answer two texts that say the same: the gateway then learns from the reviewed "
        "meanings, and the raw figures equal the reviewed ones",
    )
    ap.add_argument(
        "--lookup-windows",
        type=int,
        nargs="+",
        default=None,
        help="reuse.lookup_windows for the gateway (default: the setting's default)",
    )
    ap.add_argument(
        "--prior-weight", type=float, default=None, help="reuse.prior_weight for the gateway"
    )
    ap.add_argument(
        "--prior-verify-rate",
        type=float,
        default=None,
        help="reuse.prior_verify_rate for the gateway",
    )
    ap.add_argument(
        "--no-prior",
        action="store_true",
        help="reuse.prior = false (the pair model without its offline calibration)",
    )
    ap.add_argument(
        "--contradictions",
        type=Path,
        action="append",
        default=None,
        help="tab-separated hand-written contradiction pairs (default: both lists in "
        "tests/data/); the first side is stored, the second asked: any reuse is wrong",
    )
    ap.add_argument(
        "--mixed",
        action="store_true",
        help="contradictions arrive among the pairs instead of after them: first sides "
        "shuffled into phase 1, second sides (and the generated negatives) into phase 2, so "
        "what the verifier learns from them shapes the paraphrases' recall",
    )
    ap.add_argument(
        "--gptcache-pairs",
        type=int,
        default=1500,
        help="pairs to run GPTCache itself on (0: skip it; its rule still runs on all pairs)",
    )
    ap.add_argument(
        "--local-model",
        action="store_true",
        help="the packaged local model writes the answers (the embedded default `make serve` "
        "runs) instead of the fake upstream; a reused answer is right when it is the answer "
        "the model wrote for a question of the asked one's meaning (slow: about 1 s per "
        "generated answer on 2 cores)",
    )
    ap.add_argument(
        "--max-tokens",
        type=int,
        default=48,
        help="with --local-model: max_tokens of every request",
    )
    ap.add_argument(
        "--answer-labels",
        choices=["auto", "on", "off"],
        default=None,
        help="models.<name>.answer_labels of the model writing the answers (default: the "
        "setting's default, auto)",
    )
    ap.add_argument(
        "--flip-endings",
        action="store_true",
        help="flip each question's closing punctuation with probability 1/2 (seeded; "
        "bench/pair_endings.py): endings that say nothing about the meaning, as in real "
        "traffic; --review pairs are matched on the texts as written",
    )
    ap.add_argument(
        "--settle",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="after each request, wait until its ledger row, budget and labels have landed "
        "(Gateway.settled), so the verifier learns in request order and a seeded run repeats "
        "its figures (default); --no-settle: labels land whenever their background tasks "
        "get there, as under live traffic, and runs with answer labels differ run to run",
    )
    args = ap.parse_args()

    pairs = load_pairs(args.pairs, args.limit, args.seed)
    # (as written, as asked): a question and its flipped ending share a meaning, so a text
    # whose ending was flipped in one pair and not in another is one question, not two
    as_written: list[tuple[str, str]] = []
    if args.flip_endings:
        coin = random.Random(args.seed + 2)
        flips = [[flipped(q) if coin.random() < 0.5 else q for q in (a, b)] for a, b, _ in pairs]
        as_written = [
            (q, f)
            for (a, b, _), fs in zip(pairs, flips, strict=True)
            for q, f in zip((a, b), fs, strict=True)
        ]
        pairs = [(fa, fb, y) for (fa, fb), (_, _, y) in zip(flips, pairs, strict=True)]
    comp = Components.of(pairs)
    for q, f in as_written:
        comp.union(q, f)
    negatives: list[tuple[str, str]] = []
    for q1, _, _ in pairs:
        n = negate(q1)
        if n and n != q1 and len(negatives) < args.negatives:
            negatives.append((q1, n))

    meanings = {q: comp.find(q) for q in comp.parent}
    reviewed: set[tuple[str, str]] = set()
    if args.review.exists():
        reviewed = {(a.strip(), b.strip()) for a, b in read_review(args.review)}
    rcomp = Components.of([(a, b, d or int((a, b) in reviewed)) for a, b, d in pairs])
    for a, b in [*reviewed, *as_written]:  # reviewed: also pairs met only by lookups
        rcomp.union(a, b)
    n_reviewed = sum(1 for a, b, d in pairs if not d and (a, b) in reviewed)
    if args.answer_reviewed:  # the fake upstream answers reviewed pairs alike
        meanings = {q: rcomp.find(q) for q in comp.parent}
    for _, n in negatives:
        meanings[n] = "negated:" + n
    data = Path(__file__).resolve().parent.parent / "tests" / "data"
    default_lists = [data / "contradictions.tsv", data / "contradictions_heldout.tsv"]
    lists = args.contradictions or default_lists
    contradictions = {path.name: read_contradictions(path) for path in lists}
    for name, found in contradictions.items():
        for a, b in found:
            meanings.setdefault(a, f"{name}:{a}")
            meanings.setdefault(b, f"{name}:{b}")

    extra = "[reuse]\n"
    extra += f'scorer = "{args.scorer}"\n' if args.scorer else ""
    extra += "prior = false\n" if args.no_prior else ""
    extra += f"lookup_windows = {args.lookup_windows}\n" if args.lookup_windows else ""
    extra += f"prior_weight = {args.prior_weight}\n" if args.prior_weight else ""
    if args.prior_verify_rate is not None:
        extra += f"prior_verify_rate = {args.prior_verify_rate}\n"
    labels = f'answer_labels = "{args.answer_labels}"\n' if args.answer_labels else ""
    if args.local_model and labels:
        extra += f'[models.{DEFAULT_MODEL_NAME}]\nbackend = "llama_cpp"\ndefault = true\n{labels}'
    gateway = (
        gateway_over_local_model(extra, seed=args.seed)
        if args.local_model
        else gateway_over_fake_upstream(meanings, extra, seed=args.seed, model_toml=labels)
    )
    # --local-model: the meanings of the questions each fresh answer was written for
    written: dict[str, set[str]] = {}

    def answers(text: str, q: str) -> bool:
        """Whether ``text`` is an answer for ``q``'s meaning."""
        if not args.local_model:
            return text == fake_answer(meanings[q])
        return meanings[q] in written.get(text, ())

    def meaning_served(text: str, q: str) -> str | None:
        """The meaning ``text`` answers: with --local-model, of the meanings it was written
        for (two questions may get one text), the one the reviewed labels join to ``q``'s
        if any."""
        if not args.local_model:
            return meaning_of.get(text)
        found = sorted(written.get(text, ()))
        joined = [m for m in found if rcomp.find(m) == rcomp.find(q)]
        return (joined or found or [None])[0]

    body: dict[str, Any] = {"temperature": 0}
    if args.local_model:
        body["max_tokens"] = args.max_tokens
    with gateway as (http, app):

        def ask(q: str) -> tuple[str, str, float, float]:
            r = http.post(
                "/v1/chat/completions",
                json={"messages": [{"role": "user", "content": q}], **body},
            )
            r.raise_for_status()
            if args.settle:
                settled(app)
            text = r.json()["choices"][0]["message"]["content"]
            if not r.headers["x-boundgate-reuse"].startswith("hit"):
                written.setdefault(text, set()).add(meanings[q])
            return (
                r.headers["x-boundgate-reuse"],
                text,
                float(r.headers.get("x-boundgate-energy-avoided-wh", 0.0)),
                float(r.headers["x-boundgate-energy-wh"]),
            )

        t0 = time.perf_counter()
        phase1_wh: dict[str, float] = {}
        first = [q1 for q1, _, _ in pairs]
        # phase-2 items: (pairs index, None) or (None, (list name, (stored, asked)))
        items: list[tuple[int | None, tuple[str, tuple[str, str]] | None]] = [
            (i, None) for i in range(len(pairs))
        ]
        if args.mixed:
            lists = {"hard negatives": negatives} | contradictions
            first += [a for name, found in contradictions.items() for a, _ in found]
            items += [(None, (name, ab)) for name, found in lists.items() for ab in found]
            mix = random.Random(args.seed + 1)
            mix.shuffle(first)
            mix.shuffle(items)
        for q in track(first, "phase 1: storing"):
            if q not in phase1_wh:
                phase1_wh[q] = ask(q)[3]
        mixed_wrong = {name: [0, 0] for name in ["hard negatives", *contradictions]}
        hits = right_dup = wrong = wrong_nondup = 0
        r_right_dup = r_wrong = r_wrong_nondup = 0  # with the reviewed labels
        meaning_of = {fake_answer(m): m for m in set(meanings.values())}
        avoided = spent = 0.0
        before = http.get("/v1/boundgate/stats").json()["reuse"]["outcomes"]
        trace: list[str] = []  # the threshold in force every 50 phase-2 requests
        for i, (index, contra_item) in enumerate(track(items, "phase 2: asking")):
            if i % 50 == 0:
                r = http.get("/v1/boundgate/stats").json()["reuse"]
                on = (
                    ""
                    if r.get("threshold_scorer") == r.get("scorer")
                    else f"({r.get('threshold_scorer')})"
                )
                trace.append(f"{r['threshold']:.3f}{on}")
            if contra_item is not None:  # --mixed: a contradiction among the pairs
                name, (a, b) = contra_item
                status, text, avoided_wh, wh = ask(b)
                spent += wh
                if status.startswith("hit") and not answers(text, b):
                    hits += 1
                    wrong += 1
                    r_wrong += 1
                    avoided += avoided_wh
                    mixed_wrong[name][0 if answers(text, a) else 1] += 1
                continue
            assert index is not None
            q1, q2, dup = pairs[index]
            status, text, avoided_wh, wh = ask(q2)
            served = status.startswith("hit")
            ok = answers(text, q2)
            if served:
                hits += 1
                avoided += avoided_wh
                if not ok:
                    wrong += 1
                    wrong_nondup += 0 if dup else 1
                elif dup:
                    right_dup += 1
                got = meaning_served(text, q2)
                r_ok = got is not None and rcomp.find(got) == rcomp.find(q2)
                if not ok:  # to read (and review the labels of): the asked and the served
                    print(
                        f"wrong served ({'reviewed ok' if r_ok else 'wrong'}): {q2!r} <- {got!r}",
                        file=sys.stderr,
                    )
                r_dup = dup or (q1, q2) in reviewed
                r_wrong += 0 if r_ok else 1
                r_wrong_nondup += 1 if not r_ok and not r_dup else 0
                r_right_dup += 1 if r_ok and r_dup else 0
            spent += wh
        after = http.get("/v1/boundgate/stats").json()["reuse"]["outcomes"]
        phase2 = {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}

        def contradicted(found: list[tuple[str, str]], label: str) -> tuple[int, int]:
            """Ask each second side: (served the first side's answer, served another)."""
            wrong = other = 0
            for a, b in track(found, label):
                status, text, _, _ = ask(b)
                if not status.startswith("hit") or answers(text, b):
                    continue
                if answers(text, a):
                    wrong += 1
                    print(f"wrong ({label}): {a!r} -> {b!r}", file=sys.stderr)
                else:  # another stored question's answer: its label says nothing here
                    other += 1
            return wrong, other

        if args.mixed:
            negated = (mixed_wrong["hard negatives"][0], mixed_wrong["hard negatives"][1])
            contra = {name: (mixed_wrong[name][0], mixed_wrong[name][1]) for name in contradictions}
        else:
            negated = contradicted(negatives, "hard negatives")
            contra = {}
            for name, found in contradictions.items():
                for a, _ in found:
                    ask(a)
                contra[name] = contradicted(found, name)
        stats = http.get("/v1/boundgate/stats").json()["reuse"]
        wall = time.perf_counter() - t0

    n = len(pairs)
    n_asked = len(items)  # phase-2 requests (pairs, and with --mixed the contradictions)
    n_dup = sum(d for _, _, d in pairs)
    n_non = n - n_dup

    # GPTCache's policy on the same embeddings, last message only
    emb = OnnxEmbedder(threads=2)
    q1s = list(dict.fromkeys(q1 for q1, _, _ in pairs))
    v1 = emb.embed(q1s)
    v2 = emb.embed([q2 for _, q2, _ in pairs])
    dup_arr = np.array([d for _, _, d in pairs], dtype=bool)

    def nearest(stored: list[str], vs: np.ndarray, asked: np.ndarray) -> tuple[Any, Any]:
        sims = asked @ vs.T
        best = sims.argmax(axis=1)
        return best, sims[np.arange(len(asked)), best]

    def row(name: str, hit: Any, served: Any, stored: list[str], m: int) -> str:
        """recall, wrong/all, wrong/non-duplicates over the first m pairs."""
        asked = pairs[:m]
        same = np.array(
            [
                comp.find(stored[j]) == comp.find(q2)
                for j, (_, q2, _) in zip(served, asked, strict=True)
            ]
        )
        dups = dup_arr[:m]
        rec = float((hit & same & dups).sum()) / max(1, int(dups.sum()))
        w = float((hit & ~same).sum()) / m
        wn = float((hit & ~same & ~dups).sum()) / max(1, int((~dups).sum()))
        return f"| {name} | {rec:.3f} | {w:.4f} | {wn:.4f} |"

    best, best_sim = nearest(q1s, v1, v2)
    rows = []
    agreement = []
    m = min(args.gptcache_pairs, n)
    if m:
        sub_q1 = list(dict.fromkeys(q1 for q1, _, _ in pairs[:m]))
        sub_v1 = v1[[q1s.index(q) for q in sub_q1]]
        sub_q2 = [q2 for _, q2, _ in pairs[:m]]
        got = run_gptcache(sub_q1, sub_v1, sub_q2, v2[:m], [0.7, 0.8, 0.9])
        sub_best, sub_sim = nearest(sub_q1, sub_v1, v2[:m])
        for t, served in got.items():
            hit = served >= 0
            rows.append(row(f"GPTCache itself, threshold {t} (first {m} pairs)", hit,
                            np.where(hit, served, 0), sub_q1, m))  # fmt: skip
            rule = sub_sim >= 2 * t - 1 - 1e-6
            agree = float(((rule == hit) & (~hit | (served == sub_best))).mean())
            agreement.append(f"{t}: {100 * agree:.2f} %")
    for t in (0.7, 0.8, 0.9):
        rows.append(
            row(f"GPTCache's rule at {t} (cosine ≥ {2 * t - 1:.1f}), all pairs",
                best_sim >= 2 * t - 1 - 1e-6, best, q1s, n)
        )  # fmt: skip
    rows.append(row("fixed cosine ≥ 0.95, all pairs", best_sim >= 0.95, best, q1s, n))

    print(f"\n# Reuse quality ({args.pairs.name}, {n} pairs: {n_dup} duplicates, {n_non} not)\n")
    # the same commit gave 0.215 one day and 0.194 the next from a venv installed afresh
    # (bench/RESULTS.md, forty-sixth session): the figures are the runtime's too
    print(f"runtime: {runtime_versions()}\n")
    print(
        f"boundgate run: {wall:.0f} s; final threshold {stats['threshold']:.3f} "
        f"(decided by {stats.get('threshold_decided_by')} on {stats.get('threshold_scorer')}; "
        f"prior {stats.get('prior')})\n"
    )
    print("| policy | recall on duplicates | wrong / all requests | wrong / non-duplicates |")
    print("|---|---:|---:|---:|")
    print(
        f"| boundgate (δ = {stats['error_bound']}, {stats['scorer']} scorer "
        f"{stats['scorer_parameters']}) | {right_dup / max(1, n_dup):.3f} | "
        f"{wrong / n_asked:.4f} | {wrong_nondup / max(1, n_non):.4f} |"
    )
    if reviewed:
        r_dups = n_dup + n_reviewed
        print(
            f"| boundgate, reviewed labels ({n_reviewed} non-duplicates of this run read as "
            f"duplicates) | {r_right_dup / max(1, r_dups):.3f} | {r_wrong / n_asked:.4f} | "
            f"{r_wrong_nondup / max(1, n_non - n_reviewed):.4f} |"
        )
    print("\n".join(rows))
    if agreement:
        print(
            "\nGPTCache itself vs its rule (cosine ≥ 2t − 1) on the same pairs, identical "
            f"decisions: {', '.join(agreement)}"
        )
    print(
        f"\nboundgate: {hits} of {n_asked} phase-2 requests served from the store; energy avoided "
        f"{avoided:.4f} Wh of {avoided + spent:.4f} Wh phase 2 would have used "
        f"({100 * avoided / max(1e-12, avoided + spent):.1f} %)."
    )
    print(
        f"hard negatives (negation/antonym of a stored question): {negated[0]} of "
        f"{len(negatives)} got the answer of the question they contradict "
        f"({negated[0] / max(1, len(negatives)):.4f}); {negated[1]} got another stored answer."
    )
    for name, found in contradictions.items():
        print(
            f"hand-written contradictions ({name}; "
            f"{'mixed into the phases' if args.mixed else 'stored after phase 2, then asked'}): "
            f"{contra[name][0]} of {len(found)} got the contradicted answer; "
            f"{contra[name][1]} got another stored answer."
        )
    print(f"phase 2 outcomes: {phase2}; threshold every 50 requests: {' '.join(trace)}")
    print(
        f"verifier: estimate {stats['error_rate_estimate']:.4f} "
        f"(CI {stats['error_rate_ci'][0]:.4f}-{stats['error_rate_ci'][1]:.4f}), "
        f"hit precision {stats['hit_precision']}, observations {stats['observations']}"
    )


if __name__ == "__main__":
    main()
