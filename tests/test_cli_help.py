"""Every command's ``--help`` reads cleanly at 80 columns: prose reflowed to the terminal (not
broken where the docstring's source lines end), no reST or Markdown markup shown raw, and a
group's list of commands giving each its one-line summary, not its whole description."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from boundgate.cli import app as cli

WIDTH = 80


def command_paths(command: Any = None, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    command = command or get_command(cli)
    yield path
    for name, sub in getattr(command, "commands", {}).items():
        yield from command_paths(sub, (*path, name))


def help_of(path: tuple[str, ...]) -> str:
    res = CliRunner().invoke(cli, [*path, "--help"], env={"COLUMNS": str(WIDTH)})
    assert res.exit_code == 0, res.output
    return res.output


def paragraphs(lines: list[str]) -> list[list[str]]:
    """Runs of non-blank lines."""
    runs: list[list[str]] = [[]]
    for line in lines:
        if line.strip():
            runs[-1].append(line.rstrip())
        elif runs[-1]:
            runs.append([])
    return [r for r in runs if r]


@pytest.mark.parametrize("path", list(command_paths()), ids=lambda p: " ".join(p) or "boundgate")
def test_help_reads_cleanly_at_80_columns(path: tuple[str, ...]) -> None:
    text = help_of(path)
    assert "`" not in text, text  # ``docs import`` was shown with its backticks
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= WIDTH
    # the description: between the usage line and the first panel
    start = next(i for i, line in enumerate(lines) if "Usage:" in line) + 1
    end = next((i for i, line in enumerate(lines) if line.startswith("╭")), len(lines))
    for run in paragraphs(lines[start:end]):
        # a line that is not its paragraph's last was wrapped by the terminal, so it is
        # nearly full; one broken where the docstring's line ended is not
        short = [line for line in run[:-1] if len(line) < WIDTH - 20]
        assert not short, "\n".join(run)
    # a group lists each command with its first paragraph: a line or two, not all of it
    if "╭─ Commands" in text:
        panel = lines[next(i for i, line in enumerate(lines) if "╭─ Commands" in line) + 1 :]
        panel = panel[: next(i for i, line in enumerate(panel) if line.startswith("╰"))]
        entries: list[list[str]] = []
        for line in panel:
            body = line.strip("│ ")
            if line.startswith("│ ") and line[2] != " ":
                entries.append([body])
            else:
                entries[-1].append(body)
        assert all(len(e) <= 2 for e in entries), "\n".join(panel)


@pytest.mark.parametrize("path", list(command_paths()), ids=lambda p: " ".join(p) or "boundgate")
def test_every_argument_says_what_it_is(path: tuple[str, ...]) -> None:
    """docs import's FILE, docs show's and revoke's ID and batch status's and results' ID
    were listed with only their type and [required]: each argument has its line."""
    command = get_command(cli)
    for name in path:
        command = command.commands[name]
    for param in command.params:
        if param.param_type_name == "argument":
            text = str(getattr(param, "help", None) or "").replace("`", "")
            assert text, (path, param.name)
            assert text.split()[0] in help_of(path), (path, param.name)


@pytest.mark.parametrize("path", list(command_paths()), ids=lambda p: " ".join(p) or "boundgate")
def test_every_config_option_names_the_environment_variable(path: tuple[str, ...]) -> None:
    """The docs, report, grid and plan commands' --config read BOUNDGATE_CONFIG without it as
    serve's does, but only serve's help said so."""
    command = get_command(cli)
    for name in path:
        command = command.commands[name]
    if any("--config" in getattr(p, "opts", ()) for p in command.params):
        assert "BOUNDGATE_CONFIG" in help_of(path)
