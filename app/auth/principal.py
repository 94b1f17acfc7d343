"""Who is calling: the identity a validated token carries, and the typed accessors tools and routes use."""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.types import Scope

from app.core.binding import bind


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller. Users are keyed by tenant + oid; apps by tenant + their app id."""

    tid: str
    sub: str
    oid: str | None
    client_id: str
    scopes: frozenset[str]
    roles: frozenset[str]
    issuer: str
    token_version: str
    token_id: str
    name: str | None = None
    expires_at: int | None = None
    idtyp: str | None = None  # Entra's optional `idtyp` claim: "app" or "user", when the app registration asks for it
    # The raw inbound token, kept only as the on-behalf-of assertion; never logged, serialised or forwarded.
    _assertion: str = field(default="", repr=False, compare=False)

    @property
    def is_app(self) -> bool:
        """App-only tokens (client credentials, managed identity): `idtyp` says so when present (authoritative);
        without it, no delegated scopes and `oid` equal to `sub` (or absent)."""
        if self.idtyp in ("app", "user"):
            return self.idtyp == "app"
        return not self.scopes and (self.oid is None or self.oid == self.sub)

    @property
    def key(self) -> str:
        """A stable per-principal key: tenant plus object id (or subject) for users, app id for apps."""
        who = self.client_id if self.is_app else (self.oid or self.sub)
        return f"{self.tid}:{who}"

    def public_view(self) -> dict[str, Any]:
        """What a tool may show about the caller: identity claims, never the token."""
        return {
            "oid": self.oid,
            "sub": self.sub,
            "tid": self.tid,
            "client_id": self.client_id,
            "name": self.name,
            "scopes": sorted(self.scopes),
            "roles": sorted(self.roles),
            "kind": "app" if self.is_app else "user",
        }


_current: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("principal", default=None)


class NotAuthenticatedError(RuntimeError):
    """Raised when identity is asked for outside an authenticated request."""


def current_principal() -> Principal:
    """The caller of the request being handled: the escape hatch for code outside a tool's signature.

    In a `@tool`, `@resource` or `@prompt` function, take a `caller: Caller` parameter instead; call this where no
    signature can ask (a helper the tool calls, a `@completion`, whose signature is fixed). Never parse tokens.

    Returns:
        The authenticated `Principal` (oid, tid, client_id, name, scopes, roles, is_app, key); never its token.

    Raises:
        NotAuthenticatedError: outside a request (at import, in a background task started elsewhere).

    Example:
        def notes_of_caller() -> list[str]:
            return NOTES[current_principal().key]
    """
    principal = _current.get()
    if principal is None:
        raise NotAuthenticatedError("no authenticated principal in this context")
    return principal


def bound_principal() -> Principal | None:
    """The principal bound for this context, if any (local mode binds the signed-in user for the whole session)."""
    return _current.get()


def acting_as(principal: Principal | None) -> bind[Principal | None]:
    """Bind `principal` as the current caller for the enclosed block."""
    return bind(_current, principal)


def principal_from_scope(scope: Scope | Mapping[str, Any]) -> Principal | None:
    """The principal the authentication layer stored on this ASGI scope, if any."""
    state = scope.get("state")
    if type(state) is not dict:  # the exact-type test first: this runs several times per request
        state = state if isinstance(state, Mapping) else {}
    principal = state.get("principal")
    return principal if isinstance(principal, Principal) else None
