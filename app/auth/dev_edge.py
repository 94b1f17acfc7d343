"""The dev issuer's own edge: a loopback Host allow-list (no DNS rebinding onto the sign-in page) and a per-IP
throttle from RATE_LIMIT__UNAUTHENTICATED, like the MCP endpoint's unauthenticated traffic.

The dev issuer runs as its own uvicorn app, embedded or standalone (`python -m app.auth.dev_issuer serve`), so this
is its own in-process moving window: every request counts, and it shares nothing with the server's limiter.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

from limits import parse_many
from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.asgi import header, send_json

SWEEP_SECONDS = 60.0


class DevIssuerEdge:
    """421 for a Host that is not a loopback name on the issuer's port; 429 (with Retry-After) past the rate."""

    def __init__(
        self, app: ASGIApp, host: str, port: int, rate: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.app = app
        self.rate = rate
        names = {f"[{host.strip('[]')}]" if ":" in host else host, "127.0.0.1", "localhost", "[::1]"}
        self.hosts = {f"{name}:{port}".encode() for name in names}
        self.windows = [(item.amount, item.get_expiry()) for item in parse_many(rate)]
        self.clock = clock
        self.stamps: dict[tuple[str, int], deque[float]] = {}
        self._next_sweep = clock() + SWEEP_SECONDS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        hosts = header(scope["headers"], b"host")
        if len(hosts) != 1 or hosts[0].lower() not in self.hosts:
            body = {"error": "invalid_request", "error_description": "the dev issuer answers loopback hosts only"}
            await send_json(send, 421, body)
            return
        client = scope.get("client")
        wait = self._hit(str(client[0]) if client else "unknown")
        if wait:
            body = {
                "error": "temporarily_unavailable",
                "error_description": f"too many requests from this address (RATE_LIMIT__UNAUTHENTICATED={self.rate}); "
                f"retry in {wait} s",
            }
            await send_json(send, 429, body, [("retry-after", str(wait))])
            return
        await self.app(scope, receive, send)

    def _hit(self, ip: str) -> int:
        """0 and the request counted in every window, or the seconds until the fullest window has room."""
        now = self.clock()
        if now >= self._next_sweep:
            self._sweep(now)
        wait = 0.0
        for amount, period in self.windows:
            stamps = self.stamps.get((ip, period))
            while stamps and stamps[0] <= now - period:
                stamps.popleft()
            if stamps is not None and len(stamps) >= amount:
                wait = max(wait, stamps[len(stamps) - amount] + period - now)
        if wait:
            return max(1, math.ceil(wait))
        for _, period in self.windows:
            self.stamps.setdefault((ip, period), deque()).append(now)
        return 0

    def _sweep(self, now: float) -> None:
        self._next_sweep = now + SWEEP_SECONDS
        for key in [k for k, stamps in self.stamps.items() if not stamps or stamps[-1] <= now - k[1]]:
            del self.stamps[key]
