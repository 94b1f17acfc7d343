"""The dev issuer as an authorization server for local MCP clients (development and loopback only).

`/authorize` shows a sign-in page (`signin.py`) and issues codes; `/token` serves the `authorization_code` and
`refresh_token` grants. The rules (`rules.py`, `grants.py`) are Entra's for a pre-registered public client: PKCE S256,
loopback redirect URIs, scopes as `{app_id_uri}/{scope}`, RFC 8707 `resource` equal to the App ID URI, refresh tokens
only with `offline_access`. Each request is for one app (one MCP server): its tokens carry that app's audience and
scopes only. Access tokens are minted exactly as `make token [SERVER=key]` mints them. Errors are 400 JSON
(`invalid_request`, `invalid_grant`, `invalid_scope`, `invalid_target`, `unsupported_grant_type`, ...), never a 500.
Codes, verifiers and tokens are never logged.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from app.auth.oauth_errors import OAuthError, single_params
from app.authserver.pages import form_page_headers
from app.authserver.protocol import NO_STORE, error_json, pkce_matches, read_form_items, with_query
from app.devissuer.config import DevApp, DevIssuerConfig
from app.devissuer.grants import Grant, GrantStore, narrowed
from app.devissuer.oidc import IdTokens, form_post
from app.devissuer.rules import (
    TEST_USERS,
    AuthRequest,
    DevUser,
    Rules,
    check_client,
    check_resource,
    expect,
    parse_authorization_request,
)
from app.devissuer.signin import FormTokens, render_sign_in

MAX_FORM_FIELDS = 200  # the sign-in form carries the request back, with a checkbox per scope and role


class Mint(Protocol):
    """`DevIssuer.mint`: the one way dev access tokens are made."""

    def __call__(
        self,
        scopes: str = "",
        roles: str = "",
        app_only: bool = False,
        lifetime: int = 3600,
        *,
        user: DevUser | None = None,
        client_app: str | None = None,
        server: str = "",
    ) -> str: ...


class DevAuthorizationServer:
    """Authorization code with PKCE for the one public client DEV_ISSUER__CLIENT_ID (and, with AUTH_SERVER__ENABLED,
    for the facade as each server's confidential client), for any app of the config."""

    def __init__(self, config: DevIssuerConfig, base: str, tenant: str, mint: Mint) -> None:
        self.rules = Rules(client_id=config.client_id, apps=config.apps)
        self.authorize_path = f"/{tenant}/oauth2/v2.0/authorize"
        self.token_path = f"/{tenant}/oauth2/v2.0/token"
        self.base = base
        self.port = config.port
        self.mint = mint
        self.lifetime = config.token_seconds
        self.store = GrantStore()
        self.forms = FormTokens(secrets.token_bytes(32))
        self.id_tokens: IdTokens | None = None  # set by the issuer: ID tokens for clients that ask for `openid`

    def metadata(self) -> dict[str, Any]:
        """What RFC 8414 and OpenID discovery add for clients; `offline_access` is listed, as Entra lists it."""
        return {
            "authorization_endpoint": self.base + self.authorize_path,
            "token_endpoint": self.base + self.token_path,
            "response_types_supported": ["code"],
            "response_modes_supported": ["query", "form_post"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "subject_types_supported": ["pairwise"],
        }

    def routes(self) -> list[Route]:
        return [
            Route(self.authorize_path, _answering(self._authorize), methods=["GET", "POST"]),
            Route(self.token_path, _answering(self._token), methods=["POST"]),
        ]

    # ---- /authorize ------------------------------------------------------------------------------------------------

    async def _authorize(self, request: Request) -> Response:
        if request.method == "GET":
            auth = parse_authorization_request(request.query_params.multi_items(), self.rules)
            return self._page(auth)
        self._check_origin(request)
        form = await _form(request)
        auth = parse_authorization_request(form, self.rules)  # everything the client sent, checked again
        chosen = _values(form, "form_token", "user")
        if not self.forms.valid(chosen.get("form_token", ""), auth.params):
            raise OAuthError(
                "invalid_request",
                "the sign-in form is stale or was not rendered by this issuer for this request: start again from the "
                "client",
            )
        user = next((u for u in TEST_USERS if u.oid == chosen.get("user")), None)
        if user is None:
            raise OAuthError("invalid_request", "choose one of the test users")
        offered = {name for name, _, _ in self._offered(auth)}
        scopes = tuple(dict.fromkeys(v for k, v in form if k == "grant_scope"))
        roles = tuple(dict.fromkeys(v for k, v in form if k == "grant_role"))
        if not set(scopes) <= offered or not set(roles) <= set(auth.app.known_roles):
            raise OAuthError("invalid_request", "grant only the scopes and roles the sign-in page offers")
        if not scopes and not roles:
            raise OAuthError("invalid_request", "choose at least one scope or app role to grant")
        client, offline = auth.params["client_id"], auth.offline
        grant = Grant(
            client, auth.redirect_uri, auth.code_challenge, auth.app, auth.resource, scopes, roles, user, offline
        )
        grant = replace(grant, openid="openid" in auth.params.get("scope", "").split(), nonce=auth.params.get("nonce"))
        answer = {"code": self.store.issue_code(grant)}
        if auth.state is not None:
            answer["state"] = auth.state
        if auth.params.get("response_mode") == "form_post":
            return form_post(auth.redirect_uri, answer)
        return RedirectResponse(
            with_query(auth.redirect_uri, answer), 303, {**NO_STORE, "referrer-policy": "no-referrer"}
        )

    def _offered(self, auth: AuthRequest) -> list[tuple[str, bool, bool]]:
        """(scope, pre-selected, requested): what the app's server declares and what the client asked for."""
        names = dict.fromkeys([*auth.app.known_scopes, *auth.scopes])
        return [(name, auth.default_scope or name in auth.scopes, name in auth.scopes) for name in names]

    def _page(self, auth: AuthRequest) -> Response:
        html = render_sign_in(
            auth,
            self.forms.issue(auth.params),
            action=self.authorize_path,
            server_name=auth.app.server_name,
            client_id=auth.params["client_id"],
            app_id_uri=auth.app.app_id_uri,
            users=TEST_USERS,
            offered_scopes=self._offered(auth),
            roles=auth.app.known_roles,
        )
        headers = form_page_headers(auth.redirect_uri)
        # The facade's callback redirects on to its own client, wherever it is.
        if self._confidential(auth.params) is not None:
            csp = headers["content-security-policy"].split("; form-action")[0]
            headers["content-security-policy"] = csp + "; form-action 'self' http: https:"
        return HTMLResponse(html, headers=headers)

    def _check_origin(self, request: Request) -> None:
        """A form post must come from this issuer's own page (the browser says so in Origin / Sec-Fetch-Site)."""
        origin = request.headers.get("origin")
        scheme = self.base.split(":", 1)[0]  # https with DEV_ISSUER__TLS
        own = {f"{scheme}://{host}:{self.port}" for host in ("127.0.0.1", "localhost", "[::1]")}
        site = request.headers.get("sec-fetch-site")
        if (origin is not None and origin not in own) or (site is not None and site != "same-origin"):
            raise OAuthError("invalid_request", "the sign-in form may be posted only from the dev issuer's page", 403)

    # ---- /token ----------------------------------------------------------------------------------------------------

    async def _token(self, request: Request) -> Response:
        params = single_params(await _form(request))
        grant_type = expect(params, "grant_type")
        if grant_type not in ("authorization_code", "refresh_token"):
            raise OAuthError(
                "unsupported_grant_type", f"grant_type {grant_type[:40]!r}: use authorization_code or refresh_token"
            )
        if (app := self._confidential(params)) is not None:  # the facade, as that app's confidential client
            if request.headers.get("authorization") or "client_assertion" in params:
                raise OAuthError("invalid_client", "the facade's client authenticates with client_secret_post")
            secret = app.facade_secret.get_secret_value() if app.facade_secret else ""
            if not secrets.compare_digest(params.get("client_secret", "").encode(), secret.encode()):
                raise OAuthError("invalid_client", "client authentication failed", 401)
        elif request.headers.get("authorization") or {"client_secret", "client_assertion"} & params.keys():
            raise OAuthError(
                "invalid_client", "the dev issuer's client is public: send client_id only, no secret or assertion"
            )
        check_client(params.get("client_id"), self.rules)
        if grant_type == "authorization_code":
            grant = self._redeem_code(params)
            return self._tokens(grant, grant, params, grant.nonce)

        def check(grant: Grant) -> Grant:
            _same_client(grant, params)
            check_resource(params.get("resource"), grant.app)
            return narrowed(grant, params.get("scope"))

        renew, grant = self.store.redeem_refresh(expect(params, "refresh_token"), check)
        return self._tokens(grant, renew, params)

    def _confidential(self, params: dict[str, str]) -> DevApp | None:
        return self.rules.confidential(params.get("client_id"))

    def _redeem_code(self, params: dict[str, str]) -> Grant:
        grant = self.store.redeem_code(expect(params, "code"))  # used up from here on, whatever follows
        _same_client(grant, params)
        if expect(params, "redirect_uri") != grant.redirect_uri:
            raise OAuthError("invalid_grant", "redirect_uri is not the one the authorization request used")
        if not pkce_matches(expect(params, "code_verifier"), grant.code_challenge):
            raise OAuthError("invalid_grant", "code_verifier does not match the code_challenge (PKCE S256)")
        resource = params.get("resource")
        check_resource(resource, grant.app)  # the code is for one app: another's resource is invalid_target
        if grant.resource is not None and resource is not None and resource != grant.resource:
            raise OAuthError("invalid_target", "resource is not the one the authorization request named")
        return grant

    def _tokens(self, grant: Grant, renew: Grant, params: dict[str, str], nonce: str | None = None) -> Response:
        """The access token for `grant`; a new refresh token (rotation) for `renew` when offline_access was granted."""
        access = self.mint(
            " ".join(grant.scopes),
            " ".join(grant.roles),
            lifetime=self.lifetime,
            user=grant.user,
            client_app=grant.client_id,
            server=grant.app.key,
        )
        scope = [f"{grant.app.app_id_uri}/{name}" for name in grant.scopes]
        body: dict[str, Any] = {"token_type": "Bearer", "access_token": access, "expires_in": self.lifetime}
        if renew.offline:
            body["refresh_token"] = self.store.issue_refresh(renew)
            scope.append("offline_access")
        body["scope"] = " ".join(scope)
        if grant.openid and self.id_tokens is not None:  # OpenID Connect: who signed in (MSAL builds its account)
            body["id_token"] = self.id_tokens.id_token(grant.user, grant.client_id, nonce)
            if params.get("client_info") == "1":
                body["client_info"] = self.id_tokens.client_info(grant.user)
        return JSONResponse(body, headers=NO_STORE)


def _same_client(grant: Grant, params: dict[str, str]) -> None:
    if params.get("client_id") != grant.client_id:
        raise OAuthError("invalid_grant", "the grant was issued to another client")


def _values(form: list[tuple[str, str]], *names: str) -> dict[str, str]:
    return single_params((k, v) for k, v in form if k in names)


async def _form(request: Request) -> list[tuple[str, str]]:
    """The form body as (name, value) pairs: a name may repeat (one `grant_scope` per box ticked)."""
    return await read_form_items(request, MAX_FORM_FIELDS)


def _answering(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """OAuth errors as JSON (RFC 6749 section 5.2), never an exception."""

    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except OAuthError as exc:
            return error_json(exc)

    return endpoint
