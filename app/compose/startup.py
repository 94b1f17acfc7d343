"""The one handler for startup errors, shared by every entry point: one line on stderr, exit status 2, no traceback.

Every part that can fail while the server is built raises a `StartupError` (app/core/startup.py) with its label;
settings that do not validate are pydantic's `ValidationError` (named without their values); an address or file the
operating system refuses is an `OSError`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from pydantic import ValidationError

from app.core.startup import StartupError
from app.settings import describe_invalid


def startup_line(exc: BaseException) -> str | None:
    """The one line for a startup error; None for anything else (a bug, which keeps its traceback)."""
    if isinstance(exc, StartupError):
        return exc.line()
    if isinstance(exc, ValidationError):
        return f"configuration error: {describe_invalid(exc)}"
    if isinstance(exc, OSError):
        return f"configuration error: {exc}"
    return None


@contextmanager
def exit_on_startup_error() -> Iterator[None]:
    """Run the build; a startup error becomes its one line on stderr and `SystemExit(2)`."""
    try:
        yield
    except (StartupError, ValidationError, OSError) as exc:
        print(startup_line(exc), file=sys.stderr)
        raise SystemExit(2) from None
