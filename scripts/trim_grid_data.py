"""Build the package's compact copy of the Electricity Maps hourly carbon data.

Reads ../shared/data/grid/carbon/ZONE_YEAR.csv (datetime_utc, gco2_per_kwh_direct,
gco2_per_kwh_lca, estimated) and writes src/boundgate/grid/data/ZONE.csv.gz with one row per
hour: ``datetime_utc,direct,lca,estimated`` (gCO2e/kWh rounded to 0.1; estimated as 0/1).
Data: Electricity Maps, ODbL 1.0 (see NOTICE).
"""

from __future__ import annotations

import csv
import gzip
import io
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT.parent / "shared" / "data" / "grid" / "carbon"
DST = ROOT / "src" / "boundgate" / "grid" / "data"


def main(src: Path = SRC, dst: Path = DST) -> None:
    by_zone: dict[str, list[Path]] = defaultdict(list)
    for f in sorted(src.glob("*_*.csv")):
        zone, _, _year = f.stem.rpartition("_")
        by_zone[zone].append(f)
    dst.mkdir(parents=True, exist_ok=True)
    for zone, files in sorted(by_zone.items()):
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["datetime_utc", "direct", "lca", "estimated"])
        for f in files:
            with f.open(newline="") as fh:
                for row in csv.DictReader(fh):
                    w.writerow(
                        [
                            row["datetime_utc"],
                            f"{float(row['gco2_per_kwh_direct']):.1f}",
                            f"{float(row['gco2_per_kwh_lca']):.1f}",
                            1 if row["estimated"].strip().lower() == "true" else 0,
                        ]
                    )
        out = dst / f"{zone}.csv.gz"
        # mtime=0 keeps the file byte-identical across rebuilds.
        with gzip.GzipFile(out, "wb", compresslevel=9, mtime=0) as gz:
            gz.write(buf.getvalue().encode())
        print(f"{out.relative_to(ROOT)}: {out.stat().st_size} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
