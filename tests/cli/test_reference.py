"""docs/cli.md is generated from the Typer app: it names every command and option, and the committed page is current."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from app.cli import cli
from app.cli.reference import DEFAULT_OUTPUT, main, render


def test_the_committed_page_matches_the_code() -> None:
    assert main(["--check"]) == 0, "docs/cli.md is stale: run `python -m app.cli.reference` (make docs)"


def test_every_command_has_a_section() -> None:
    """Every command of Typer's own tree (groups by their commands) has its section."""
    page = render()
    groups: list[tuple[tuple[str, ...], Any]] = [((), typer.main.get_group(cli))]
    while groups:
        path, group = groups.pop()
        for name, command in group.commands.items():
            if hasattr(command, "commands"):
                groups.append(((*path, name), command))
            else:
                assert f"## `{' '.join((*path, name))}`" in page


def test_check_fails_on_a_stale_page(tmp_path: Path) -> None:
    stale = tmp_path / "cli.md"
    stale.write_text(DEFAULT_OUTPUT.read_text().replace("Exit codes", "Exit kodes"))
    assert main(["--check", "--output", str(stale)]) == 1
