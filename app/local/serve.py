"""Composition root of local mode: `python -m app stdio` serves the discovered tools over the SDK's stdio transport.

The same pieces as app/main.py minus HTTP: catalog, secret store, observer (audit to a file), guard, the SDK server
with its middleware; authorization runs inside the SDK (`AuthorizeCalls`), as the signed-in user. stdout carries
protocol messages only: the SDK's `stdio_server` points fd 1 at stderr for everything else (a `print` in a tool, a
browser MSAL starts), and logs go to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

import anyio
from mcp.server.stdio import stdio_server

from app.auth.principal import Principal
from app.auth.resource import ResourceServer
from app.compose.core import build_core
from app.compose.startup import exit_on_startup_error
from app.core.sdk_private import lowlevel_server
from app.local.identity import LocalIdentity, token_cache
from app.local.settings import LocalSettings, audit_sink, cache_path, sign_in_options, user_data_dir
from app.observability.logging import configure_logging
from app.secrets.store import SecretStore
from app.settings import Settings


def build_local(settings: Settings, server: str = "") -> tuple[Any, LocalIdentity, list[Principal]]:
    """The core build (app/compose/core.py) as local mode serves it: audit to a file in the user's data directory,
    downstream tokens from the signed-in user's cache, every message authorized inside the SDK as that user.
    `server`: which server of the app to serve (its SERVERS__{KEY} name; "" is the first, `tools/`).
    Returns the core, the identity that signs in, and the list the signed-in caller is put into."""
    data_dir = user_data_dir(settings)
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    signed_in: list[Principal] = []  # filled once the user has signed in, before any message is served

    def identity(server: ResourceServer, _: SecretStore) -> LocalIdentity:
        scopes = [server.scope_uri(scope) for scope in settings.stdio.scopes or server.declared_scopes()]
        cache = token_cache(cache_path(settings, data_dir), settings.stdio.allow_plain_cache)
        return LocalIdentity(sign_in_options(settings), scopes, cache)

    core = build_core(
        settings,
        server=server,
        downstream=identity,
        caller=lambda: signed_in[0] if signed_in else None,
        audit_sink=audit_sink(settings, data_dir),
    )
    assert isinstance(core.downstream, LocalIdentity)
    return core, core.downstream, signed_in


async def serve(settings: Settings, key: str = "") -> None:
    """Build everything, sign in (stdout pointed at stderr meanwhile), then serve over stdin and stdout."""
    configure_logging(settings.log_level, settings.log_style)
    core, identity, signed_in = build_local(settings, key)
    server: Any = lowlevel_server(core.mcp)  # as MCPServer.run_stdio_async does, once the user has signed in
    try:
        with _stdout_to_stderr():  # a browser MSAL starts inherits fd 1: it must not write into the protocol stream
            signed_in.append(await anyio.to_thread.run_sync(identity.sign_in))
        async with stdio_server() as (read, write):
            # The SDK points fd 1 at stderr while it serves, but `sys.stdout` buffers a pipe, and what a tool printed
            # would be flushed at exit, after fd 1 is the wire again: Python-level prints go to stderr directly.
            with contextlib.redirect_stdout(sys.stderr):
                await server.run(read, write, server.create_initialization_options())
    finally:
        core.threads.close()
        core.telemetry.flush()


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """fd 1 (and `sys.stdout`) point at stderr for the block; the client's first messages wait in the stdin pipe.
    Our own few lines: the SDK's diversion exists only inside `stdio_server`, and a failed sign-in must not leave
    its transport waiting on stdin."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def main(argv: list[str] | None = None) -> None:
    """`python -m app stdio [--server KEY]` / `secure-mcp-server stdio`: configuration problems are one line on
    stderr, exit 2."""
    parser = argparse.ArgumentParser(prog="python -m app stdio", description="Serve one MCP server over stdio.")
    parser.add_argument("--server", default="", help="which server: its SERVERS__{KEY} name (default: the first)")
    args = parser.parse_args(sys.argv[2:] if argv is None else argv)
    try:
        with exit_on_startup_error():
            anyio.run(serve, LocalSettings(), args.server.lower())
    except KeyboardInterrupt:
        raise SystemExit(130) from None
