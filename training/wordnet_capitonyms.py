"""Extract capitonyms from WordNet 3.0 into a package data file: words that are both a common
word and a name, so that their capital may be all that tells which is meant ("polish" /
"Polish", "turkey" / "Turkey", "nice" / "Nice", "mercury" / "Mercury").

Source: Princeton WordNet 3.0 as installed by Debian's ``wordnet-base`` package
(``/usr/share/wordnet/data.{adj,adv,noun,verb}``), whose synsets list their words as written.
A capitonym is a single word of letters that appears there both in lower case and with only
its first letter capitalised. Licence: the WordNet 3.0 licence (see NOTICE).

Writes ``src/boundgate/reuse/data/capitonyms_wordnet.txt``: one lower-case word per line,
sorted. The exact form of a question (``boundgate/reuse/scope.py``) keeps the capital of
these words after a sentence's first word, and forgives every other word's case.

Usage: ``python training/wordnet_capitonyms.py [--wordnet /usr/share/wordnet] [--out PATH]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from wordnet_antonyms import _POS_FILES, _parse, wordnet_dir, write_data  # one reader, writer


def words_as_written(wordnet: Path) -> set[str]:
    """Every single-word lemma of the data files, as written (adjective markers dropped)."""
    out: set[str] = set()
    for name in _POS_FILES.values():
        for words, _ in _parse(wordnet / name).values():
            out.update(w for w in (word.split("(")[0] for word in words) if w.isalpha())
    return out


def extract(wordnet: Path) -> list[str]:
    words = words_as_written(wordnet)
    lower = {w for w in words if w.islower()}
    named = {w.lower() for w in words if w[0].isupper() and (len(w) == 1 or w[1:].islower())}
    return sorted(lower & named)


def main() -> None:
    write_data(__doc__, "capitonyms_wordnet.txt", "capitonyms", extract(wordnet_dir()))


if __name__ == "__main__":
    main()
