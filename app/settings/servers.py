"""More MCP servers in one app: `SERVERS__{NAME}__*`, one app registration, one tools folder and one lock each.

The server every setup has (`tools/` at `MCP__PATH`, the `AZUREAD__*` registration) is the first; each entry here is
one more, served by the same process behind the same edge, but isolated as a protected resource: its own path,
App ID URI and audiences, scopes, roles, catalog, tools.lock, limits and audit name.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field, SecretStr, field_validator

from app.core.startup import StartupError
from app.settings.fields import CsvList, Section, acyclic, app_id_uri_shape, csv_list, scope_closure

if TYPE_CHECKING:
    from app.settings import Settings

SERVERS_DIR = Path(__file__).resolve().parents[2] / "servers"
NAME = re.compile(r"[a-z][a-z0-9-]{0,30}")
# Development without Entra: each server is its own app at the dev issuer, with a client id derived from its name.
_DEV_NAMESPACE = uuid.UUID("11111111-1111-4111-8111-111111111111")


class NamedServerSettings(Section):
    """One more MCP server (`SERVERS__HR__PATH=/hr/mcp`): everything not set here is shared with the first server
    (the tenant, the edge, limits' values, telemetry, the audit sink)."""

    path: str
    """Where this server's MCP endpoint is served, e.g. `/hr/mcp` (required; never another server's path)."""
    server_name: str | None = None
    """The name it reports to clients, in audit records, spans and metrics (default: its key, e.g. `hr`)."""
    tools_dir: Path | None = None
    """Its tools (default: `servers/{name}/tools` in the repository)."""
    lock_file: Path | None = None
    """Its reviewed tools.lock (default: `tools.lock` beside its tools folder, `servers/{name}/tools.lock`)."""
    client_id: str | None = None
    """The Application (client) ID of its own app registration (required in production; in development without
    Entra, the dev issuer gives each server its own id)."""
    app_id_uri: str | None = None
    """Its Application ID URI (default: its resource identifier `{MCP__RESOURCE_HOST}{path}`, as Entra's guidance for
    MCP servers says; `{client_id}` is replaced by its client id). Never another server's."""
    audiences: CsvList | None = None
    """Override of the token audiences it accepts (default: its client id and its App ID URI)."""
    client_secret: SecretStr | None = None
    """Its own client secret, for on-behalf-of calls and the facade (unused with `AZUREAD__MANAGED_IDENTITY`, which
    applies to every server: give its app registration the federated credential too)."""
    client_certificate_path: Path | None = None
    """A PEM file with its private key and certificate (preferred over a secret)."""
    required_scopes: CsvList = Field(default_factory=list)
    """Delegated scopes every user caller of this server needs on top of each tool's own."""
    required_roles: CsvList = Field(default_factory=list)
    """App roles every app-only caller of this server needs on top of each tool's own."""
    scope_implies: dict[str, list[str]] = Field(default_factory=dict)
    """Its scope hierarchy, as JSON (as MCP__SCOPE_IMPLIES)."""

    _split_lists = field_validator("audiences", "required_scopes", "required_roles", mode="before")(csv_list)

    @field_validator("path")
    @classmethod
    def _path_shape(cls, value: str) -> str:
        if not re.fullmatch(r"(/[A-Za-z0-9._~-]+)+", value):
            raise ValueError("SERVERS__{NAME}__PATH must start with '/' and not end with '/', e.g. /hr/mcp")
        return value

    @field_validator("app_id_uri")
    @classmethod
    def _app_id_uri_shape(cls, value: str | None) -> str | None:
        return app_id_uri_shape(value)

    @field_validator("client_secret", "client_certificate_path", "client_id", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    _no_cycles = field_validator("scope_implies")(acyclic)

    @property
    def implied_scopes(self) -> dict[str, frozenset[str]]:
        return scope_closure(self.scope_implies)


def check_names(servers: dict[str, NamedServerSettings]) -> dict[str, NamedServerSettings]:
    """Keys are lower-case names (env names are read case-insensitively): `hr`, `finance-eu`."""
    for name in servers:
        if not NAME.fullmatch(name):
            shown = "".join(c if c.isprintable() else "?" for c in name.upper()[:40])  # the message stays one line
            raise ValueError(
                f"SERVERS__{shown}: a server's name is 1-31 lower-case letters, digits or '-', starting with a letter"
            )
    return servers


def tools_dir(name: str, server: NamedServerSettings) -> Path:
    return server.tools_dir or SERVERS_DIR / name / "tools"


def lock_path(name: str, server: NamedServerSettings) -> Path:
    return server.lock_file or tools_dir(name, server).resolve().parent / "tools.lock"


def dev_client_id(name: str) -> str:
    """The client id the dev issuer gives server `name` (stable, so `make token --server` tokens survive restarts)."""
    return str(uuid.uuid5(_DEV_NAMESPACE, name))


@dataclass(frozen=True)
class Served:
    """One server of this app, as settings describe it (app/compose/resource.py makes it a resource server)."""

    key: str  # "" for the first server; the `SERVERS__{KEY}` name otherwise (`python -m app stdio --server KEY`)
    name: str  # what clients, audit records, spans and metrics call it
    path: str
    tools_dir: Path
    lock_path: Path
    client_id: str
    app_id_uri: str
    audiences: tuple[str, ...]
    required_scopes: tuple[str, ...]
    required_roles: tuple[str, ...]
    implied_scopes: dict[str, frozenset[str]]
    secret_name: str  # its client secret's vault-style name in the secret store
    client_secret: SecretStr | None
    certificate_path: Path | None
    # AZUREAD__MANAGED_IDENTITY (every server's; wins over the secret and the certificate) and its client id.
    managed_identity: bool = False
    managed_identity_client_id: str | None = None

    @property
    def label(self) -> str:
        return f"SERVERS__{self.key.upper()}" if self.key else "MCP"


class UnknownServerError(StartupError):
    """A `--server KEY` names no server of this app."""

    label = "servers error"


def find(found: list[Served], key: str) -> Served:
    """The server `key` names ("" the first); `UnknownServerError` naming the servers declared."""
    for one in found:
        if one.key == key:
            return one
    keys = ", ".join(one.key for one in found if one.key) or "none"
    raise UnknownServerError(f"no server {key!r} in SERVERS__* (the servers declared: {keys})")


def served(settings: Settings) -> list[Served]:
    """The first server from MCP__* and AZUREAD__*, then each `SERVERS__{NAME}` in name order."""
    first = Served(
        key="",
        name=settings.mcp.server_name,
        path=settings.mcp.path,
        tools_dir=settings.tools.dir,
        lock_path=settings.tools.lock_path,
        client_id=settings.client_id,
        app_id_uri=settings.app_id_uri,
        audiences=tuple(settings.audiences),
        required_scopes=tuple(settings.mcp.required_scopes),
        required_roles=tuple(settings.mcp.required_roles),
        implied_scopes=settings.mcp.implied_scopes,
        secret_name="azuread--client-secret",  # noqa: S106 (a name, not a value)
        client_secret=settings.azuread.client_secret,
        certificate_path=settings.azuread.client_certificate_path,
        managed_identity=settings.azuread.managed_identity,
        managed_identity_client_id=settings.azuread.managed_identity_client_id,
    )
    found = [first]
    for key, one in sorted(settings.servers.items()):
        client_id = one.client_id or dev_client_id(key)
        app_id_uri = (one.app_id_uri or f"{settings.resource_host}{one.path}").replace("{client_id}", client_id)
        found.append(
            Served(
                key=key,
                name=one.server_name or key,
                path=one.path,
                tools_dir=tools_dir(key, one),
                lock_path=lock_path(key, one),
                client_id=client_id,
                app_id_uri=app_id_uri,
                audiences=tuple(one.audiences) if one.audiences else (client_id, app_id_uri),
                required_scopes=tuple(one.required_scopes),
                required_roles=tuple(one.required_roles),
                implied_scopes=one.implied_scopes,
                secret_name=f"servers--{key}--client-secret",
                client_secret=one.client_secret,
                certificate_path=one.client_certificate_path,
                managed_identity=settings.azuread.managed_identity,
                managed_identity_client_id=settings.azuread.managed_identity_client_id,
            )
        )
    return found


def refuse_shared(found: list[Served], production: bool, servers: dict[str, NamedServerSettings]) -> None:
    """Each server its own path, App ID URI, name, tools folder, lock, client id and audiences (a shared client id or
    audience would let one server accept the other's tokens); in production, each its own registration."""
    seen: dict[str, dict[str, str]] = {}
    for one in found:
        label = f"SERVERS__{one.key.upper()}" if one.key else "the first server (MCP__*, AZUREAD__*)"
        audiences = [("audience", value) for value in dict.fromkeys((one.client_id, *one.audiences))]
        for what, value in (
            ("path", one.path),
            ("App ID URI", one.app_id_uri),
            ("name", one.name),
            ("tools folder", str(one.tools_dir.resolve())),
            ("lock", str(one.lock_path.resolve())),
            *audiences,
        ):
            known = seen.setdefault(what, {})
            if (other := known.get(value.lower())) is not None:
                raise ValueError(
                    f"{label} and {other} have the same {what} {value!r}: each server needs its own (docs/servers.md)"
                )
            known[value.lower()] = label
        if production and one.key and not servers[one.key].client_id:
            raise ValueError(f"production mode needs {label}__CLIENT_ID: each server has its own app registration")
