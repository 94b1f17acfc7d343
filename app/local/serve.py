"""Composition root of local mode: `python -m app stdio` serves the discovered tools over the SDK's stdio transport.

The same pieces as app/main.py minus HTTP: catalog, secret store, observer (audit to a file), guard, the SDK server
with its middleware; authorization runs inside the SDK (`AuthorizeCalls`), as the signed-in user. stdout carries
protocol messages only: the SDK's `stdio_server` points fd 1 at stderr for everything else (a `print` in a tool, a
browser MSAL starts), and logs go to stderr.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

import anyio
from mcp.server.stdio import stdio_server
from pydantic import ValidationError

from app.auth.authz import Guard
from app.auth.metadata import declared_scopes
from app.auth.principal import Principal
from app.catalog.discovery import discover
from app.catalog.registry import ToolDiscoveryError
from app.core.sdk_private import lowlevel_server
from app.local.identity import LocalIdentity, SignInError
from app.local.settings import LocalSettings, audit_sink, user_data_dir
from app.observability.audit import AuditLog, AuditSinkError
from app.observability.exporters import TelemetryConfigError
from app.observability.logging import configure_logging
from app.observability.observe import Observer
from app.observability.redaction import install_redaction
from app.observability.telemetry import setup_telemetry
from app.secrets.store import SecretsError, SecretStore, load_tool_secrets, set_process_store
from app.server import toolslock
from app.server.build import build_mcp_server
from app.server.content import content_safety_from
from app.server.threads import ToolThreads
from app.settings import Settings, describe_invalid
from app.settings.keyvault import KeyVaultError


async def serve(settings: Settings) -> None:
    """Build everything, sign in (stdout pointed at stderr meanwhile), then serve over stdin and stdout."""
    configure_logging(settings)
    telemetry = setup_telemetry(settings)
    data_dir = user_data_dir(settings)
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    catalog = discover(settings.tools.dir)
    secrets = SecretStore(settings, load_tool_secrets(catalog.secrets, settings))
    install_redaction(secrets.plain_values)
    set_process_store(secrets)
    observer = Observer(telemetry, AuditLog.open(audit_sink(settings, data_dir)), catalog)
    guard = Guard(catalog, settings.mcp.required_scopes, settings.mcp.required_roles, settings.scope_uri)
    identity = LocalIdentity(settings, settings.stdio.scopes or declared_scopes(settings, catalog), data_dir)
    threads = ToolThreads(settings.tools.threads)
    signed_in: list[Principal] = []  # filled once the user has signed in, before any message is served
    mcp = build_mcp_server(
        settings,
        catalog,
        guard,
        secrets,
        observer,
        identity,
        content_safety_from(settings),
        threads,
        caller=lambda: signed_in[0] if signed_in else None,
    )
    if settings.tools_lock_mode != "off":
        toolslock.enforce(settings.tools_lock_mode, settings.tools.lock_path, toolslock.served_sync(mcp, catalog))
    server: Any = lowlevel_server(mcp)  # as MCPServer.run_stdio_async does, once the user has signed in
    try:
        with _stdout_to_stderr():  # a browser MSAL starts inherits fd 1: it must not write into the protocol stream
            signed_in.append(await anyio.to_thread.run_sync(identity.sign_in))
        async with stdio_server() as (read, write):
            # The SDK points fd 1 at stderr while it serves, but `sys.stdout` buffers a pipe, and what a tool printed
            # would be flushed at exit, after fd 1 is the wire again: Python-level prints go to stderr directly.
            with contextlib.redirect_stdout(sys.stderr):
                await server.run(read, write, server.create_initialization_options())
    finally:
        threads.close()
        telemetry.flush()


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


def main() -> None:
    """`python -m app stdio` / `secure-mcp-server stdio`: configuration problems are one line on stderr, exit 2."""
    try:
        settings = LocalSettings()
        anyio.run(serve, settings)
    except ValidationError as exc:
        _fail(f"configuration error: {describe_invalid(exc)}")
    except ToolDiscoveryError as exc:
        _fail(f"tools error: {exc}")
    except (KeyVaultError, SecretsError) as exc:
        _fail(f"secrets error: {exc}")
    except SignInError as exc:
        _fail(f"sign-in error: {exc}")
    except (TelemetryConfigError, AuditSinkError, OSError, ValueError) as exc:
        _fail(f"configuration error: {exc}")
    except KeyboardInterrupt:
        raise SystemExit(130) from None


def _fail(message: str) -> None:
    print(message, file=sys.stderr)
    raise SystemExit(2)
