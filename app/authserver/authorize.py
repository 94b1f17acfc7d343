"""`/oauth/authorize`, the consent form, and the upstream's callback.

1. `/oauth/authorize` checks the client and its redirect URI (exact; RFC 8252 loopback any port), PKCE S256, `state`,
   and `resource` (RFC 8707: which of this app's MCP servers; none named, the first), then the scopes against that
   server's own, and holds the request, with its resource, as a transaction. A browser whose user approved this
   client before, for every scope now asked (a session cookie, a remembered consent per user, client, resource and
   scopes), goes straight on; otherwise the consent page is shown, naming the server and what is new (a new client
   always asks).
2. Approve: the facade sends the browser to the upstream, as that server's app registration, with its own PKCE and
   state, the state bound to this browser by a cookie. Deny: back to the client with `error=access_denied`; the
   upstream is never visited, no code exists, nothing is remembered.
3. `/oauth/callback`: only the browser that started the sign-in may finish it; the upstream's code is exchanged at
   once (with that server's credential); the client gets a one-time code (60 s, bound to the resource) and `iss`.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

import jwt
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from app.auth.oauth_errors import OAuthError, single_params
from app.auth.resource import OIDC_SCOPES
from app.authserver.consent import render_consent
from app.authserver.context import CODE_SECONDS, TRANSACTION_SECONDS, FacadeContext, Target
from app.authserver.pages import form_page_headers
from app.authserver.protocol import PKCE_CHALLENGE, fingerprint, read_form, with_query
from app.authserver.upstream import UpstreamError, pkce_pair
from app.observability.audit import AUTHSERVER_CODE, AUTHSERVER_CONSENT

CONSENT_PATH = "/oauth/consent"
_COOKIE = re.compile(r"[A-Za-z0-9_-]{32}")  # the browser binding cookie: 24 random bytes, base64url


class Authorize:
    def __init__(self, ctx: FacadeContext) -> None:
        self.ctx = ctx
        self.csrf_cookie = ("__Host-" if ctx.secure_cookies else "") + "mcp_as_csrf"
        self.session_cookie = ("__Host-" if ctx.secure_cookies else "") + "mcp_as_session"
        self.browser_cookie = ("__Host-" if ctx.secure_cookies else "") + "mcp_as_browser"

    async def authorize(self, request: Request) -> Response:
        ctx = self.ctx
        params = single_params(request.query_params.multi_items())
        client = await ctx.client(params.get("client_id"))
        redirect_uri = params.get("redirect_uri") or (client.redirect_uris[0] if len(client.redirect_uris) == 1 else "")
        if not client.redirect_matches(redirect_uri):
            raise OAuthError("invalid_request", "redirect_uri is not one this client registered")
        if params.get("response_type") != "code":
            raise OAuthError("unsupported_response_type", "response_type must be code (authorization code with PKCE)")
        method, challenge = params.get("code_challenge_method"), params.get("code_challenge", "")
        if method != "S256" or not PKCE_CHALLENGE.fullmatch(challenge):
            raise OAuthError("invalid_request", "PKCE is required, with code_challenge_method=S256 (plain is refused)")
        if len(params.get("state", "")) > 2000:
            raise OAuthError("invalid_request", "state is longer than 2000 characters")
        target = ctx.target(params.get("resource"))  # RFC 8707: which server; unknown is invalid_target
        scopes = _scopes(params.get("scope"), target)
        transaction: dict[str, Any] = {
            "client_id": client.client_id,
            "redirect_uri": redirect_uri,
            "state": params.get("state"),
            "code_challenge": challenge,
            "scopes": scopes,
            "resource": target.resource,
        }
        user, approved = await self._remembered(request, client.client_id, target.resource)
        asks_consent = "consent" in params.get("prompt", "").split()  # OIDC prompt=consent: ask even if remembered
        if user is not None and not asks_consent and set(scopes) <= approved:
            ctx.record(
                AUTHSERVER_CONSENT, request, outcome="remembered", client_id=client.client_id, user=user,
                server=target.audit_name,
            )  # fmt: skip
            return await self._upstream(request, transaction | {"consented_by": user}, consented_now=False)
        txn, csrf = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        await ctx.sealed.put("transaction", txn, transaction | {"csrf": csrf}, TRANSACTION_SECONDS)
        html = render_consent(
            client,
            redirect_uri=redirect_uri,
            scopes=scopes,
            new=[s for s in scopes if s not in approved] if approved else [],
            transaction=txn,
            csrf=csrf,
            action=CONSENT_PATH,
            server_name=target.server_name,
            app_id_uri=target.app_id_uri,
            resource=target.resource if len(ctx.targets) > 1 else None,
        )
        headers = form_page_headers(target.upstream.authorize_endpoint, redirect_uri)
        response = HTMLResponse(html, headers=headers)
        self._cookie(response, self.csrf_cookie, csrf, TRANSACTION_SECONDS)
        return response

    async def consent(self, request: Request) -> Response:
        ctx = self.ctx
        form = await read_form(request)
        csrf, cookie = form.get("csrf", ""), request.cookies.get(self.csrf_cookie, "")
        if not csrf or not cookie or not secrets.compare_digest(csrf, cookie):
            raise OAuthError("invalid_request", "the consent form is not from this browser (CSRF check failed)", 403)
        transaction = await ctx.sealed.take("transaction", form.get("transaction", ""))
        if transaction is None or not secrets.compare_digest(transaction.pop("csrf"), csrf):
            raise OAuthError("invalid_request", "this consent request has expired or was answered: start again", 400)
        client_id, server = transaction["client_id"], ctx.target(transaction.get("resource")).audit_name
        if form.get("decision") != "approve":
            ctx.record(AUTHSERVER_CONSENT, request, outcome="denied", client_id=client_id, server=server)
            return _back_to_client(transaction, {"error": "access_denied"}, ctx.issuer)
        ctx.record(AUTHSERVER_CONSENT, request, outcome="granted", client_id=client_id, server=server)
        return await self._upstream(request, transaction, consented_now=True)

    async def callback(self, request: Request) -> Response:
        ctx = self.ctx
        params = single_params(request.query_params.multi_items())
        state = params.get("state", "") or "-"
        started = await ctx.sealed.get("upstream", state)
        browser = fingerprint(self._browser(request))
        if started is not None and not secrets.compare_digest(str(started.get("browser", "")), browser):
            # Another browser started this sign-in (RFC 9700 section 4.7.1): refuse, and leave it as it was.
            ctx.record(AUTHSERVER_CODE, request, outcome="refused", client_id=started["client_id"], reason="browser")
            raise OAuthError("invalid_request", "this sign-in was started in another browser: start again from the app")
        transaction = await ctx.sealed.take("upstream", state) if started is not None else None
        if transaction is None:
            raise OAuthError("invalid_request", "unknown or expired sign-in: start again from the client")
        client_id, target = transaction["client_id"], ctx.target(transaction.get("resource"))
        server = target.audit_name
        if "code" not in params:
            ctx.record(
                AUTHSERVER_CODE, request, outcome="refused", client_id=client_id, reason="upstream_error", server=server
            )
            return _back_to_client(transaction, {"error": "access_denied"}, ctx.issuer)
        scope = " ".join(transaction["scopes"])
        try:
            tokens = await target.upstream.redeem(params["code"], transaction["verifier"], scope)
        except UpstreamError as exc:
            ctx.record(AUTHSERVER_CODE, request, outcome="refused", client_id=client_id, reason=str(exc), server=server)
            return _back_to_client(transaction, {"error": "server_error"}, ctx.issuer)
        user = _user(tokens["access_token"])
        if not transaction.get("consented_now") and (user is None or user != transaction.get("consented_by")):
            # The remembered approval was another user's (a shared browser): this one has not approved the client.
            ctx.record(
                AUTHSERVER_CODE, request, outcome="refused", client_id=client_id, user=user, reason="no_consent",
                server=server,
            )  # fmt: skip
            return _back_to_client(transaction, {"error": "access_denied"}, ctx.issuer)
        response_params: dict[str, str] = {}
        code = secrets.token_urlsafe(32)
        record = {k: transaction[k] for k in ("client_id", "redirect_uri", "code_challenge")}
        record |= {"user": user, "resource": target.resource}  # redeemed only for this resource
        await ctx.sealed.put("code", code, record | {"tokens": _kept(tokens)}, CODE_SECONDS)
        response_params["code"] = code
        ctx.record(AUTHSERVER_CODE, request, outcome="issued", client_id=client_id, user=user, server=server)
        response = _back_to_client(transaction, response_params, ctx.issuer)
        if user is not None and ctx.consent_seconds and transaction.get("consented_now"):
            # Remembered for this user, client and resource, for the scopes shown (and those approved before).
            name = _consent_name(user, client_id, target.resource)
            before = await ctx.sealed.get("consent", name) or {}
            granted = sorted({*before.get("scopes", []), *transaction["scopes"]})
            await ctx.sealed.put("consent", name, {"scopes": granted}, ctx.consent_seconds)
            session = secrets.token_urlsafe(24)
            await ctx.sealed.put("session", session, {"user": user}, ctx.consent_seconds)
            self._cookie(response, self.session_cookie, session, ctx.consent_seconds)
        return response

    async def _upstream(self, request: Request, transaction: dict[str, Any], consented_now: bool) -> Response:
        """To the upstream with the facade's own PKCE and state; the state is bound to this browser by a cookie."""
        verifier, challenge = pkce_pair()
        state, browser = secrets.token_urlsafe(24), self._browser(request) or secrets.token_urlsafe(24)
        record = transaction | {"verifier": verifier, "consented_now": consented_now, "browser": fingerprint(browser)}
        await self.ctx.sealed.put("upstream", state, record, TRANSACTION_SECONDS)
        upstream = self.ctx.target(transaction.get("resource")).upstream  # that server's own app registration
        url = upstream.authorize_url(state, challenge, " ".join(transaction["scopes"]))
        response = RedirectResponse(url, 303, {"cache-control": "no-store", "referrer-policy": "no-referrer"})
        self._cookie(response, self.browser_cookie, browser, TRANSACTION_SECONDS)
        return response

    def _browser(self, request: Request) -> str:
        value = request.cookies.get(self.browser_cookie, "")
        return value if _COOKIE.fullmatch(value) else ""

    async def _remembered(self, request: Request, client_id: str, resource: str) -> tuple[str | None, set[str]]:
        """The user this browser signed in as before (its session cookie), and the scopes that user approved for
        this client and resource; (None, empty) when there is no such approval."""
        session = request.cookies.get(self.session_cookie)
        if not session or not self.ctx.consent_seconds:
            return None, set()
        found = await self.ctx.sealed.get("session", session)
        user = found.get("user") if found else None
        if not isinstance(user, str):
            return None, set()
        consent = await self.ctx.sealed.get("consent", _consent_name(user, client_id, resource))
        approved = consent.get("scopes") if consent else None
        if not isinstance(approved, list):
            return None, set()
        return user, {s for s in approved if isinstance(s, str)}

    def _cookie(self, response: Response, name: str, value: str, seconds: int) -> None:
        response.set_cookie(
            name, value, max_age=seconds, path="/", secure=self.ctx.secure_cookies, httponly=True, samesite="lax"
        )


def _scopes(scope: str | None, target: Target) -> list[str]:
    """The requested scopes: the target server's own (`{app_id_uri}/{scope}`) and OpenID ones; none of its own named:
    all of them. Another server's scopes are refused: one sign-in is for one server (one audience)."""
    asked = list(dict.fromkeys((scope or "").split()))
    if unknown := [s for s in asked if not target.scope_known(s)]:
        raise OAuthError(
            "invalid_scope",
            f"scope {unknown[0][:120]!r} is not a scope of this server ({target.server_name}, resource "
            f"{target.resource}): its scopes are {target.app_id_uri}/{{scope}}",
        )
    if not [s for s in asked if s not in OIDC_SCOPES]:
        asked = [*target.scopes, *asked]
    return asked


def _back_to_client(transaction: dict[str, Any], answer: dict[str, str], issuer: str) -> Response:
    """The authorization response on the client's redirect URI, with `state` and `iss` (RFC 9207)."""
    if transaction.get("state") is not None:
        answer["state"] = transaction["state"]
    answer["iss"] = issuer
    location = with_query(transaction["redirect_uri"], answer)
    return RedirectResponse(location, 303, {"cache-control": "no-store", "referrer-policy": "no-referrer"})


def _consent_name(user: str, client_id: str, resource: str) -> str:
    return f"{user}|{client_id}|{resource}"


def _kept(tokens: dict[str, Any]) -> dict[str, Any]:
    return {k: tokens[k] for k in ("access_token", "refresh_token", "expires_in", "scope") if k in tokens}


def _user(access_token: str) -> str | None:
    """The signed-in user's object id. Read without verification: the token came straight from the upstream's token
    endpoint over TLS, and /mcp verifies it on every use."""
    try:
        claims = jwt.decode(access_token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    oid = claims.get("oid")
    return oid if isinstance(oid, str) and len(oid) <= 64 else None
