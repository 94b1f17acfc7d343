"""What every facade endpoint shares: its URLs, the state store, the clients, the audit log, and the resources it
signs clients in for (each with its own upstream client: one app registration per MCP server)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from app.auth.oauth_errors import OAuthError
from app.auth.resource import OIDC_SCOPES
from app.authserver.cimd import ClientDocuments
from app.authserver.clients import Client, Registry
from app.authserver.consent import render_error
from app.authserver.pages import PAGE_HEADERS
from app.authserver.protocol import error_json
from app.authserver.store import Sealed, StateStoreError
from app.authserver.upstream import Upstream
from app.core.renamed import deprecated_aliases
from app.observability.audit import AuditLog
from app.observability.audit_fields import bounded, client_ip

log = logging.getLogger("app.authserver")

CODE_SECONDS = 60
TRANSACTION_SECONDS = 600


@dataclass(frozen=True)
class Target:
    """One MCP server the facade signs clients in for: its resource identifier (what RFC 8707 `resource` names),
    its App ID URI and scopes, and its own upstream client (its app registration, its credential)."""

    resource: str
    app_id_uri: str
    server_name: str
    scopes: tuple[str, ...]  # `{app_id_uri}/{scope}`, as its Protected Resource Metadata lists them
    upstream: Upstream
    audit_name: str | None = None  # named in audit records when the facade serves several servers

    def scope_known(self, scope: str) -> bool:
        """One of its scopes, its `/.default`, or an OpenID Connect scope (the authorization server's own)."""
        return scope in self.scopes or scope == f"{self.app_id_uri}/.default" or scope in OIDC_SCOPES


@dataclass
class FacadeContext:
    """What the facade's endpoints share (named apart from the SDK's tool `Context`). `targets`: the servers it
    signs clients in for, the first being the one a request without `resource` is for."""

    issuer: str
    targets: tuple[Target, ...]
    consent_seconds: int
    refresh_seconds: int
    secure_cookies: bool
    sealed: Sealed
    registry: Registry
    documents: ClientDocuments
    audit: AuditLog
    admit_registration: Callable[[str], Awaitable[int]]  # a client IP -> 0 (go on) or seconds to wait (refused)
    _by_resource: dict[str, Target] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.targets:
            raise ValueError("the facade needs at least one resource to sign clients in for")
        self._by_resource = {target.resource: target for target in self.targets}

    @property
    def scopes(self) -> list[str]:
        """Every server's scopes, in server order (RFC 8414 `scopes_supported`)."""
        return list(dict.fromkeys(scope for target in self.targets for scope in target.scopes))

    def target(self, resource: str | None) -> Target:
        """The server RFC 8707 `resource` names (compared exactly, as clients compare PRM's `resource`); none named:
        the first. Any other value is `invalid_target`, naming the resources there are."""
        if resource is None:
            return self.targets[0]
        found = self._by_resource.get(resource)
        if found is None:
            known = ", ".join(target.resource for target in self.targets)
            raise OAuthError(
                "invalid_target",
                f"resource {resource[:200]!r} is not a resource this authorization server signs in for; "
                f"it signs in for: {known}",
            )
        return found

    async def client(self, client_id: str | None) -> Client:
        """The client by id: pre-registered, CIMD (an URL), or registered through DCR."""
        if not client_id:
            raise OAuthError("invalid_request", "client_id is required")
        if len(client_id) > 2000:
            raise OAuthError("invalid_client", "client_id is too long")
        client = self.registry.pre.get(client_id)
        if client is None and "://" in client_id:
            client = await self.documents.client(client_id)
        elif client is None:
            client = await self.registry.find(client_id)
        if client is None:
            raise OAuthError("invalid_client", f"unknown client_id {client_id[:80]!r}: register it first (DCR)")
        return client

    def record(self, event: str, request: Request, **fields: Any) -> None:
        kept = {k: bounded(v) for k, v in fields.items() if v is not None}  # caller text (a CIMD URL) stays bounded
        self.audit.record(event, client_ip=bounded(client_ip(request.scope)), **kept)


def answering(
    handler: Callable[[Request], Awaitable[Response]], page: bool = False
) -> Callable[[Request], Awaitable[Response]]:
    """OAuth errors as JSON (RFC 6749 section 5.2), or as a page for the browser; never an exception."""

    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except StateStoreError:
            log.warning("authorization-server state unavailable")
            error = OAuthError("temporarily_unavailable", "the authorization server's state is unavailable", 503)
        except OAuthError as exc:
            error = exc
        except OSError:  # Redis unreachable, say: a clear 503, not a traceback
            log.warning("authorization-server state unreachable")
            error = OAuthError("temporarily_unavailable", "the authorization server's state is unreachable", 503)
        if page:
            retry = {"retry-after": str(error.retry_after)} if error.retry_after else {}
            html = render_error(f"Sign-in refused: {error.error}", error.description)
            return HTMLResponse(html, status_code=error.status, headers=PAGE_HEADERS | retry)
        return error_json(error)

    return endpoint


# `Context`, the old name, clashed with the SDK's tool `Context`: kept, deprecated, for one release.
__getattr__ = deprecated_aliases(__name__, {"Context": "FacadeContext"}, globals())
