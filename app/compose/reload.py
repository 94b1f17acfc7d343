"""`make dev` (`python -m app --reload`), development only: uvicorn restarts the app whenever a file in the tools
or routes folders changes, while the dev issuer runs in a process of its own, so it stays up across restarts (its
signing key, sign-ins and the clients' tokens and refresh tokens with it).

Written here rather than taken whole from uvicorn because uvicorn's reloader restarts only the app process; the
embedded issuer would restart with it and lose every sign-in.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from app.compose.devissuer import dev_issuer_config
from app.core.startup import StartupError
from app.devissuer.issuer import announce_dev
from app.settings import Settings

ISSUER_START_SECONDS = 60.0  # a give-up bound for the issuer's first start (a loaded machine can take seconds)


class ReloadError(StartupError):
    """`--reload` cannot run as configured (production, several workers, or the dev issuer did not start)."""


def watched(settings: Settings) -> list[str]:
    """The folders whose changes restart the app: every server's tools folder, and the routes folder."""
    folders = [*(one.tools_dir for one in settings.served()), settings.routes.dir]
    return [str(Path(folder).resolve()) for folder in dict.fromkeys(folders) if Path(folder).is_dir()]


@contextlib.contextmanager
def issuer_beside(settings: Settings) -> Iterator[None]:
    """Run the dev issuer as its own process for as long as the context lasts (when the server would embed one),
    and point the app's process at it (DEV_ISSUER__EMBEDDED=false, inherited by uvicorn's reloading child)."""
    if settings.app_env != "development":
        raise ReloadError("--reload (make dev) is for development only: set APP_ENV=development")
    if settings.workers > 1:
        raise ReloadError("--reload (make dev) runs one worker: unset SERVER__WORKERS and WEB_CONCURRENCY")
    if not (settings.dev_issuer_active and settings.dev_issuer.embedded):
        yield  # Entra, or an issuer someone else runs: nothing to keep up here
        return
    issuer = subprocess.Popen([sys.executable, "-m", "app.devissuer", "serve"])
    try:
        _wait_listening(issuer, settings.dev_issuer.host, settings.dev_issuer.port)
        os.environ["DEV_ISSUER__EMBEDDED"] = "false"
        announce_dev(dev_issuer_config(settings), reloading=True)
        yield
    finally:
        issuer.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            issuer.wait(timeout=10)


def _wait_listening(issuer: subprocess.Popen[bytes], host: str, port: int) -> None:
    """Until the issuer accepts connections; its early exit (a taken port, a bad key) is a one-line error."""
    deadline = time.monotonic() + ISSUER_START_SECONDS
    while time.monotonic() < deadline:
        if issuer.poll() is not None:
            raise ReloadError(
                f"the dev issuer did not start (exit {issuer.returncode}; its reason is above): if {host}:{port} is "
                "in use, set DEV_ISSUER__PORT to a free port"
            )
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
            return
        time.sleep(0.1)
    raise ReloadError(f"the dev issuer did not listen on {host}:{port} within {ISSUER_START_SECONDS:.0f} s")
