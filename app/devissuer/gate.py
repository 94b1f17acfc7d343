"""The dev issuer's own gate: a loopback Host allow-list (no DNS rebinding onto the sign-in page) and a per-IP
throttle from RATE_LIMIT__UNAUTHENTICATED, like the MCP endpoint's unauthenticated traffic.

The dev issuer runs as its own uvicorn app, embedded or standalone (`python -m app.devissuer serve`), so this is its
own in-process count: every request counts, and it shares nothing with the server's limiter. The pieces are the
production edge's: its Host patterns (app/edge/headers.py) and its moving windows (app/edge/windows.py).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from limits import parse_many
from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.asgi import header, send_json
from app.edge.headers import HostPatterns
from app.edge.windows import Windows


class DevIssuerGate:
    """421 for a Host that is not a loopback name on the issuer's port; 429 (with Retry-After) past the rate."""

    def __init__(
        self, app: ASGIApp, host: str, port: int, rate: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.app = app
        self.rate = rate
        names = {f"[{host.strip('[]')}]" if ":" in host else host, "127.0.0.1", "localhost", "[::1]"}
        self.hosts = HostPatterns(f"{name}:{port}" for name in names)
        self.items = parse_many(rate)
        self.windows = Windows("moving-window", clock)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        hosts = header(scope["headers"], b"host")
        if len(hosts) != 1 or not self.hosts.match(hosts[0].decode("latin-1").lower()):
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
        """0 and the request counted in every window, or the seconds until the fullest window has room (nothing
        counted then)."""
        if all(self.windows.test(item, ip) for item in self.items):
            for item in self.items:
                self.windows.hit(item, ip)
            return 0
        return max(1, math.ceil(max(self.windows.retry_after(item, ip) for item in self.items)))
