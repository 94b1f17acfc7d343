"""What the development issuer takes: the values it reads, and nothing else (app/compose/devissuer.py makes them).

Like an Entra tenant with several app registrations: one `DevApp` per MCP server of the app, each with its own client
id (the `aud` of its tokens), App ID URI and scopes; a request picks one by RFC 8707 `resource` or by its scopes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr


@dataclass(frozen=True)
class DevApp:
    """One app registration of the dev tenant: one MCP server as a protected resource."""

    key: str  # "" for the first server, else its SERVERS__{KEY} name (`python -m app.devissuer token --server KEY`)
    audience: str  # the `aud` of its access tokens: the server's client id
    app_id_uri: str  # its scopes are `{app_id_uri}/{scope}`; RFC 8707 `resource` must be it, as at Entra
    resource: str  # the MCP endpoint's URL (what `make run` prints to try)
    server_name: str  # named on the sign-in page
    known_scopes: tuple[str, ...] = ()  # what the sign-in page offers: the scopes and roles the server declares
    known_roles: tuple[str, ...] = ()
    # The authorization-server facade signing in as this server's app (its client id and the facade's callback URI,
    # with AUTH_SERVER__ENABLED), and that app's secret.
    facade_client: tuple[str, str] | None = None
    facade_secret: SecretStr | None = None


@dataclass(frozen=True)
class DevIssuerConfig:
    app_env: str  # it never runs in production
    instance: str  # the issuer's base URL, as the server trusts it (AZUREAD__INSTANCE, by default its loopback URL)
    tenant_id: str
    host: str  # DEV_ISSUER__*: where it listens (loopback only), its key directory, its one public client
    port: int
    key_dir: Path
    client_id: str
    token_seconds: int
    tls: bool
    rate: str  # RATE_LIMIT__UNAUTHENTICATED, per client IP
    apps: tuple[DevApp, ...]  # one per server, the first server's first (a request naming none is for it)

    def __post_init__(self) -> None:
        if not self.apps:
            raise ValueError("the dev issuer needs at least one app (one per MCP server)")

    @property
    def first(self) -> DevApp:
        return self.apps[0]

    def app(self, key: str = "") -> DevApp:
        """The app of server `key` ("" the first); an unknown key is a `LookupError` naming the keys there are."""
        for app in self.apps:
            if app.key == key:
                return app
        names = ", ".join(repr(app.key) for app in self.apps)
        raise LookupError(f"no server {key!r} at the dev issuer (its servers: {names}; '' is the first)")
