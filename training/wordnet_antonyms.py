"""Extract single-word antonym pairs from WordNet 3.0 into a package data file.

Source: Princeton WordNet 3.0 as installed by Debian's ``wordnet-base`` package
(``/usr/share/wordnet/data.{adj,adv,noun,verb}``). Antonymy is a lexical pointer (``!``) in
those files: ``! <offset> <pos> <source><target>`` where source/target are two-digit hex word
numbers in their synsets. Licence: the WordNet 3.0 licence (see NOTICE).

Writes ``src/boundgate/reuse/data/antonyms_wordnet.tsv``: ``word<TAB>antonym<TAB>pos``, one
pair per line, each unordered pair once, sorted. Only single lower-case words made of letters
are kept (multi-word lemmas and proper nouns are dropped).

Usage: ``python training/wordnet_antonyms.py [--wordnet /usr/share/wordnet] [--out PATH]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

_POS_FILES = {"a": "data.adj", "r": "data.adv", "n": "data.noun", "v": "data.verb"}
_POS_OF = {"a": "a", "s": "a", "r": "r", "n": "n", "v": "v"}


def _parse(
    path: Path, symbols: tuple[str, ...] = ("!",)
) -> dict[int, tuple[list[str], list[tuple[int, str, int, int]]]]:
    """Each synset of a WordNet data file by offset: its words as written and its lexical
    pointers whose symbol is one of ``symbols`` (antonymy ``!`` unless told), each as
    (target offset, target part of speech, source word number, target word number)."""
    synsets: dict[int, tuple[list[str], list[tuple[int, str, int, int]]]] = {}
    for line in path.read_text(encoding="latin-1").splitlines():
        if line.startswith("  "):
            continue  # licence header
        fields = line.split(" | ")[0].split()
        offset = int(fields[0])
        w_cnt = int(fields[3], 16)
        words = [fields[4 + 2 * i] for i in range(w_cnt)]
        i = 4 + 2 * w_cnt
        p_cnt = int(fields[i])
        ptrs = []
        for j in range(p_cnt):
            sym, off, pos, st = fields[i + 1 + 4 * j : i + 5 + 4 * j]
            if sym in symbols:
                ptrs.append((int(off), _POS_OF[pos], int(st[:2], 16), int(st[2:], 16)))
        synsets[offset] = (words, ptrs)
    return synsets


def _clean(word: str) -> str | None:
    word = word.split("(")[0]  # adjective markers like "(a)", "(p)"
    return word if word.isalpha() and word.islower() else None


def extract(wordnet: Path) -> list[tuple[str, str, str]]:
    data = {pos: _parse(wordnet / name) for pos, name in _POS_FILES.items()}
    pairs: set[tuple[str, str, str]] = set()
    for pos, synsets in data.items():
        for words, ptrs in synsets.values():
            for off, tpos, src, tgt in ptrs:
                target = data[tpos].get(off)
                if target is None or src == 0 or tgt == 0:
                    continue
                a, b = _clean(words[src - 1]), _clean(target[0][tgt - 1])
                if a and b and a != b:
                    lo, hi = sorted((a, b))
                    pairs.add((lo, hi, pos))
    return sorted(pairs)


def write_data(doc: str | None, data_file: str, what: str, rows: list[str]) -> None:
    """The command line of a WordNet extraction script (``--wordnet``, ``--out``): write
    ``rows`` under a licence line to ``--out`` (``src/boundgate/reuse/data/<data_file>``
    unless told) and say how many ``what`` it wrote. ``doc``: the script's docstring."""
    parser = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    parser.add_argument("--wordnet", type=Path, default=Path("/usr/share/wordnet"))
    here = Path(__file__).resolve().parent.parent
    parser.add_argument("--out", type=Path, default=here / "src/boundgate/reuse/data" / data_file)
    args = parser.parse_args()
    lines = [f"# {what} from Princeton WordNet 3.0 (WordNet licence, see NOTICE)", *rows]
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{len(rows)} {what} -> {args.out}")


def wordnet_dir() -> Path:
    """``--wordnet`` as given on the command line (the default otherwise), read first."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--wordnet", type=Path, default=Path("/usr/share/wordnet"))
    return Path(parser.parse_known_args()[0].wordnet)


def main() -> None:
    pairs = extract(wordnet_dir())
    rows = [f"{a}\t{b}\t{pos}" for a, b, pos in pairs]
    write_data(__doc__, "antonyms_wordnet.tsv", "antonym pairs", rows)


if __name__ == "__main__":
    main()
