"""Right-sizing (issue #15): energy per request and accuracy, always-top-rung vs ``model: "auto"``.

A mixed workload of 100 requests: arithmetic (30) and unit conversions (20) with known numeric
answers, capitals from a bundled table (30, ``data/routing_facts.tsv``), and creative (10) and
rewrite (10) prompts without one. Each arm sends the same requests through a real gateway
(HTTP, SQLite ledger, reuse off so every request is generated) and reads energy from the
ledger.

Arms (``--arm``, a name is ``<policy>-<classifier>[-nolp]``):

- ``top``: every request names the ladder's top rung;
- policy ``auto``: the built-in policy table (mathematics and lookups start at rung 1, the
  other tasks at the bottom rung); ``bottom``: every task starts at the bottom rung (the
  built-in policy before this benchmark); ``tuned``: lookups start at rung 1, mathematics at
  the bottom;
- classifier ``oracle``: the workload's own task labels (``FakeTaskClassifier``);
  ``real``: the gateway's own classifier (``EmbeddingTaskClassifier``, MiniLM + the shipped
  linear layer, built by the gateway as for any user); ``unclassified``: none (every request
  follows ``routing.unclassified``, the bottom rung);
- ``-nolp``: the log-probability trigger off (``routing.escalate_on`` without ``logprob``);
  without it the trigger is on for the tasks whose policy applies it (mathematics and
  lookups), with the threshold shipped for SmolLM2's weights
  (``routing/data/logprob_thresholds.json``). The scripted rungs report no log-probabilities,
  so on the ``fake`` ladder the trigger never fires.

Ladders (``--ladder``):

- ``fake``: three scripted ``FakeBackend`` rungs standing in for upstream models of 0.135 B, 8 B
  and 70 B parameters, metered by the per-token estimate (EcoLogits via ``TokenEstimateMeter``,
  PUE 1.2). Their error profile is *scripted* (see ``tiny``/``medium``/``large`` below): the
  small rung is right on easy arithmetic and well-known capitals, wrong or refusing elsewhere,
  rambling on some conversions; the medium rung refuses the four rarest capitals; the top rung
  is always right. So this arm measures the gateway's mechanism (policy, checks, escalation,
  accounting) under that profile, not any model's quality.
- ``smollm2``: the real SmolLM2-135M (llama.cpp, this machine's meter) as the bottom rung under
  the scripted 8 B and 70 B fakes: its answers and its energy are real.

Accuracy is the share of known-answer requests whose answer contains the expected number
(commas removed) or capital (accents folded). Energy is the ledger's central Wh, per request.

Run: ``PYTHONPATH=src python bench/routing.py --ladder fake --ladder smollm2``.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import random
import re
import sys
import tempfile
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from boundgate.assembly import build_app
from boundgate.backends.base import Backend
from boundgate.backends.fake import FakeBackend
from boundgate.routing.tasks import FakeTaskClassifier, Task
from boundgate.settings import load_settings
from boundgate.testing import ThreadedServer

FACTS = Path(__file__).resolve().parent / "data" / "routing_facts.tsv"
MAX_TOKENS = 48  # limits.default_max_tokens: requests set none, so a run to it escalates


@dataclass(frozen=True)
class Item:
    prompt: str
    kind: str  # arith | convert | fact | creative | rewrite
    task: Task
    answer: str | None  # the known answer, if any
    easy: bool = False  # arith: a sum of two numbers below 50
    rank: int = 0  # fact: how well known (1 = best)


def _h(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


def facts() -> list[tuple[str, str, int]]:
    lines = [ln for ln in FACTS.read_text().splitlines() if ln and not ln.startswith("#")]
    rows = list(csv.DictReader(lines, delimiter="\t"))
    return [(r["country"], r["capital"], int(r["rank"])) for r in rows]


def workload(seed: int = 15) -> list[Item]:
    rng = random.Random(seed)
    items: list[Item] = []
    for i in range(30):
        if i % 2 == 0:
            a, b = rng.randint(2, 49), rng.randint(2, 49)
            items.append(Item(f"What is {a} plus {b}?", "arith", Task.MATH, str(a + b), True))
        else:
            a, b = rng.randint(13, 99), rng.randint(13, 99)
            items.append(Item(f"What is {a} times {b}?", "arith", Task.MATH, str(a * b)))
    units = [
        ("centimetres", "metres", 100),
        ("grams", "kilograms", 1000),
        ("minutes", "hours", 60),
        ("metres", "kilometres", 1000),
        ("seconds", "minutes", 60),
    ]
    for i in range(20):
        small, big, factor = units[i % len(units)]
        x = rng.randint(2, 40)
        items.append(
            Item(f"How many {small} are in {x} {big}?", "convert", Task.MATH, str(x * factor))
        )
    table = facts()
    for country, capital, rank in rng.sample(table, 30):
        items.append(
            Item(f"What is the capital of {country}?", "fact", Task.LOOKUP, capital, rank=rank)
        )
    topics = ["rain", "the sea", "autumn", "a city at night", "a cat", "mountains", "coffee",
              "the moon", "a train", "spring"]  # fmt: skip
    for t in topics:
        items.append(Item(f"Write a haiku about {t}.", "creative", Task.CREATIVE, None))
    sentences = ["gonna be late, sorry", "the meeting got moved to friday", "pls send the file",
                 "we dont have the budget for it", "can u check the numbers", "its broken again",
                 "thx for the help yesterday", "lets talk tmrw", "the report is kinda long",
                 "who owns this task"]  # fmt: skip
    for s in sentences:
        items.append(Item(f"Rewrite this more formally: {s}", "rewrite", Task.REWRITE, None))
    return items


# --- the scripted rungs -------------------------------------------------------------------


def scripted(items: list[Item], size: str) -> Callable[[str], str]:
    """The answer function of a scripted rung: ``tiny`` (0.135 B), ``medium`` (8 B) or
    ``large`` (70 B, always right)."""
    by_prompt = {it.prompt: it for it in items}
    capitals = [c for _, c, _ in facts()]

    def right(it: Item) -> str:
        if it.kind == "fact":
            return f"The capital is {it.answer}."
        if it.kind == "creative":
            return "Soft words fall and fade, a small scene held in three short lines."
        if it.kind == "rewrite":
            return "Certainly. Here is a more formal version of the sentence."
        return f"The answer is {it.answer}."

    def answer(prompt: str) -> str:
        it = by_prompt[prompt]
        h = _h(size + prompt) % 100
        if size == "large":
            return right(it)
        if size == "medium":
            if it.kind == "fact" and it.rank > 36:
                return "I'm sorry, but I can't answer that reliably."
            return right(it)
        # tiny
        if it.kind == "arith" and not it.easy:
            if h < 50:
                return f"The answer is {int(it.answer or 0) + h % 9 + 1}."  # confidently wrong
            return "I'm not sure I can answer that."
        if it.kind == "convert" and h >= 60:
            return " ".join(["Well, to convert this we first consider the units"] * 8)  # rambles
        if it.kind == "fact" and it.rank > 20:
            if h < 50:
                return f"I don't know the capital of {prompt.split(' of ')[-1].rstrip('?')}."
            return f"The capital is {capitals[h % len(capitals)]}."  # maybe wrong
        return right(it)

    return answer


# --- scoring ------------------------------------------------------------------------------


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()


def correct(it: Item, text: str) -> bool:
    assert it.answer is not None
    if it.kind == "fact":
        return _fold(it.answer) in _fold(text)
    numbers = re.findall(r"-?\d+(?:\.\d+)?", text.replace(",", ""))
    return any(float(n) == float(it.answer) for n in numbers)


# --- running ------------------------------------------------------------------------------

CONFIG = """
[server]
data_dir = "{data}"
grid_zone = "DE-LU"

[limits]
default_max_tokens = {max_tokens}
queue_size = 200

[reuse]
enabled = false
embedder = "{embedder}"

[routing]
escalate_on = {escalate_on}

[dashboard]
enabled = false

[routing.ladders]
default = ["{bottom}", "medium", "large"]

{policy}

[models.{bottom}]
backend = "{bottom_backend}"
default = true
params_b = 0.135
{bottom_extra}

[models.medium]
backend = "fake"
params_b = 8

[models.large]
backend = "fake"
params_b = 70
"""

POLICIES = {
    # the built-in policy: mathematics and lookups from rung 1 (with the log-probability
    # check), creative, rewrite, code and conversation from rung 0
    "default": "",
    # every task from the bottom rung (the built-in policy before this benchmark decided it)
    "bottom": """
[routing.policy.math]
first_rung = 0
reasoning = true
logprob = true

[routing.policy.lookup]
first_rung = 0
logprob = true
""",
    # lookups from rung 1, mathematics from the bottom
    "tuned": """
[routing.policy.math]
first_rung = 0
reasoning = true
logprob = true
""",
}


def build(
    tmp: Path, ladder: str, items: list[Item], policy: str, classifier: str, logprob: bool
) -> tuple[Any, dict[str, Backend]]:
    bottom = "tiny" if ladder == "fake" else "smollm2-135m"
    triggers = ["empty", "length", "refusal", "error"] + (["logprob"] if logprob else [])
    text = CONFIG.format(
        data=tmp / "data",
        max_tokens=MAX_TOKENS,
        bottom=bottom,
        bottom_backend="fake" if ladder == "fake" else "llama_cpp",
        # one thread: on a shared 2-core machine llama.cpp's second thread mostly waits
        bottom_extra="" if ladder == "fake" else "n_ctx = 512\nn_threads = 1",
        policy=POLICIES[policy],
        # without the MiniLM embedder the gateway builds no classifier (unclassified)
        embedder="hash" if classifier == "unclassified" else "minilm",
        escalate_on=json.dumps(triggers),
    )
    (tmp / "b.toml").write_text(text)
    settings = load_settings(tmp / "b.toml")
    backends: dict[str, Backend] = {}
    for name, size, params in (("medium", "medium", 8.0), ("large", "large", 70.0)):
        fb = FakeBackend(name, params_b=params, answers=scripted(items, size))
        fb.remote = True  # stands in for an upstream model: metered by the per-token estimate
        backends[name] = fb
    if ladder == "fake":
        tiny = FakeBackend("tiny", params_b=0.135, answers=scripted(items, "tiny"))
        tiny.remote = True
        backends = {"tiny": tiny, **backends}
    else:
        from boundgate.assembly import build_backend

        backends = {bottom: build_backend(bottom, settings.models[bottom], settings), **backends}
    # "real" and "unclassified": None, so the gateway builds its own (or none, with "hash")
    oracle = FakeTaskClassifier({it.prompt: it.task for it in items})
    app = build_app(
        settings, backends=backends, task_classifier=oracle if classifier == "oracle" else None
    )
    return app, backends


@dataclass
class ArmResult:
    name: str
    wh: list[float]
    right: int
    known: int
    answered_by: dict[str, int]
    escalations: dict[str, int]
    tasks: dict[str, int]  # the task the gateway classified each request as
    methods: set[str]
    seconds: float
    by_kind: dict[str, list[int]] = field(default_factory=dict)  # kind → [right, known]


def parse_arm(arm: str) -> tuple[str, str, bool]:
    """``<policy>-<classifier>[-nolp]`` → (policy, classifier, log-probability trigger on)."""
    if arm == "top":
        return "default", "oracle", False
    parts = arm.split("-")
    policy = {"auto": "default"}.get(parts[0], parts[0])
    return policy, parts[1], parts[-1] != "nolp"


def run_arm(ladder: str, arm: str, items: list[Item]) -> ArmResult:
    policy, classifier, logprob = parse_arm(arm)
    model = "large" if arm == "top" else "auto"
    with tempfile.TemporaryDirectory() as d:
        app, _ = build(Path(d), ladder, items, policy, classifier, logprob)
        t0 = time.monotonic()
        with ThreadedServer(app) as srv, httpx.Client(base_url=srv.base_url, timeout=600) as http:
            result = ArmResult(arm, [], 0, 0, {}, {}, {}, set(), 0.0)
            for i, it in enumerate(items):
                if i % 10 == 0:
                    print(f"  {arm}: {i}/{len(items)}", file=sys.stderr, flush=True)
                body = {
                    "model": model,
                    "temperature": 0,
                    "seed": 1,
                    "messages": [{"role": "user", "content": it.prompt}],
                }
                r = http.post("/v1/chat/completions", json=body)
                r.raise_for_status()
                j = r.json()
                text = j["choices"][0]["message"]["content"]
                result.wh.append(float(j["boundgate"]["energy_wh"]))
                result.methods.add(j["boundgate"]["energy_method"])
                result.answered_by[j["model"]] = result.answered_by.get(j["model"], 0) + 1
                task = j["boundgate"].get("task")
                if task is not None:
                    key = "right" if task == str(it.task) else "wrong"
                    result.tasks[key] = result.tasks.get(key, 0) + 1
                for step in r.headers.get("x-boundgate-route", "").split(", "):
                    if "escalated=" in step:
                        reason = step.split("escalated=")[1]
                        result.escalations[reason] = result.escalations.get(reason, 0) + 1
                if it.answer is not None:
                    ok = correct(it, text)
                    result.known += 1
                    result.right += ok
                    kind = result.by_kind.setdefault(it.kind, [0, 0])
                    kind[0] += ok
                    kind[1] += 1
            # the ledger agrees with the responses (the ledger is what reports read)
            ledger = http.get("/v1/boundgate/ledger", params={"limit": 1000}).json()["data"]
            assert abs(sum(row["wh"] for row in ledger) - sum(result.wh)) < 1e-9
        result.seconds = time.monotonic() - t0
    return result


ARMS = (
    "top",
    "bottom-real-nolp",
    "bottom-real",
    "tuned-real",
    "auto-real-nolp",
    "auto-real",
    "auto-oracle",
    "auto-unclassified",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ladder", action="append", choices=["fake", "smollm2"])
    parser.add_argument("--arm", action="append", choices=ARMS, help="default: all")
    args = parser.parse_args()
    items = workload()
    for ladder in args.ladder or ["fake"]:
        print(f"\n### ladder: {ladder} ({len(items)} requests, "
              f"{sum(it.answer is not None for it in items)} with known answers)\n")  # fmt: skip
        print(
            "| arm | Wh/request | vs top | accuracy | vs top | by kind | answered by "
            "| escalations | task right | method | s |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        top: ArmResult | None = None  # the first arm is the reference: run "top" first
        for arm in args.arm or ARMS:
            print(f"running {ladder}/{arm} ...", file=sys.stderr)
            r = run_arm(ladder, arm, items)
            top = top or r
            per = sum(r.wh) / len(r.wh)
            top_per = sum(top.wh) / len(top.wh)
            acc = r.right / r.known
            top_acc = top.right / top.known
            by = ", ".join(f"{k} {v}" for k, v in sorted(r.answered_by.items()))
            esc = ", ".join(f"{k} {v}" for k, v in sorted(r.escalations.items())) or "–"
            kinds = ", ".join(f"{k} {a}/{n}" for k, (a, n) in sorted(r.by_kind.items()))
            tasks = r.tasks.get("right", 0)
            classified = f"{tasks}/{sum(r.tasks.values())}" if r.tasks else "–"
            print(
                f"| {arm} | {per:.4g} | {100 * per / top_per:.1f} % | {r.right}/{r.known} = "
                f"{100 * acc:.1f} % | {100 * acc / top_acc:.1f} % | {kinds} | {by} | {esc} | "
                f"{classified} | {'+'.join(sorted(r.methods))} | {r.seconds:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
