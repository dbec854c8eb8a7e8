"""The labelled prompt set the task classifier is trained and measured on, and its split.

``data/task_prompts.jsonl`` holds one ``{"text": ..., "task": ...}`` per line, written for
boundgate by hand (``data/README.md`` says who, when, how, the label definitions and the
licence). The split into a training part and a held-out part is a rule, not a field, so it
stays the same for everyone who reads the file: within each task, the prompts are ordered by
the SHA-256 of ``f"{SPLIT_SEED}:{text}"`` and the first ``round(n * HELD_OUT_FRACTION)`` are
held out. Stratified by task, deterministic, and a prompt keeps its side when others are
added unless it sits at the boundary.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import resources

from boundgate.routing.tasks import Task

SPLIT_SEED = 15  # issue #15
HELD_OUT_FRACTION = 0.2
PROMPTS_FILE = "data/task_prompts.jsonl"


@dataclass(frozen=True)
class LabelledPrompt:
    text: str
    task: Task
    held_out: bool


def prompts_bytes() -> bytes:
    """The shipped file as it is (its hash names the data a model was trained on)."""
    return resources.files("boundgate.routing").joinpath(PROMPTS_FILE).read_bytes()


def _split_key(text: str, seed: int) -> str:
    return hashlib.sha256(f"{seed}:{text}".encode()).hexdigest()


def split(
    rows: list[tuple[str, Task]],
    seed: int = SPLIT_SEED,
    held_out_fraction: float = HELD_OUT_FRACTION,
) -> list[LabelledPrompt]:
    """``rows`` in their order, each marked held out or not by the rule above."""
    held: set[str] = set()
    for task in Task:
        texts = sorted((t for t, k in rows if k is task), key=lambda t: _split_key(t, seed))
        held.update(texts[: round(len(texts) * held_out_fraction)])
    return [LabelledPrompt(text, task, text in held) for text, task in rows]


def task_prompts(seed: int = SPLIT_SEED) -> list[LabelledPrompt]:
    """Every shipped prompt, in file order, with its side of the split."""
    rows = []
    for line in prompts_bytes().decode("utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            rows.append((str(record["text"]), Task(record["task"])))
    return split(rows, seed)
