"""Extract the names WordNet 3.0 relates to an adjective of the same name into a package data
file: "European" pertains to "Europe", "French" to "France", "Chinese" to "China", so that a
question about "South American countries" names the continent "South America" names.

Source: Princeton WordNet 3.0 as installed by Debian's ``wordnet-base`` package
(``/usr/share/wordnet/data.adj``, ``data.noun``). Pertainymy is a lexical pointer (``\\``)
from an adjective to the noun it pertains to: ``\\ <offset> n <source><target>``, source and
target two-digit hex word numbers in their synsets. Licence: the WordNet 3.0 licence (see
NOTICE).

Writes ``src/boundgate/reuse/data/pertainyms_wordnet.tsv``: ``adjective<TAB>noun``, lower
case, one pair per line, sorted. Only single words of letters written with a capital in
WordNet on both sides are kept (names: "French" / "France", not "solar" / "sun").

Usage: ``python training/wordnet_pertainyms.py [--wordnet /usr/share/wordnet] [--out PATH]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from wordnet_antonyms import _parse, wordnet_dir, write_data  # one reader, one writer


def _name(word: str) -> str | None:
    word = word.split("(")[0]  # adjective markers like "(a)", "(p)"
    return word.lower() if word.isalpha() and word[0].isupper() else None


def extract(wordnet: Path) -> list[tuple[str, str]]:
    adjectives = _parse(wordnet / "data.adj", symbols=("\\",))
    nouns = _parse(wordnet / "data.noun", symbols=())
    pairs: set[tuple[str, str]] = set()
    for words, ptrs in adjectives.values():
        for off, tpos, src, tgt in ptrs:
            target = nouns.get(off) if tpos == "n" else None
            if target is None or src == 0 or tgt == 0:
                continue
            adjective, noun = _name(words[src - 1]), _name(target[0][tgt - 1])
            if adjective and noun and adjective != noun:
                pairs.add((adjective, noun))
    return sorted(pairs)


def main() -> None:
    rows = [f"{a}\t{b}" for a, b in extract(wordnet_dir())]
    write_data(__doc__, "pertainyms_wordnet.tsv", "name pertainyms", rows)


if __name__ == "__main__":
    main()
