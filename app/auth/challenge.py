"""RFC 6750 / MCP `WWW-Authenticate` challenges: 401 to authenticate, 403 to step up, 400 for a bad request."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from starlette.types import Send

from app.core.asgi import send_json


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


class Challenges:
    """Builds and sends the auth error responses for one protected resource."""

    def __init__(self, resource_metadata_url: str, default_scopes: Iterable[str] = ()) -> None:
        self.resource_metadata_url = resource_metadata_url
        self.default_scopes = " ".join(default_scopes)

    def header(self, error: str | None = None, scope: str | None = None, description: str | None = None) -> str:
        parts = []
        if error:
            parts.append(f'error="{error}"')
        if description:
            parts.append(f'error_description="{_quote(description)}"')
        if scope:
            parts.append(f'scope="{_quote(scope)}"')
        parts.append(f'resource_metadata="{self.resource_metadata_url}"')
        return "Bearer " + ", ".join(parts)

    def unauthorized_answer(self, token_presented: bool) -> Answer:
        """401. With no credentials at all, RFC 6750 §3.1 says to omit `error`."""
        error = "invalid_token" if token_presented else None
        description = (
            "The access token is missing, invalid or expired" if token_presented else "Authentication required"
        )
        www = self.header(error, self.default_scopes or None, description if token_presented else None)
        body = {"error": error or "unauthorized", "error_description": description}
        return Answer(401, body, [("www-authenticate", www)])

    def insufficient_scope_answer(self, scopes: Iterable[str], description: str) -> Answer:
        """403 naming every scope the operation needs, so the client can step up in one round trip."""
        scope = " ".join(scopes)
        www = self.header("insufficient_scope", scope or None, description)
        body = {"error": "insufficient_scope", "error_description": description}
        if scope:
            body["scope"] = scope
        return Answer(403, body, [("www-authenticate", www)])

    def invalid_request_answer(self, description: str) -> Answer:
        www = self.header("invalid_request", None, description)
        return Answer(400, {"error": "invalid_request", "error_description": description}, [("www-authenticate", www)])

    async def unauthorized(self, send: Send, token_presented: bool) -> None:
        await self.unauthorized_answer(token_presented).send(send)

    async def insufficient_scope(self, send: Send, scopes: Iterable[str], description: str) -> None:
        await self.insufficient_scope_answer(scopes, description).send(send)

    async def invalid_request(self, send: Send, description: str) -> None:
        await self.invalid_request_answer(description).send(send)


@dataclass(frozen=True, slots=True)
class Answer:
    """One auth error response: sent as is by the ASGI layers, raised as `AuthProblem` by the route dependencies."""

    status: int
    body: dict[str, str]
    headers: list[tuple[str, str]]

    async def send(self, send: Send) -> None:
        await send_json(send, self.status, self.body, self.headers)
