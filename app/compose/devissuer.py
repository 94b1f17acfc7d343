"""The development issuer's room (app/devissuer/): its config from settings, and its command line.

`python -m app.devissuer token [--server KEY] [--scopes "a b"] [--roles "r"] [--app]` prints an access token (for the
first server, or for `SERVERS__{KEY}`); `… serve` runs the issuer on its own (for DEV_ISSUER__EMBEDDED=false, e.g.
several workers).
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from dataclasses import replace

import uvicorn

from app.auth.resource import NO_ROUTES
from app.authserver.options import CALLBACK_PATH
from app.catalog.discovery import discover
from app.catalog.registry import Catalog, Requirement, ToolDiscoveryError
from app.compose.resource import resource_server
from app.core.hosts import is_loopback_host
from app.devissuer.config import DevApp, DevIssuerConfig
from app.devissuer.issuer import DevIssuer
from app.devissuer.running import choose, recorded, running_issuers
from app.devissuer.signing import DevKeyError
from app.devissuer.tls import tls_options
from app.settings import Settings, UnknownServerError


def dev_issuer_config(
    settings: Settings, catalogs: Sequence[Catalog] | None = None, routes: Requirement = NO_ROUTES
) -> DevIssuerConfig:
    """What the dev issuer reads of `settings`: one app per server of `settings.served()`, like an Entra tenant with
    an app registration each. Each app's sign-in page offers what its catalog (`catalogs`, one per server, in
    `settings.served()` order) declares with its required scopes and roles, and the first's what `routes` declare
    too; nothing without catalogs (a token mint only)."""
    issuer = settings.dev_issuer
    apps = []
    for index, one in enumerate(settings.served()):
        catalog = catalogs[index] if catalogs and index < len(catalogs) else None
        server = resource_server(settings, catalog, routes if index == 0 else NO_ROUTES, one) if catalog else None
        # The facade signs in as each server's own app registration, with that server's own secret.
        facade = settings.auth_server.enabled and one.client_secret is not None
        apps.append(
            DevApp(
                key=one.key,
                audience=one.client_id,
                app_id_uri=one.app_id_uri,
                resource=f"{settings.resource_host}{one.path}",
                server_name=one.name,
                known_scopes=tuple(server.declared_scopes()) if server else (),
                known_roles=tuple(server.declared_roles()) if server else (),
                facade_client=(one.client_id, settings.auth_server_issuer + CALLBACK_PATH) if facade else None,
                facade_secret=one.client_secret,
            )
        )
    return DevIssuerConfig(
        app_env=settings.app_env,
        instance=settings.instance,
        tenant_id=settings.tenant_id,
        host=issuer.host,
        port=issuer.port,
        key_dir=issuer.key_dir,
        client_id=issuer.client_id,
        token_seconds=issuer.token_seconds,
        tls=issuer.tls,
        rate=settings.rate_limit.unauthenticated,
        apps=tuple(apps),
    )


class DevIssuerCommandError(Exception):
    """A `token` or `serve` request the dev issuer cannot answer; the message is the one line to print."""


def _issuer(settings: Settings, server: str, serving: bool) -> tuple[DevIssuerConfig, DevIssuer]:
    if not settings.dev_issuer_active:
        raise DevIssuerCommandError(
            "AzureAd settings are configured: get tokens from Entra (see docs/tokens.md), not the dev issuer"
        )
    try:
        settings.served_one(server)
    except UnknownServerError as exc:
        raise DevIssuerCommandError(f"{exc}; omit --server for the first") from None
    try:
        # The sign-in page offers the scopes and roles the tools declare, as the embedded issuer's does.
        catalogs = [discover(one.tools_dir) for one in settings.served()] if serving else None
        config = dev_issuer_config(settings, catalogs)
        return config, DevIssuer(config)
    except (DevKeyError, ToolDiscoveryError) as exc:
        raise DevIssuerCommandError(f"dev issuer: {exc}") from None


def serve_alone(settings: Settings) -> None:
    """Run the issuer on its own (DEV_ISSUER__EMBEDDED=false), recorded in `.dev/` while it listens."""
    config, issuer = _issuer(settings, "", serving=True)
    if not is_loopback_host(config.host):
        raise DevIssuerCommandError("the dev issuer listens on loopback only")
    certfile, keyfile = tls_options(config)
    # uvicorn re-raises SIGTERM after its graceful shutdown: a no-op handler lets the record below be removed.
    signal.signal(signal.SIGTERM, lambda *_: None)
    with recorded(config):
        uvicorn.run(
            issuer.asgi_app(),
            host=config.host,
            port=config.port,
            log_level="warning",
            lifespan="off",
            access_log=False,
            ssl_certfile=certfile,
            ssl_keyfile=keyfile,
        )


def mint_token(
    settings: Settings, server: str, scopes: str, roles: str, *, app_only: bool = False, lifetime: int = 3600
) -> str:
    """An access token from the running dev issuer that matches these settings (else the only one running, else
    the settings'); which one, and why, goes to stderr so `$(make -s token)` takes the token alone."""
    config, issuer = _issuer(settings, server, serving=False)
    # The running server trusts the issuer it started, which this shell's DEV_ISSUER__PORT may not name.
    chosen, said = choose(config, running_issuers(config.key_dir))
    if chosen is not None:
        issuer = DevIssuer(replace(config, instance=chosen.instance, tenant_id=chosen.tenant))
    print(said, file=sys.stderr)
    return issuer.mint(scopes, roles, app_only=app_only, lifetime=lifetime, server=server)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m app.devissuer", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    token = sub.add_parser("token", help="print an access token for the dev server")
    token.add_argument("--server", default="", help="for SERVERS__{KEY}: its key (default: the first server)")
    token.add_argument("--scopes", default="mcp.read", help="space-separated delegated scopes (scp)")
    token.add_argument("--roles", default="", help="space-separated app roles")
    token.add_argument("--app", action="store_true", help="an app-only token (roles, no scp)")
    token.add_argument("--lifetime", type=int, default=3600, help="seconds until it expires")
    sub.add_parser("serve", help="serve the issuer on its own (for DEV_ISSUER__EMBEDDED=false, e.g. several workers)")
    args = parser.parse_args()
    settings = Settings(app_env="development")
    try:
        if args.command == "serve":
            serve_alone(settings)
            return
        print(mint_token(settings, args.server.lower(), args.scopes, args.roles, app_only=args.app,
                         lifetime=args.lifetime))  # fmt: skip
    except DevIssuerCommandError as exc:
        parser.exit(2, f"python -m app.devissuer: error: {exc}\n")
