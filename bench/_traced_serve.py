"""`boundgate` under tracemalloc, for the soak's ``--tracemalloc``: the CLI in this process,
and on SIGUSR1 a snapshot of the traced allocations written to DIR/snap-<n>.pickle.

    python bench/_traced_serve.py DIR FRAMES serve --config soak.toml
"""

from __future__ import annotations

import signal
import sys
import tracemalloc
from pathlib import Path
from types import FrameType


def main() -> None:
    out, frames, args = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
    tracemalloc.start(frames)
    taken = 0

    def dump(signum: int, frame: FrameType | None) -> None:
        nonlocal taken
        tracemalloc.take_snapshot().dump(str(out / f"snap-{taken}.pickle"))
        taken += 1
        (out / f"snap-{taken - 1}.done").touch()

    signal.signal(signal.SIGUSR1, dump)
    from boundgate.cli import main as cli

    sys.argv = ["boundgate", *args]
    cli()


if __name__ == "__main__":
    main()
