"""The per-IP budget for traffic that does not authenticate, for the routes beside MCP.

`ThrottleUnauthenticated` guards `/mcp` as ASGI middleware; a route's auth runs inside FastAPI, so the route
dependencies call this through the `AttemptThrottle` seam (app/auth/dependencies.py) instead. Same bucket
(RATE_LIMIT__UNAUTHENTICATED per client IP, shared with `/mcp`), same storage and storage-error policy.
"""

from __future__ import annotations

from limits import parse_many
from starlette.types import Scope

from app.edge.limiter import RateCounter
from app.edge.ratelimit import client_ip
from app.observability.telemetry import record_rate_limit


class FailedAuthThrottle:
    """Refuses an IP whose budget is spent before any token work; each failed attempt spends from it."""

    def __init__(self, limiter: RateCounter, rate: str) -> None:
        self.limiter = limiter
        self.rate = parse_many(rate)

    async def admit(self, scope: Scope) -> int | None:
        """None to go on; else the seconds until the IP may try again."""
        ip = client_ip(scope)
        if await self.limiter.test(self.rate, "ip", ip) is not False:  # None: storage down, the policy decides later
            return None
        verdict = await self.limiter.hit(self.rate, "ip", ip)  # normally refused again; this gives Retry-After
        if verdict.allowed:
            return None
        record_rate_limit("rejected", "per-client-ip")
        return max(verdict.retry_after, 1)

    async def failed(self, scope: Scope) -> None:
        await self.limiter.hit(self.rate, "ip", client_ip(scope))
