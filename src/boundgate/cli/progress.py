"""Progress for long CLI tasks (and the benchmarks): on stderr, and only where someone sees it.

Bars are drawn only when stderr is a terminal, and not when the command writes machine output
(JSON, CSV, NDJSON) to stdout: that output is usually piped on, and on a shared terminal a bar
would interleave with it. Everything here is transient: the bar disappears when the task ends.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

T = TypeVar("T")


def shown(machine_output: bool = False) -> bool:
    """Whether progress would be drawn: stderr is a terminal and stdout is for people."""
    return not machine_output and Console(stderr=True).is_terminal


def progress(*, machine_output: bool = False, transfer: bool = False) -> Progress:
    """A transient progress display on stderr (disabled where it would not be seen).

    ``transfer`` counts bytes (size and speed) instead of items.
    """
    counts: tuple[ProgressColumn, ...] = (
        (DownloadColumn(), TransferSpeedColumn())
        if transfer
        else (MofNCompleteColumn(), TaskProgressColumn())
    )
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        *counts,
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
        redirect_stdout=False,  # stdout carries the results: never move them to stderr
        disable=not shown(machine_output),
    )


def track(
    items: Iterable[T],
    description: str,
    *,
    total: float | None = None,
    machine_output: bool = False,
) -> Iterator[T]:
    """Iterate ``items`` with a bar (``total`` defaults to ``len(items)`` where there is one)."""
    with progress(machine_output=machine_output) as p:
        yield from p.track(items, total=total, description=description)


class Steps:
    """A start-up made of named steps, some with a count (the server's lifespan reports them).

    Call :meth:`update` for each step and :meth:`finish` once, whatever happened; without a
    terminal on stderr both do nothing.
    """

    def __init__(self) -> None:
        # No redirection of stdout/stderr: the server's log handlers already hold the real
        # stderr (a redirect would not catch them), and the server must get its streams back.
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[count]}"),
            console=Console(stderr=True),
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
            disable=not shown(),
        )
        self._task: TaskID | None = None
        self._step = ""

    def update(self, step: str, done: int = 0, total: int | None = None) -> None:
        count = f"{done}/{total}" if total is not None else ""
        if self._task is None:
            self._progress.start()
        elif step != self._step:  # a new step: a fresh task, so no count carries over
            self._progress.remove_task(self._task)
        else:
            self._progress.update(self._task, completed=done, total=total, count=count)
            return
        self._step = step
        self._task = self._progress.add_task(step, total=total, completed=done, count=count)

    def finish(self) -> None:
        if self._task is not None:
            self._progress.stop()
            self._task = None
