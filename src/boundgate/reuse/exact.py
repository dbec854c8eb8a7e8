"""The exact map: the stored answers a question's exact key may be served, one per slot.

One exact key (scope + the question's exact form; the scope does not hold the request's
``max_tokens``) can need more than one answer, because what an answer may serve depends on
how it ended (``scope.answer_fits``):

- an answer that ended by itself (``stop``) with n tokens serves every request whose limit
  is above n (at exactly n the model stops at the limit: ``length``);
- an answer cut by its limit (``length``) at n tokens serves only requests whose limit is
  exactly n (the same model, greedy decoding: the same tokens up to the cut); it is filed
  at the limit that cut it (``engine.filed_tokens``: llama.cpp may run a token past it to
  finish a character).

So a key keeps one entry per *slot*: one natural answer (slot ``NATURAL``) and one cut
answer per limit (slot n). A new answer replaces only the entry in its own slot, the one
that serves the same requests: a client alternating ``max_tokens`` 12 and 13 on one question
hits with both once both answers are stored, instead of each answer evicting the other.
The entry a new answer displaces from its slot is forgotten and deleted (``ReuseEngine.remember``),
unless it is a bound document's, so one slot never piles up answers no exact lookup can reach.

Why slots rather than "keep the natural answer": a request whose limit is below the natural
answer's length can only be served a cut at its own limit; with one entry per key, storing
that cut would evict the natural answer (or not storing it would run the model on every
such request). The slots of a key are the limits that cut its answer (in practice the few
limits clients use below the natural answer's length) and every entry counts towards
``reuse.max_entries`` and its eviction like any other. A lookup tries the natural answer
first (complete, and it serves the most limits), then the cut at exactly the request's
limit; a lookup without a limit to check (``max_tokens`` 0) takes the natural answer, else
the newest cut.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

NATURAL = -1  # the slot of an answer that ended by itself (a cut's slot is its length ≥ 1)


def slot_of(finish_reason: str, completion_tokens: int) -> int:
    """The slot an answer fills: ``NATURAL``, or the token count it was cut at."""
    return completion_tokens if finish_reason == "length" else NATURAL


class ExactMap:
    """exact hash → {slot → (entry key, created)}. ``pinned`` says whether an entry is a
    bound document's answer, as it is now. Not thread-safe: the engine holds its lock around
    changes."""

    def __init__(self, pinned: Callable[[int], bool] = lambda key: False) -> None:
        self._slots: dict[str, dict[int, tuple[int, float]]] = {}
        self._pinned = pinned

    def put(self, exact: str, key: int, slot: int, created: float, *, newer: bool) -> None:
        """File entry ``key`` under ``exact`` in ``slot``. ``newer``: only if the slot is
        empty or holds an entry created no later than ``created`` (the newest answer wins,
        whatever order entries arrive in), and never over a bound document's answer but by
        another one: a ``no-cache`` request's fresh answer took a document's slot, and every
        exact repeat was served the unbound answer from then on, silently (a trial). Else
        unconditionally (a confirmed variant)."""
        slots = self._slots.setdefault(exact, {})
        prev = slots.get(slot)
        if (
            not newer
            or prev is None
            or (prev[1] <= created and (self._pinned(key) or not self._pinned(prev[0])))
        ):
            slots[slot] = (key, created)

    def holder(self, exact: str, slot: int) -> int | None:
        """The entry filed under ``exact`` in ``slot``, if any."""
        held = self._slots.get(exact, {}).get(slot)
        return None if held is None else held[0]

    def remove(self, exact: str, key: int) -> None:
        """Unfile entry ``key`` from ``exact`` (whatever slot it is in)."""
        slots = self._slots.get(exact)
        if slots is None:
            return
        for s in [s for s, (k, _) in slots.items() if k == key]:
            del slots[s]
        if not slots:
            del self._slots[exact]

    def candidates(self, exact: str, max_tokens: int) -> Iterator[int]:
        """The entries that may serve a request under ``exact`` with limit ``max_tokens``,
        best first: the natural answer, then the cut at exactly ``max_tokens`` (with no
        limit, 0: every cut, newest first). The caller still checks each one's fit and age."""
        slots = dict(self._slots.get(exact, {}))
        natural = slots.pop(NATURAL, None)
        if natural is not None:
            yield natural[0]
        if max_tokens > 0:
            cut = slots.get(max_tokens)
            if cut is not None:
                yield cut[0]
            return
        for key, _ in sorted(slots.values(), key=lambda kc: -kc[1]):
            yield key

    def __contains__(self, exact: object) -> bool:
        return exact in self._slots

    def __len__(self) -> int:
        return len(self._slots)
