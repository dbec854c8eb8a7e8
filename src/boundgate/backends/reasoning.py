"""Counting and capping a local model's thinking, for reasoning models that write it between
``<think>`` and ``</think>`` (DeepSeek-R1, Qwen3 and their distillations).

:class:`ThinkBudget` watches the generated text piece by piece (one piece per token) and says
when the thinking has used its cap; the backend then stops, appends :data:`CLOSE_THINKING` to
what was generated and lets the model continue with the answer (budget forcing, as in
Muennighoff et al. 2025, "s1: Simple test-time scaling", arXiv:2501.19393).

Reasoning tokens are the tokens generated after ``<think>`` is complete, up to and including the
one that completes ``</think>``: so a cap of 0 ("none") cuts right after the opening tag, and a
request never counts more reasoning tokens than its cap.
"""

from __future__ import annotations

OPEN = "<think>"
CLOSE = "</think>"
CLOSE_THINKING = "\n</think>\n\n"  # appended when the cap cuts the thinking


class ThinkBudget:
    """Reasoning tokens of one generation, against a cap (None: count, never cut).
    ``thinking``: the prompt already opened the thinking (a template ending in ``<think>``),
    so generation starts inside it."""

    def __init__(self, cap: int | None, *, thinking: bool = False) -> None:
        self.cap = cap
        self.reasoning_tokens = 0
        self._text = ""
        self._opened = thinking
        self._closed = False

    @property
    def thinking(self) -> bool:
        return self._opened and not self._closed

    def feed(self, piece: str) -> bool:
        """Account one generated token's text; True when the thinking must be cut now (the
        cap is reached and ``</think>`` has not come)."""
        was_thinking = self.thinking
        # only a tag split across tokens needs what came before: keep a tag's length of it
        text = self._text + piece
        if not self._opened:
            at = text.find(OPEN)
            if at >= 0:
                self._opened = True
                text = text[at + len(OPEN) :]
                self._closed = CLOSE in text
        elif not self._closed:
            self._closed = CLOSE in text
        self._text = text[-len(CLOSE) :]
        if was_thinking:
            self.reasoning_tokens += 1
        return self.must_cut()

    def must_cut(self) -> bool:
        return self.thinking and self.cap is not None and self.reasoning_tokens >= self.cap

    def cut(self) -> None:
        """The backend appended :data:`CLOSE_THINKING`: thinking is over."""
        self._closed = True
