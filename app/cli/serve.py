"""`serve`: uvicorn from SERVER__* and SECURITY__* settings (`--reload`: development, restart on changes to tools and
routes, app/compose/reload.py)."""

from __future__ import annotations

import signal
import socket
import sys
from types import FrameType

import uvicorn

from app.compose.startup import exit_on_startup_error
from app.settings import Settings


def serve(settings: Settings, reload: bool = False) -> None:
    """Serve the app; configuration problems are one line on stderr and exit 2."""
    if settings.server.workers > 1 and settings.dev_issuer_active and settings.dev_issuer.embedded:
        print(
            "configuration error: the embedded dev issuer needs SERVER__WORKERS=1; for more workers run "
            "`python -m app.devissuer serve` and set DEV_ISSUER__EMBEDDED=false",
            file=sys.stderr,
        )
        raise SystemExit(2)
    if settings.server.workers > 1 and not settings.mcp.request_state_keys:
        print(
            "warning: SERVER__WORKERS > 1 without MCP__REQUEST_STATE_KEYS: a requestState sealed by one worker "
            "is refused by the others",
            file=sys.stderr,
        )
    if (taken := _port_taken(settings.server.host, settings.server.port)) is not None:
        print(taken, file=sys.stderr)  # before the app is built: nothing says "serving" on a port it cannot have
        raise SystemExit(2)
    # uvicorn re-raises SIGTERM once its graceful shutdown is done; this handler makes that a clean exit 0.
    signal.signal(signal.SIGTERM, _shutdown_done)
    try:
        if reload:
            _run_reloading(settings)
        else:
            _run(settings)
    except KeyboardInterrupt:  # Ctrl-C: uvicorn has shut down already; no traceback
        raise SystemExit(130) from None


def _run(settings: Settings) -> None:
    uvicorn.run(
        "app.main:app",
        host=settings.server.host,
        port=settings.server.port,
        workers=settings.server.workers,
        proxy_headers=False,  # forwarded headers are handled in the app, from SECURITY__TRUSTED_PROXIES only
        server_header=False,
        timeout_graceful_shutdown=settings.server.shutdown_grace_seconds,
        # Slow clients: at most this many connections per worker (503 beyond), idle keep-alive closed after this long.
        # uvicorn has no header-read timeout: in production the proxy's (nginx `client_header_timeout`) is the bound.
        limit_concurrency=settings.server.limit_concurrency,
        timeout_keep_alive=settings.server.keep_alive_seconds,
        log_level=settings.log_level.lower(),
    )


def _run_reloading(settings: Settings) -> None:
    """`make dev`: the app in a child process uvicorn restarts on changes; the dev issuer beside it, kept up."""
    from app.compose.reload import issuer_beside, watched  # development only
    from app.observability.logging import configure_logging

    configure_logging(settings.log_level, settings.log_style)  # uvicorn's reloader logs through it (log_config=None)
    with exit_on_startup_error(), issuer_beside(settings):
        uvicorn.run(
            "app.main:app",
            host=settings.server.host,
            port=settings.server.port,
            reload=True,
            reload_dirs=watched(settings),
            proxy_headers=False,
            server_header=False,
            log_config=None,
            log_level=settings.log_level.lower(),
        )


def _port_taken(host: str, port: int) -> str | None:
    """One line when the address cannot be bound (another server holds it), naming how to choose another."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is no conflict
            probe.bind((host, port))
    except OSError as exc:
        return (
            f"configuration error: cannot listen on {host}:{port} ({exc.strerror or exc}): another server holds it; "
            "stop it, or choose another port with SERVER__PORT (`make run PORT=8010`)"
        )
    return None


def _shutdown_done(sig: int, frame: FrameType | None) -> None:
    """SIGTERM after uvicorn has shut down gracefully: nothing left to do."""
