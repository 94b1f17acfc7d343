"""FastAPI dependencies for routes beside MCP: the same token rules, validator, challenges and audit as `/mcp`.

    from app import Caller, requires

    @router.get("/api/reports", dependencies=[requires(scopes=["reports.read"], roles=["reports.read.all"])])
    async def reports(caller: Caller) -> list[Report]: ...

The three guards are spelt alike, bare in `dependencies=[...]` (of a route, or of a whole `APIRouter`):
`authenticated` (any valid token: 401 / 400 otherwise), `requires(...)` (authorizes as a tool's decorator does: 403
step-up naming the scopes; users need the scopes, app-only callers the roles, and both need MCP__REQUIRED_SCOPES /
_ROLES) and `public` (deliberately open, logged). A route with none of them fails startup. `caller: Caller` hands a
route (or a tool) the caller, authenticating it. `authenticated` and `public` are FastAPI `Depends` that depend on
themselves, so the older `Depends(authenticated)` / `Depends(public)` still work (deprecated; discovery warns).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Protocol

from fastapi import Request, Security, params
from fastapi.openapi.models import OAuth2, OAuthFlowAuthorizationCode, OAuthFlows
from fastapi.responses import JSONResponse
from fastapi.security import SecurityScopes
from fastapi.security.base import SecurityBase
from starlette.types import Scope

from app.auth.authz import LOGGED, Guard
from app.auth.challenge import Answer, Challenges
from app.auth.downstream import TokenSource, use_for_request
from app.auth.events import AuthEvents
from app.auth.middleware import read_bearer
from app.auth.principal import Principal, set_for_request
from app.auth.tokens import EntraTokenValidator, InvalidTokenError, token_fingerprint
from app.catalog.registry import AgentPolicy, Requirement, check_agents, check_auth_context

log = logging.getLogger("app.auth")

SCHEME_NAME = "entra"


class AttemptThrottle(Protocol):
    """The per-IP budget for traffic that does not authenticate (implemented in app/edge/route_throttle.py)."""

    async def admit(self, scope: Scope) -> int | None: ...  # None to go on, else Retry-After seconds

    async def failed(self, scope: Scope) -> None: ...


@dataclass(frozen=True)
class RouteAuth:
    """What the route dependencies use, built once by the composition root (`app.state.route_auth`)."""

    validator: EntraTokenValidator
    challenges: Challenges
    guard: Guard
    observer: AuthEvents
    throttle: AttemptThrottle
    downstream: TokenSource | None = None  # the first server's on-behalf-of, for `downstream_token()` in a route


class AuthProblem(Exception):
    """An auth failure on a route: answered as `/mcp` answers it (status, JSON body, `WWW-Authenticate`)."""

    def __init__(self, answer: Answer) -> None:
        super().__init__(answer.body.get("error", "auth"))
        self.answer = answer


async def answer_auth_problem(_: Request, exc: Exception) -> JSONResponse:
    """The exception handler the composition root registers for `AuthProblem`."""
    assert isinstance(exc, AuthProblem)
    answer = exc.answer
    return JSONResponse(answer.body, answer.status, headers={**dict(answer.headers), "cache-control": "no-store"})


class SelfDepends(params.Depends):
    """A FastAPI `Depends` whose dependency is itself: usable bare (`dependencies=[x]`, `Annotated[T, x]`) and,
    as before, wrapped (`Depends(x)`), both resolving to the same callable (so discovery and caching see one)."""

    def __init__(self) -> None:
        params.Depends.__init__(self, self)  # type: ignore[arg-type]  # callable: subclasses define __call__

    __eq__ = object.__eq__  # by identity: the dataclass's field-wise ones would recurse into `dependency`
    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


class EntraBearer(SecurityBase, SelfDepends):
    """Authenticates a route's caller from the Authorization header; the OpenAPI OAuth2 scheme for routes.

    A `SecurityBase`, so FastAPI lists it (and every scope `requires` adds) in the OpenAPI schema; the flow's
    URLs and scopes are filled in per app when the schema is built (app/api/openapi.py).
    """

    def __init__(self) -> None:
        SelfDepends.__init__(self)
        flow = OAuthFlowAuthorizationCode(authorizationUrl="/authorize", tokenUrl="/token", scopes={})
        self.model = OAuth2(flows=OAuthFlows(authorizationCode=flow), description="Microsoft Entra ID")
        self.scheme_name = SCHEME_NAME

    async def __call__(self, request: Request) -> Principal:
        known = getattr(request.state, "principal", None)
        if isinstance(known, Principal):  # already authenticated for this request (another dependency asked)
            return known
        auth = route_auth(request)
        scope, started = request.scope, time.perf_counter()
        if (retry_after := await auth.throttle.admit(scope)) is not None:
            raise AuthProblem(too_many(retry_after))
        presented = read_bearer(scope)
        if presented.refusal is not None:
            reason, description = presented.refusal
            await self._failed(auth, scope, reason, started)
            raise AuthProblem(auth.challenges.invalid_request_answer(description))
        if not presented.token:
            log.info("auth failed", extra={"reason": "no_token"})
            await self._failed(auth, scope, "no_token", started)
            raise AuthProblem(auth.challenges.unauthorized_answer(presented.header_sent))
        try:
            principal = await auth.validator.validate(presented.token)
        except InvalidTokenError as exc:
            log.info("auth failed", extra={"reason": exc.reason, "token": token_fingerprint(presented.token)})
            await self._failed(auth, scope, exc.reason, started)
            raise AuthProblem(auth.challenges.unauthorized_answer(token_presented=True)) from None
        auth.observer.auth_succeeded(scope, principal)
        request.state.principal = principal
        set_for_request(principal)  # `current_principal()` and `downstream_token()` work in the route, as in a tool
        use_for_request(auth.downstream)
        return principal

    @staticmethod
    async def _failed(auth: RouteAuth, scope: Scope, reason: str, started: float) -> None:
        auth.observer.auth_failed(scope, reason, started)
        await auth.throttle.failed(scope)


authenticated = EntraBearer()
"""Guard: any caller with a valid token for this server (401, or 400 for a malformed request, otherwise).

Goes bare into `dependencies=[...]`, like `public` and `requires(...)`, on a route or a whole `APIRouter`. A route
that also wants the caller takes a `caller: Caller` parameter instead (which authenticates it the same way).

Example:
    @router.post("/api/echo", dependencies=[authenticated])
    async def echo(body: dict[str, str]) -> dict[str, str]: ...
"""

Caller = Annotated[Principal, authenticated]
"""The current caller, as a parameter type: `caller: Caller` in a route or in a tool.

In a route it authenticates the request (as `authenticated` does) and hands over the caller; in a `@tool`,
`@resource` or `@prompt` function the framework fills it in (it is not an argument the client sees). Outside a
signature (a helper the tool calls), `current_principal()` returns the same caller.

Example:
    @tool(scopes=["mcp.read"])
    def whoami(caller: Caller) -> str:
        return caller.key
"""


class Requires:
    """Authorizes the authenticated caller for the scopes of the `Security(...)` it is used in, or its roles (and the
    authentication context and agent policy, when given)."""

    def __init__(
        self, roles: Iterable[str] = (), auth_context: str | None = None, agents: AgentPolicy | None = None
    ) -> None:
        self.roles = frozenset(roles)
        self.auth_context, self.agents = auth_context, agents

    async def __call__(self, request: Request, security_scopes: SecurityScopes, caller: Caller) -> Principal:
        auth, started = route_auth(request), time.perf_counter()
        needs = Requirement(frozenset(security_scopes.scopes), self.roles, False, self.auth_context, self.agents)
        decision = auth.guard.decide(caller, needs)
        route = route_template(request)
        auth.observer.route_access(request.scope, caller, route, decision.reason or None, started)
        if not decision.allowed:
            reason = LOGGED[decision.refused]
            log.info("authz denied", extra={"principal": caller.key, "target": route, "reason": reason})
            challenges = auth.challenges
            raise AuthProblem(
                challenges.refusal_answer(decision.refused, decision.scopes, decision.reason, decision.auth_context)
            )
        return caller


def requires(
    scopes: Iterable[str] = (),
    roles: Iterable[str] = (),
    *,
    auth_context: str | None = None,
    agents: AgentPolicy | None = None,
) -> Any:
    """Guard: users need all `scopes`, app-only callers all `roles`, exactly as `@tool(scopes=..., roles=...)`.

    Goes bare into `dependencies=[...]`, like `authenticated` and `public`, on a route or a whole `APIRouter`.
    The caller is authenticated first (401); one without the grants gets 403 `insufficient_scope` naming the
    scopes. It is FastAPI's `Security(...)`, so the scopes show in the OpenAPI schema and in Protected Resource
    Metadata. (`caller: Annotated[Principal, requires(...)]`, guard and caller in one parameter, works too.)

    Args:
        scopes: delegated scopes a user token must all hold (`scp`), e.g. `["reports.read"]`.
        roles: app roles an app-only token must all hold (`roles`), e.g. `["reports.read.all"]`.
        auth_context: an Entra authentication context id (`"c1"` .. `"c99"`) the token's `acrs` must hold; without
            it the caller gets 401 with Entra's claims challenge (docs/authorization.md#authentication-context).
        agents: Entra Agent ID callers: `"allow"`, `"deny"` or `"delegated-only"` (default `MCP__AGENTS`).

    Returns:
        The dependency to put in `dependencies=[...]`.

    Raises:
        TypeError: `scopes` or `roles` is a string, or both are empty (use `authenticated` for any caller); or
            `auth_context` / `agents` is not one of the values above.

    Example:
        @router.get("/api/reports", dependencies=[requires(scopes=["reports.read"], roles=["reports.read.all"])])
        async def reports(caller: Caller) -> list[str]: ...
    """
    if isinstance(scopes, str) or isinstance(roles, str):
        raise TypeError("scopes and roles are lists of names, e.g. requires(scopes=['files.read'])")
    scopes, roles = list(scopes), list(roles)
    if not scopes and not roles:
        raise TypeError("requires() needs scopes or roles; for any authenticated caller use `authenticated`")
    return Security(Requires(roles, check_auth_context(auth_context), check_agents(agents)), scopes=scopes)


class Public(SelfDepends):
    """Declares a route open to anyone, without a token; each one is logged as a warning at startup.

    Goes bare into `dependencies=[...]`, like `authenticated` and `requires(...)`. Public routes do not spend the
    per-IP budget for requests that fail to authenticate.

    Example:
        @router.get("/api/status", dependencies=[public])
        async def status() -> dict[str, str]: ...
    """

    def __call__(self) -> None:
        return None


public = Public()
"""Guard: the route is open to anyone, without a token (logged at startup). `dependencies=[public]`."""


def too_many(retry_after: int) -> Answer:
    """429 for an IP whose budget for failed authentication is spent."""
    body = {"error": "rate_limited", "error_description": "too many requests that did not authenticate; retry later"}
    return Answer(429, body, [("retry-after", str(retry_after))])


def route_auth(request: Request) -> RouteAuth:
    auth = getattr(request.app.state, "route_auth", None)
    if not isinstance(auth, RouteAuth):  # a router mounted on an app this framework did not build
        raise RuntimeError("route auth is not configured: serve routes through app.main.create_app")
    return auth


def route_template(request: Request) -> str:
    """The matched route's path template (`/api/items/{item_id}`): the server's text, not the caller's."""
    route = request.scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else request.url.path
