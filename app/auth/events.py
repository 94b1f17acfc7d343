"""What authentication and authorization report: the seam the observability layer implements (`Observer`).

A protocol rather than an import, so identity sits below observability in the layers (see `pyproject.toml`).
"""

from __future__ import annotations

from typing import Any, Protocol

from starlette.types import Scope

from app.auth.principal import Principal


class AuthEvents(Protocol):
    """Receives each authentication and authorization outcome (metrics, span attributes, audit records)."""

    def auth_failed(self, scope: Scope, reason: str, started: float) -> None: ...

    def auth_succeeded(self, scope: Scope, principal: Principal) -> None: ...

    def authz_denied(
        self, scope: Scope, principal: Principal, message: Any, target: str | None, reason: str, started: float
    ) -> None: ...

    def route_access(
        self, scope: Scope, principal: Principal, route: str, denied_reason: str | None, started: float
    ) -> None: ...
