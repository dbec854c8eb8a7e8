"""What kind of task a prompt is: the seam between the router and its classifier.

``Task`` names the six kinds the routing policy distinguishes (issue #15). A
``TaskClassifier`` maps a prompt's text to a ``TaskPrediction``; the real one reads the
embedder's vector, ``FakeTaskClassifier`` is a deterministic stand-in for tests (a fixed
mapping, or a default).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class Task(StrEnum):
    """The kinds of task a routing policy maps to a first rung and a reasoning allowance."""

    MATH = "math"  # mathematics and logic: arithmetic, proofs, puzzles, unit conversion
    CODE = "code"  # writing, explaining or fixing program code
    LOOKUP = "lookup"  # factual lookup: who, what, when, where, definitions
    REWRITE = "rewrite"  # summarise, rewrite, translate, correct a given text
    CREATIVE = "creative"  # stories, poems, slogans, jokes, letters
    CONVERSATION = "conversation"  # greetings, small talk, advice, opinions


@dataclass(frozen=True)
class TaskPrediction:
    """One prompt's task and the classifier's probability for it (in [0, 1]).

    ``probabilities`` holds every task's probability when the classifier gives them (they sum
    to 1), else only the chosen task's."""

    task: Task
    probability: float
    probabilities: Mapping[Task, float] = field(default_factory=dict)


class TaskClassifier(ABC):
    """Prompt text → ``TaskPrediction``. Synchronous and CPU-bound: callers off the event
    loop run it in a worker thread as they do the embedder.

    ``name`` identifies the classifier (and its version) in the ledger and stats."""

    name: str

    @abstractmethod
    def classify(self, text: str) -> TaskPrediction:
        """The task of ``text`` (a prompt: the last user message, or the whole prompt)."""


class FakeTaskClassifier(TaskClassifier):
    """A fixed mapping from exact texts to tasks; anything else gets ``default``."""

    name = "fake"

    def __init__(
        self, mapping: Mapping[str, Task] | None = None, default: Task = Task.CONVERSATION
    ) -> None:
        self.mapping = dict(mapping or {})
        self.default = default

    def classify(self, text: str) -> TaskPrediction:
        task = self.mapping.get(text, self.default)
        return TaskPrediction(task, 1.0, {task: 1.0})
