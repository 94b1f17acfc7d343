"""Who is calling: the identity a validated token carries, and the typed accessors tools and routes use."""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.types import Scope

from app.core.binding import bind

# Entra Agent ID facet values in xms_act_fct / xms_sub_fct (Microsoft's "Token claims reference for agent IDs").
AGENT_IDENTITY = 11
AGENT_USER = 13
Kind = Literal["user", "app", "agent"]


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller. Users are keyed by tenant + oid; apps and autonomous agents by tenant + their app
    id; an agent acting for a user by tenant + the user's oid + the agent's app id (its own budget, not the user's).
    """

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
    acrs: frozenset[str] = frozenset()  # the Conditional Access authentication contexts the token satisfies
    actor_facets: frozenset[int] = frozenset()  # Entra Agent ID `xms_act_fct`: what the calling app (azp) is
    subject_facets: frozenset[int] = frozenset()  # `xms_sub_fct`: what the subject (sub / oid) is
    agent_parent: str | None = None  # `xms_par_app_azp`: an agent's parent app (its blueprint); for audit only
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
    def is_agent(self) -> bool:
        """An Entra Agent ID agent calls: the actor facets name an agent identity, or a parent app is named."""
        return AGENT_IDENTITY in self.actor_facets or self.agent_parent is not None

    @property
    def kind(self) -> Kind:
        return "agent" if self.is_agent else "app" if self.is_app else "user"

    @property
    def on_behalf_of(self) -> str | None:
        """The user a delegated agent acts for (their object id); None for anyone else. An agent acting as its own
        agent user (subject facet 13), or as itself (11, or an app-only token), acts for nobody."""
        if not self.is_agent or self.is_app or self.subject_facets & {AGENT_IDENTITY, AGENT_USER}:
            return None
        return self.oid or self.sub

    @property
    def key(self) -> str:
        """A stable per-principal key (rate limits, sessions, tasks): tenant plus object id (or subject) for users,
        app id for apps and autonomous agents, user and agent app id for an agent acting for a user."""
        if self.is_agent:
            user = self.on_behalf_of
            return f"{self.tid}:{user}:{self.client_id}" if user else f"{self.tid}:{self.client_id}"
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
            "kind": self.kind,
            **({"agent_parent": self.agent_parent, "on_behalf_of": self.on_behalf_of} if self.is_agent else {}),
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


def set_for_request(principal: Principal) -> None:
    """Make `principal` the caller for the rest of this request (a route's auth dependency, which cannot wrap the
    endpoint in a with-block; the server runs each request in a task of its own, so nothing outlives it)."""
    _current.set(principal)


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
