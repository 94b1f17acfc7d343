"""What every command shares: settings read once with the one startup-error root, and the exit codes.

Exit codes, stable for scripts and CI: 0 done (or healthy), 1 the check found errors (a stale lock, a broken audit
chain, a doctor error), 2 a usage or configuration error (one line on stderr, no traceback), 130 interrupted.
"""

from __future__ import annotations

from typing import Any, NoReturn

import typer

from app.compose.startup import exit_on_startup_error
from app.settings import Settings

OK, FOUND, USAGE = 0, 1, 2


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, `.env` and the secret sources; a bad value is one line and exit 2."""
    with exit_on_startup_error():
        return Settings(**overrides)


def fail(message: str, code: int = USAGE) -> NoReturn:
    """One line on stderr and the exit code (2: usage or configuration)."""
    typer.echo(message, err=True)
    raise typer.Exit(code)
