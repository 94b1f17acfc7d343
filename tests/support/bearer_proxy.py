"""A reverse proxy that adds `Authorization: Bearer <token>` to every request: for clients that send none (the
official conformance suite), so they reach the server through its real authentication.

An ASGI app (serve it with `ServerThread`). Requests are forwarded unchanged otherwise (Host and Origin included, so
the server's own Host/Origin checks see what the client sent); responses stream back as they come (SSE), and a
client that goes away ends the upstream request too, so the server frees the stream.
"""

from __future__ import annotations

from typing import Any

import anyio
import httpx2
from starlette.types import Receive, Scope, Send

# Hop-by-hop headers (RFC 9110 7.6.1) are the proxy's own on each side; the client's token, if any, is replaced.
_REQUEST_DROPPED = {b"authorization", b"connection", b"keep-alive", b"transfer-encoding", b"te", b"upgrade"}
_RESPONSE_DROPPED = {"connection", "keep-alive", "transfer-encoding"}


class BearerProxy:
    """Forwards every HTTP request to `upstream` (e.g. `http://127.0.0.1:8000`) with the bearer `token` added."""

    def __init__(self, upstream: str, token: str) -> None:
        self.upstream, self.token = upstream.rstrip("/"), token
        self.http: httpx2.AsyncClient | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._forward(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.http = httpx2.AsyncClient(timeout=httpx2.Timeout(30.0, read=None), follow_redirects=False)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.http is not None:
                    await self.http.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _forward(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.http is not None, "served without lifespan"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in _REQUEST_DROPPED]
        headers.append((b"authorization", f"Bearer {self.token}".encode()))
        query = f"?{scope['query_string'].decode()}" if scope["query_string"] else ""
        request = self.http.build_request(
            scope["method"], f"{self.upstream}{scope['path']}{query}", headers=headers, content=body
        )
        response = await self.http.send(request, stream=True)
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": [(k, v) for k, v in response.headers.raw if k.decode().lower() not in _RESPONSE_DROPPED],
                }
            )
            async with anyio.create_task_group() as group:
                group.start_soon(_cancel_on_disconnect, receive, group.cancel_scope)
                async for chunk in response.aiter_raw():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                group.cancel_scope.cancel()
        finally:
            await response.aclose()


async def _cancel_on_disconnect(receive: Receive, scope: Any) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()
