"""The CLI's rich consoles: fitted to a terminal, never cut when the output is not one."""

from __future__ import annotations

import typer
from rich.console import Console, ConsoleDimensions
from rich.markup import escape

# wide enough that no table or line is ever wrapped or truncated to fit
UNBOUNDED = 1_000_000


class CliConsole(Console):
    """A ``rich`` console that fits tables and text to the terminal, as usual, but where its
    file is not a terminal (a pipe, a file, a test's ``CliRunner``) has no width at all:
    tables take their natural width and lines stay whole, so no cell is cut to an ellipsis
    or folded over lines. ``COLUMNS`` counts only on a terminal. The file is looked at on each
    print, so one console serves both cases (no colour either when it is not a terminal)."""

    @property
    def size(self) -> ConsoleDimensions:
        dims = super().size
        if self.is_terminal:
            return dims
        return ConsoleDimensions(UNBOUNDED, dims.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size


# markup only where a print asks for it (``markup=True``, its data escaped): a table's cells and
# plain prints are data (a bound document's question, a config's regex), and a trial's question
# "[/b]" crashed `docs list` while "[a-z]" in a value vanished from `settings`
# and no emoji codes: ":key:" in "did:key:z6Mk…" printed as an emoji (a trial's `docs verify`)
out = CliConsole(markup=False, emoji=False)
err = CliConsole(stderr=True, markup=False, emoji=False)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``error: <message>`` on stderr and return the ``typer.Exit(code)`` to raise. The
    message is text, never markup: it may quote a config value or a document ("[/x]" was
    read as a closing tag and crashed the CLI)."""
    err.print(f"[red]error:[/red] {escape(message)}", markup=True, highlight=False)
    return typer.Exit(code)


def cannot_write(path: object, exc: OSError) -> typer.Exit:
    """``fail`` (exit 2) for a file the command could not write: a directory that is not
    there, no permission, a full disk."""
    return fail(f"cannot write {path}: {exc.strerror or exc}", 2)
