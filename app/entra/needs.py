"""What one server's app registration must hold, as plain values: computed from its catalog and settings by
app/compose/review.py, turned into a Graph application body by the manifest, checked by the doctor."""

from __future__ import annotations

from dataclasses import dataclass

VSCODE_CLIENT_ID = "aebc6443-996d-45c2-90f0-388ff96faa56"  # Visual Studio Code's first-party public client at Entra
TOKEN_EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"  # noqa: S105  # a federated credential's audience, no secret


@dataclass(frozen=True)
class Permission:
    """A delegated scope or an app role: its `value` as tokens carry it, and a description from the catalog."""

    value: str
    description: str


@dataclass(frozen=True)
class AppNeeds:
    """One server's app registration as its code needs it.

    `resource` is the URL clients send as RFC 8707 `resource` (`{MCP__RESOURCE_HOST}{path}`); `app_id_uri` the one
    configured (it must equal `resource`, or Entra refuses the sign-in); `client_id` the registration's when settings
    name it (None: find or create by App ID URI); `redirect_uris` the facade's callback when AUTH_SERVER__ENABLED and
    the connect page's when CONNECT__ENABLED.
    """

    key: str
    display_name: str
    client_id: str | None
    tenant_id: str | None
    resource: str
    app_id_uri: str
    scopes: tuple[Permission, ...]
    roles: tuple[Permission, ...]
    redirect_uris: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"SERVERS__{self.key.upper()}" if self.key else "the first server"
