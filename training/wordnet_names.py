"""Extract the names of WordNet 3.0 that are no common word into a package data file: words it
lists only capitalised ("France", "Spanish", "Monday"), never in lower case, so that a capital
on them says nothing the lower-case form does not ("the capital of France" / "… of france").

Source: Princeton WordNet 3.0 as installed by Debian's ``wordnet-base`` package
(``/usr/share/wordnet/data.{adj,adv,noun,verb}``), whose synsets list their words as written.
Licence: the WordNet 3.0 licence (see NOTICE).

Writes ``src/boundgate/reuse/data/names_wordnet.txt``: one lower-case word per line, sorted.
The exact form of a question (``boundgate/reuse/scope.py``) writes these in lower case after a
sentence's first word, and keeps the capital of every other word there: a common word
("Bill" / "bill", "Will" / "will", "Double" / "double" in Java) or one WordNet does not know.

Usage: ``python training/wordnet_names.py [--wordnet /usr/share/wordnet] [--out PATH]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from wordnet_antonyms import wordnet_dir, write_data  # one reader, one writer
from wordnet_capitonyms import words_as_written


def extract(wordnet: Path) -> list[str]:
    words = words_as_written(wordnet)
    lower = {w for w in words if w.islower()}
    named = {w.lower() for w in words if w[0].isupper() and (len(w) == 1 or w[1:].islower())}
    return sorted(named - lower)


def main() -> None:
    names = extract(wordnet_dir())
    write_data(__doc__, "names_wordnet.txt", "names that are no common word", names)


if __name__ == "__main__":
    main()
