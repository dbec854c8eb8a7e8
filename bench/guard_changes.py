"""Which labelled pairs a change to the guards newly vetoes or lets through.

Every change to ``boundgate.reuse.guards`` is judged on what it does to pairs whose meaning is
known, not on the examples it was made for: a rule that stops a trial's look-alike and vetoes
a labelled duplicate costs reuse everywhere that duplicate's kind appears. This reads every
labelled set the project has (quora_train and quora_val, the chat training sets
``training/data/chat_pairs_*.tsv``, GPTCache's mock data, ``tests/data/paraphrases_dev.tsv``,
``different_dev.tsv`` and ``contradictions.tsv``, the blind trials' development pairs
``bench/data/trials_dev.csv``; 74,999 pairs, about two minutes on 2 cores)
plus any ``--pairs`` file, asks ``guards.compare`` about each, and writes the verdicts
(``--save``) or compares them with verdicts saved before the change (``--against``): each pair
whose verdict changed, by set, as a duplicate or a non-duplicate newly vetoed or let
through, then the totals.

    PYTHONPATH=src python bench/guard_changes.py --save /tmp/before.json   # before the change
    PYTHONPATH=src python bench/guard_changes.py --against /tmp/before.json  # after it

The held-out sets (``bench/data/chat_heldout*.csv``, ``blind_trial*.csv``,
``opposites_heldout.tsv``) are left out on purpose: guards are not developed on them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "training"))

from pairdata import read_labelled_tsv, read_pairs  # noqa: E402

from boundgate.reuse.guards import compare  # noqa: E402
from dev_pairs import rows as tsv_rows  # noqa: E402

Row = tuple[str, str, int]


def _tsv(path: Path, columns: slice, label: int) -> list[Row]:
    """Two questions from ``columns`` of each row of a tests/data TSV, all labelled
    ``label`` (``dev_pairs.rows`` reads them)."""
    return [(a, b, label) for a, b in tsv_rows(path, columns)]


def labelled_sets(shared: Path, extra: list[Path]) -> dict[str, list[Row]]:
    """Every labelled development set, by name, as (question1, question2, 1 if the same)."""
    sets = {
        "quora_train": read_pairs(shared / "quora_train.csv"),
        "quora_val": read_pairs(shared / "quora_val.csv"),
    }
    for path in sorted((ROOT / "training" / "data").glob("chat_pairs_*.tsv")):
        sets[path.stem] = read_labelled_tsv(path)
    mock = shared / "gptcache_mock_data.json"
    items = json.loads(mock.read_text(encoding="utf-8"))
    sets["gptcache"] = [(i["origin"], i["similar"], 1) for i in items]
    data = ROOT / "tests" / "data"
    sets["paraphrases_dev"] = _tsv(data / "paraphrases_dev.tsv", slice(0, 2), 1)
    sets["different_dev"] = _tsv(data / "different_dev.tsv", slice(1, 3), 0)
    sets["contradictions"] = _tsv(data / "contradictions.tsv", slice(0, 2), 0)
    sets["trials_dev"] = read_pairs(ROOT / "bench" / "data" / "trials_dev.csv")
    for path in extra:
        sets[path.name] = read_pairs(path)
    return sets


def verdicts(sets: dict[str, list[Row]]) -> dict[str, list[list[object]]]:
    """For each set, each pair as [question1, question2, label, the conflicts compare finds]."""
    return {
        name: [[a, b, y, list(compare(a, b).conflicts)] for a, b, y in rows]
        for name, rows in sets.items()
    }


def changes(
    before: dict[str, list[list[object]]], after: dict[str, list[list[object]]]
) -> Counter[str]:
    """Print each pair whose verdict changed and count them by kind of change."""
    totals: Counter[str] = Counter()
    for name, rows in after.items():
        old_rows = before.get(name)
        if old_rows is None or len(old_rows) != len(rows):
            print(f"{name}: not in the saved verdicts (or another length); skipped")
            continue
        for (a, b, y, now), (_, _, _, then) in zip(rows, old_rows, strict=True):
            if bool(now) == bool(then):
                continue
            kind = ("duplicate" if y else "non-duplicate") + (
                " newly vetoed" if now else " no longer vetoed"
            )
            totals[kind] += 1
            print(f"{name}\t{kind}\t{','.join(map(str, now or then))}\t{a}\t{b}")
    return totals


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", type=Path, default=ROOT / ".." / "shared" / "data" / "cache")
    ap.add_argument("--pairs", type=Path, action="append", default=[], help="another CSV")
    what = ap.add_mutually_exclusive_group(required=True)
    what.add_argument("--save", type=Path, help="write the verdicts here")
    what.add_argument("--against", type=Path, help="verdicts saved before the change")
    args = ap.parse_args()
    now = verdicts(labelled_sets(args.shared, args.pairs))
    print(f"{sum(len(v) for v in now.values()):,} labelled pairs")
    if args.save:
        args.save.write_text(json.dumps(now), encoding="utf-8")
        print(f"wrote {args.save}")
        return
    totals = changes(json.loads(args.against.read_text(encoding="utf-8")), now)
    print(dict(totals) or "no verdict changed")


if __name__ == "__main__":
    main()
