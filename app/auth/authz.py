"""Authorization: who may use which tool, resource or prompt, answered in HTTP before the SDK dispatches.

`ParseOperation` (app/auth/operation.py) has classified the request; this layer refuses what is malformed or
unknown, answers 403 to an agent the target's policy refuses, 403 step-up when the caller lacks a scope or role any
of the request's targets needs, and 401 with Entra's claims challenge when the token lacks a target's
authentication context.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from mcp.shared.uri_template import UriTemplate
from starlette.types import ASGIApp, Receive, Scope, Send

from app.auth.challenge import Challenges
from app.auth.events import AuthEvents
from app.auth.operation import Target, operation_from_scope, parsed_message
from app.auth.principal import Principal, principal_from_scope
from app.catalog.registry import AgentPolicy, Catalog, Requirement
from app.core.asgi import jsonrpc_error, send_json

log = logging.getLogger("app.authz")


Refused = Literal["scope", "claims", "agent"]  # 403 step-up, 401 claims challenge, 403 by agent policy
LOGGED: dict[Refused, str] = {"scope": "insufficient_scope", "claims": "insufficient_claims", "agent": "agent_policy"}


@dataclass(frozen=True)
class Decision:
    allowed: bool
    scopes: tuple[str, ...] = ()  # everything the operation needs, in the form clients request from Entra
    reason: str = ""
    refused: Refused = "scope"
    auth_context: str | None = None  # "claims": the authentication context the token must carry in `acrs`


ALLOWED = Decision(True)  # one shared instance: a frozen dataclass costs a microsecond to build, per request


class Guard:
    """Decides from a principal and a requirement; knows every target's requirement up front."""

    def __init__(
        self,
        catalog: Catalog,
        base_scopes: Iterable[str],
        base_roles: Iterable[str],
        scope_uri: Any,
        agents: AgentPolicy = "delegated-only",
    ) -> None:
        """`agents`: MCP__AGENTS, the policy for Entra Agent ID callers where a target sets none."""
        self._by_name: dict[tuple[str, str], Requirement] = {
            (s.kind, s.uri or s.name): s.requirement for s in catalog.specs
        }
        self._templates = [
            (UriTemplate.parse(s.uri or ""), s.requirement) for s in catalog.of("resource") if "{" in (s.uri or "")
        ]
        self._base = Requirement(frozenset(base_scopes), frozenset(base_roles))
        self._scope_uri = scope_uri
        self._agents: AgentPolicy = agents

    def requirement(self, kind: str, target: str) -> Requirement | None:
        found = self._by_name.get((kind, target))
        if found is None and kind == "resource":
            found = next((req for template, req in self._templates if template.match(target) is not None), None)
        return found

    def decide(self, principal: Principal, requirement: Requirement | None) -> Decision:
        """In order: an agent the policy refuses (nothing the caller can fix); then delegated callers need the base
        scopes plus the target's scopes, app callers its roles (403 step-up); then the authentication context.
        No target (`initialize`, lists): only the base requirement, no agent policy (lists hide what it refuses)."""
        req = requirement or Requirement(public=True)
        agents = req.agents or self._agents
        if requirement is not None and principal.is_agent and (refusal := self._agent_refusal(principal, agents)):
            return refusal
        if principal.is_app:
            needed_roles = self._base.roles | req.roles
            if not ((req.public or req.roles) and needed_roles <= principal.roles):
                needs = ", ".join(sorted(needed_roles)) or "none declared"
                return Decision(False, reason=f"requires app role(s): {needs}")
        else:
            needed = self._base.scopes | req.scopes
            if not (req.public or req.scopes):
                return Decision(False, (), f"requires app role(s): {', '.join(sorted(req.roles))}")
            if not needed <= principal.scopes:
                wanted = tuple(self._scope_uri(s) for s in sorted(needed))
                return Decision(False, wanted, f"requires scope(s): {', '.join(sorted(needed))}")
        context = req.auth_context
        if context is not None and context not in principal.acrs:
            reason = f"requires Conditional Access authentication context {context}: sign in again to satisfy it"
            return Decision(False, reason=reason, refused="claims", auth_context=context)
        return ALLOWED

    @staticmethod
    def _agent_refusal(principal: Principal, policy: AgentPolicy) -> Decision | None:
        if policy == "deny":
            return Decision(False, reason="agent identities may not use this (agents policy: deny)", refused="agent")
        if policy == "delegated-only" and principal.on_behalf_of is None:
            reason = "only an agent acting for a signed-in user may use this; this agent acts on its own"
            return Decision(False, reason=f"{reason} (agents policy: delegated-only)", refused="agent")
        return None

    def decide_all(self, principal: Principal, targets: tuple[Target, ...]) -> Decision:
        """Every target must be allowed (no target: the base requirement). An agent refusal comes first; a step-up
        names every scope the request needs, so one suffices; a claims challenge asks for one context at a time."""
        if not targets:
            return self.decide(principal, None)
        refused = [d for d in (self.decide(principal, self.requirement(*t)) for t in targets) if not d.allowed]
        if len(refused) <= 1:
            return refused[0] if refused else ALLOWED
        for kind in ("agent", "scope"):
            alike = [d for d in refused if d.refused == kind]
            if alike:
                scopes = tuple(sorted({s for d in alike for s in d.scopes}))
                return Decision(False, scopes, "; ".join(dict.fromkeys(d.reason for d in alike)), alike[0].refused)
        return min(refused, key=lambda d: int((d.auth_context or "c0")[1:]))

    def allows(self, principal: Principal, kind: str, target: str) -> bool:
        """Whether lists show the target to this caller: a missing authentication context is no reason to hide it
        (the caller can satisfy it by signing in again, and the issue is decided when it calls)."""
        decision = self.decide(principal, self.requirement(kind, target))
        return decision.allowed or decision.refused == "claims"


class AuthorizeOperation:
    """Refuses, before any handler runs: what `ParseOperation` could not classify (400), and a caller without what
    one of the request's targets needs (403 step-up naming every scope the request needs)."""

    def __init__(self, app: ASGIApp, guard: Guard, challenges: Challenges, observer: AuthEvents) -> None:
        self.app = app
        self.guard = guard
        self.challenges = challenges
        self.observer = observer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        principal = principal_from_scope(scope)
        if scope["type"] != "http" or principal is None:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        operation = operation_from_scope(scope)
        if operation is not None and operation.refusal is not None:
            refusal = operation.refusal
            log.info("request refused before dispatch", extra={"principal": principal.key, "reason": refusal.reason})
            self.observer.authz_denied(scope, principal, parsed_message(), None, refusal.reason, started)
            await send_json(send, refusal.status, jsonrpc_error(refusal.code, refusal.message, operation.request_id))
            return
        targets = operation.targets if operation is not None else ()
        decision = self.guard.decide_all(principal, targets)
        if not decision.allowed:
            target = targets[0][1] if targets else None
            log.info(
                "authz denied",
                extra={"principal": principal.key, "target": target, "reason": LOGGED[decision.refused]},
            )
            self.observer.authz_denied(scope, principal, parsed_message(), target, decision.reason, started)
            answer = self.challenges.refusal_answer(
                decision.refused, decision.scopes, decision.reason, decision.auth_context
            )
            await answer.send(send)
            return
        await self.app(scope, receive, send)
