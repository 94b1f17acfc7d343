"""Who is calling: the identity a validated token carries, and the typed accessors tools and routes use."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.types import Scope


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
    # The raw inbound token, kept only as the on-behalf-of assertion; never logged, serialised or forwarded.
    _assertion: str = field(default="", repr=False, compare=False)

    @property
    def is_app(self) -> bool:
        """App-only tokens (client credentials, managed identity) carry roles and no delegated scopes."""
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
    """The caller of the request being handled. Tools call this; they never parse tokens."""
    principal = _current.get()
    if principal is None:
        raise NotAuthenticatedError("no authenticated principal in this context")
    return principal


@contextmanager
def acting_as(principal: Principal | None) -> Iterator[None]:
    """Bind `principal` as the current caller for the enclosed block."""
    token = _current.set(principal)
    try:
        yield
    finally:
        _current.reset(token)


def principal_from_scope(scope: Scope | Mapping[str, Any]) -> Principal | None:
    """The principal the authentication layer stored on this ASGI scope, if any."""
    state = scope.get("state") or {}
    principal = state.get("principal") if isinstance(state, Mapping) else None
    return principal if isinstance(principal, Principal) else None
