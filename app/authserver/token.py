"""`/oauth/token` (authorization_code, refresh_token), `/oauth/register` (RFC 7591) and RFC 8414 metadata.

Refresh tokens: the client never holds the upstream's refresh token. It gets an opaque facade refresh token bound
to it; the upstream refresh token is kept server-side, sealed under a key derived from that facade token, and both
rotate on every use (see docs/auth-server.md for why). The tokens of one sign-in form a family: a used one presented
again revokes the family.

Codes and refresh tokens are bound to the resource (the MCP server) they were issued for: a request naming another
`resource` (RFC 8707) is `invalid_target`, and a refresh goes to that server's own upstream client.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.auth.oauth_errors import OAuthError
from app.authserver.context import FacadeContext
from app.authserver.protocol import NO_STORE, fingerprint, pkce_matches, read_body, read_form
from app.authserver.upstream import UpstreamError
from app.observability.audit import AUTHSERVER_REGISTRATION, AUTHSERVER_TOKEN
from app.observability.audit_fields import client_ip

MAX_REGISTRATION_BYTES = 8 * 1024


def metadata(ctx: FacadeContext, paths: dict[str, str]) -> dict[str, Any]:
    """RFC 8414: what clients need to register (or use a CIMD client id), authorize and redeem."""
    return {
        "issuer": ctx.issuer,
        "authorization_endpoint": ctx.issuer + paths["authorize"],
        "token_endpoint": ctx.issuer + paths["token"],
        "registration_endpoint": ctx.issuer + paths["register"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none"],
        "scopes_supported": [*ctx.scopes, "offline_access"],
        "client_id_metadata_document_supported": True,
        "authorization_response_iss_parameter_supported": True,
    }


class Token:
    def __init__(self, ctx: FacadeContext) -> None:
        self.ctx = ctx

    async def register(self, request: Request) -> Response:
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            raise OAuthError("invalid_client_metadata", "send the client metadata as application/json")
        try:
            body = json.loads(await read_body(request, MAX_REGISTRATION_BYTES))
        except (UnicodeDecodeError, ValueError):
            raise OAuthError("invalid_client_metadata", "the body is not JSON") from None
        if not isinstance(body, dict):
            raise OAuthError("invalid_client_metadata", "the body is a JSON object of client metadata")
        try:
            if wait := await self.ctx.admit_registration(client_ip(request.scope) or "-"):
                raise OAuthError(
                    "temporarily_unavailable", "too many client registrations from this address", 429, wait
                )
            answer = await self.ctx.registry.register(body)
        except OAuthError as exc:
            self.ctx.record(AUTHSERVER_REGISTRATION, request, outcome="refused", reason=exc.error)
            raise
        self.ctx.record(AUTHSERVER_REGISTRATION, request, outcome="registered", client_id=answer["client_id"])
        return JSONResponse(answer, status_code=201, headers=NO_STORE)

    async def token(self, request: Request) -> Response:
        params = await read_form(request)
        grant_type = params.get("grant_type", "")
        client_id = params.get("client_id") or None
        try:
            if request.headers.get("authorization") or {"client_secret", "client_assertion"} & params.keys():
                raise OAuthError("invalid_client", "clients of this authorization server are public: send client_id")
            if not client_id:
                raise OAuthError("invalid_request", "client_id is required")
            if grant_type == "authorization_code":
                body, user, server = await self._code(params, client_id)
            elif grant_type == "refresh_token":
                body, user, server = await self._refresh(params, client_id, request)
            else:
                raise OAuthError("unsupported_grant_type", "grant_type is authorization_code or refresh_token")
        except OAuthError as exc:
            self.ctx.record(
                AUTHSERVER_TOKEN, request, outcome="refused", client_id=client_id, grant=grant_type[:40],
                reason=exc.error,
            )  # fmt: skip
            raise
        self.ctx.record(
            AUTHSERVER_TOKEN, request, outcome="issued", client_id=client_id, grant=grant_type, user=user, server=server
        )
        return JSONResponse(body, headers=NO_STORE)

    async def _code(self, params: dict[str, str], client_id: str) -> tuple[dict[str, Any], str | None, str | None]:
        record = await self.ctx.sealed.take("code", params.get("code", "") or "-")  # used up, whatever follows
        if record is None:
            raise OAuthError("invalid_grant", "unknown, expired or already used authorization code")
        if record["client_id"] != client_id:
            raise OAuthError("invalid_grant", "the code was issued to another client")
        target = self.ctx.target(record.get("resource"))
        _same_resource(params, target.resource, "the code was issued for")
        if params.get("redirect_uri") != record["redirect_uri"]:
            raise OAuthError("invalid_grant", "redirect_uri is not the one the authorization request used")
        if not pkce_matches(params.get("code_verifier", ""), record["code_challenge"]):
            raise OAuthError("invalid_grant", "code_verifier does not match the code_challenge (PKCE S256)")
        await self.ctx.registry.signed_in(client_id)  # a registration that completed a sign-in is kept
        user = record.get("user")
        body = await self._answer(record["tokens"], client_id, user, None, target.resource)
        return body, user, target.audit_name

    async def _refresh(
        self, params: dict[str, str], client_id: str, request: Request
    ) -> tuple[dict[str, Any], str | None, str | None]:
        """Rotation with reuse detection (RFC 9700 section 4.14.2): the refresh tokens of one sign-in form a family,
        named in each token (`{family}.{random}`), whose record knows its newest token. Any other token of the family
        (one already used), or the newest presented by another client, revokes the family: neither the thief nor the
        client goes on without a new sign-in. One record per family, whatever the number of rotations. A refresh
        naming another resource than the sign-in's is refused, and the token stays good (the client's mistake, not a
        theft)."""
        sealed, handle = self.ctx.sealed, params.get("refresh_token", "") or "-"
        family = handle.split(".")[0] if handle.count(".") == 1 else ""
        record = await sealed.take("refresh", handle)  # rotated: used up
        current = await sealed.get("family", family) if family else None
        if current is None:
            raise OAuthError("invalid_grant", "unknown, expired or revoked refresh token: sign in again")
        if record is None or not secrets.compare_digest(str(current.get("newest", "")), fingerprint(handle)):
            await self._revoke(family, client_id, request)
            raise OAuthError("invalid_grant", "this refresh token was already used: the sign-in is revoked")
        if record["client_id"] != client_id:
            await self._revoke(family, client_id, request)
            raise OAuthError("invalid_grant", "another client's refresh token: the sign-in is revoked")
        target = self.ctx.target(record.get("resource"))  # a record from before several servers: the first's
        try:
            _same_resource(params, target.resource, "the refresh token was issued for")
        except OAuthError:
            await sealed.put("refresh", handle, record, self.ctx.refresh_seconds)
            raise
        try:
            tokens = await target.upstream.refresh(record["upstream"], record["scope"])
        except UpstreamError as exc:
            if str(exc) != "temporarily_unavailable":
                raise OAuthError(
                    "invalid_grant", "the sign-in has ended at the identity provider: sign in again"
                ) from None
            # Not the client's fault: its token stays good for a retry (unless the family is revoked meanwhile).
            await sealed.put("refresh", handle, record, self.ctx.refresh_seconds)
            raise OAuthError(
                "temporarily_unavailable", "the identity provider could not be reached: retry", 503
            ) from None
        user = record.get("user")
        return await self._answer(tokens, client_id, user, family, target.resource), user, target.audit_name

    async def _revoke(self, family: str, client_id: str, request: Request) -> None:
        revoked = await self.ctx.sealed.take("family", family) if family else None
        self.ctx.record(
            AUTHSERVER_TOKEN, request, outcome="revoked", client_id=client_id, grant="refresh_token",
            reason="refresh_token_replay", user=(revoked or {}).get("user"),
        )  # fmt: skip

    async def _answer(
        self, tokens: dict[str, Any], client_id: str, user: str | None, family: str | None, resource: str
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"access_token": tokens["access_token"], "token_type": "Bearer"}
        if isinstance(tokens.get("expires_in"), int):
            body["expires_in"] = tokens["expires_in"]
        scope = tokens.get("scope") if isinstance(tokens.get("scope"), str) else ""
        if scope:
            body["scope"] = scope
        if isinstance(upstream := tokens.get("refresh_token"), str):
            family = family or secrets.token_urlsafe(24)  # a new sign-in starts a family; a rotation keeps it
            handle = f"{family}.{secrets.token_urlsafe(32)}"
            kept = {"client_id": client_id, "upstream": upstream, "scope": scope, "user": user, "resource": resource}
            await self.ctx.sealed.put("refresh", handle, kept, self.ctx.refresh_seconds)
            newest = {"user": user, "newest": fingerprint(handle)}
            await self.ctx.sealed.put("family", family, newest, self.ctx.refresh_seconds)
            body["refresh_token"] = handle
        return body


def _same_resource(params: dict[str, str], resource: str, issued: str) -> None:
    """RFC 8707 at the token endpoint: a `resource` sent must be the one the grant is for (none sent: that one)."""
    asked = params.get("resource")
    if asked is not None and asked != resource:
        raise OAuthError("invalid_target", f"{issued} {resource}, not for resource {asked[:200]!r}")
