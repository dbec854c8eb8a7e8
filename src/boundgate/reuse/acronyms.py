"""Acronyms in retrieval: a paraphrase that writes an acronym where the other spells it out.

MiniLM embeds "what is CORS" and "what is cross-origin resource sharing" at cosine 0.30 and
"Can OSA cause high blood pressure?" / "Is obstructive sleep apnea linked to high blood
pressure?" at 0.51, below the verifier's loose floor (0.70), so the pair model, which reads an
acronym as the other question's words whose initials it is (``acronyms_spelled``) and scores
such pairs up to 0.99, never saw them. Two things bring them to it:

- a candidate's cosine is read as the pair model reads the pair, each side's acronym
  written as the other side's words (``spelled_pair``; ``Searching._spelled_neighbours``),
  and the floor is applied to that;
- ``AcronymIndex``: stored questions that type an acronym, by its letters, so that a question
  spelling one out finds them even when they are not among its nearest neighbours (a stored
  question spelling one out is found only among them: indexing every run of words of every
  stored question by its initials would hold about ten entries a question).

Neither grants reuse: the guards, the pair model and the verifier decide as for any
candidate. Over the labelled sets (bench/RESULTS.md, forty-sixth session) the lifted
candidates were duplicates only.
"""

from __future__ import annotations

import threading
from collections import Counter

from .guards.lexicon import acronyms_of_runs, acronyms_spelled, typed_acronyms


class AcronymIndex:
    """Stored questions by the acronyms they type, per scope: ``add`` / ``remove`` as entries
    come and go, ``holding`` for the entries whose acronym a question's words spell out.
    Thread-safe. Holds one set entry per acronym a stored question types (few do)."""

    def __init__(self) -> None:
        self._keys: dict[tuple[str, str], set[int]] = {}
        self._of: dict[int, tuple[str, frozenset[str]]] = {}
        self._scopes: Counter[str] = Counter()  # entries holding an acronym, per scope
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._of)

    def add(self, scope: str, key: int, query: str) -> None:
        """File entry ``key`` (question ``query`` in ``scope``) under each acronym it types."""
        letters = frozenset(typed_acronyms(query))
        if not letters:
            return
        with self._lock:
            self._drop(key)
            self._of[key] = (scope, letters)
            self._scopes[scope] += 1
            for a in letters:
                self._keys.setdefault((scope, a), set()).add(key)

    def remove(self, key: int) -> None:
        with self._lock:
            self._drop(key)

    def _drop(self, key: int) -> None:
        filed = self._of.pop(key, None)
        if filed is None:
            return
        scope, letters = filed
        self._scopes[scope] -= 1
        if not self._scopes[scope]:
            del self._scopes[scope]
        for a in letters:
            keys = self._keys.get((scope, a))
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._keys[(scope, a)]

    def holding(self, scope: str, query: str) -> set[int]:
        """The entries of ``scope`` typing an acronym that a run of ``query``'s words could
        be written as ("high-yield savings account" finds one typing "HYSA"); empty at once
        where no stored question of the scope types any."""
        if not self._scopes.get(scope):
            return set()
        found: set[int] = set()
        with self._lock:
            for a in acronyms_of_runs(query):
                found |= self._keys.get((scope, a), set())
        return found


def spelled_pair(asked: str, stored: str) -> tuple[str, str] | None:
    """The two questions with each side's acronyms written as the other's words
    (``acronyms_spelled``), or None where neither changes."""
    a, b = acronyms_spelled(asked, stored)
    return None if (a, b) == (asked, stored) else (a, b)
