"""RFC 6750 / MCP `WWW-Authenticate` challenges: 401 to authenticate, 403 to step up, 401 with Entra's claims
challenge for an authentication context, 403 for what no new token changes, 400 for a bad request."""

from __future__ import annotations

import base64
import json
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

    def insufficient_claims_answer(self, auth_context: str, description: str) -> Answer:
        """401 with Entra's claims challenge: sign in again so the token carries `auth_context` in `acrs`. The
        header is exactly Microsoft's (`error`, `claims`) plus `resource_metadata`."""
        claims = claims_challenge(auth_context)
        www = f'Bearer error="insufficient_claims", claims="{claims}", resource_metadata="{self.resource_metadata_url}"'
        body = {"error": "insufficient_claims", "error_description": description, "claims": claims}
        return Answer(401, body, [("www-authenticate", www)])

    def forbidden_answer(self, description: str) -> Answer:
        """403 that no scope or new sign-in changes (an agent the policy refuses): deliberately not
        `insufficient_scope`, which tells MCP clients to step up and retry."""
        www = self.header("access_denied", None, description)
        return Answer(403, {"error": "access_denied", "error_description": description}, [("www-authenticate", www)])

    def refusal_answer(
        self, refused: str, scopes: Iterable[str], description: str, auth_context: str | None = None
    ) -> Answer:
        """The answer to an authorization refusal (`Decision.refused`: "scope", "claims" or "agent")."""
        if refused == "claims" and auth_context is not None:
            return self.insufficient_claims_answer(auth_context, description)
        if refused == "agent":
            return self.forbidden_answer(description)
        return self.insufficient_scope_answer(scopes, description)

    def invalid_request_answer(self, description: str) -> Answer:
        www = self.header("invalid_request", None, description)
        return Answer(400, {"error": "invalid_request", "error_description": description}, [("www-authenticate", www)])

    async def unauthorized(self, send: Send, token_presented: bool) -> None:
        await self.unauthorized_answer(token_presented).send(send)

    async def insufficient_scope(self, send: Send, scopes: Iterable[str], description: str) -> None:
        await self.insufficient_scope_answer(scopes, description).send(send)

    async def invalid_request(self, send: Send, description: str) -> None:
        await self.invalid_request_answer(description).send(send)


def claims_challenge(auth_context: str) -> str:
    """The `claims` of Entra's challenge for an authentication context: base64 of compact JSON, standard alphabet with
    padding, as Microsoft's authentication-context samples encode it (Node `Buffer.toString('base64')`, .NET
    `Convert.ToBase64String`); Azure SDK clients decode it URL-safe with padding restored, which reads it too."""
    request = {"access_token": {"acrs": {"essential": True, "value": auth_context}}}
    return base64.b64encode(json.dumps(request, separators=(",", ":")).encode()).decode()


@dataclass(frozen=True, slots=True)
class Answer:
    """One auth error response: sent as is by the ASGI layers, raised as `AuthProblem` by the route dependencies."""

    status: int
    body: dict[str, str]
    headers: list[tuple[str, str]]

    async def send(self, send: Send) -> None:
        await send_json(send, self.status, self.body, self.headers)
