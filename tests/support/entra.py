"""A local Entra ID stand-in: v2 and v1 discovery, multi-tenant templated issuers, rotatable JWKS, a token mint.

Document shapes follow Entra's: v2 issuer `{instance}{tid}/v2.0`, v1 issuer `https://sts.windows.net/{tid}/`
(here `{instance}sts.windows.net/{tid}/`, read from discovery as for sovereign clouds), and for
`organizations`/`common` the literal `{tenantid}` placeholder in the issuer.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass, field
from html import escape
from typing import Any
from urllib.parse import urlencode

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from app.devissuer.signing import public_jwk
from app.devissuer.tokens import access_token

MULTI = {"organizations", "common"}
EXCHANGE = "api://AzureADTokenExchange"  # the audience of a managed identity's token used as a client assertion
MINTED: list[str] = []  # every token any stand-in minted this run, so tests can prove none reached a log


@dataclass
class SigningKey:
    private: rsa.RSAPrivateKey
    jwk: dict[str, str]

    @property
    def kid(self) -> str:
        return self.jwk["kid"]


def new_key() -> SigningKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return SigningKey(private, public_jwk(private))


@dataclass
class EntraStandIn:
    """Serve it with `ServerThread(stand_in.app())`, then set `base` to that server's URL."""

    base: str = "http://127.0.0.1:0/"
    keys: list[SigningKey] = field(default_factory=lambda: [new_key()])
    down: bool = False
    jwks_fetches: int = 0
    discovery_fetches: int = 0
    token_requests: list[dict[str, str]] = field(default_factory=list)
    token_down: bool = False  # the token endpoint answers 503 (an outage during a refresh)
    # Sign-ins through /authorize (no page: it answers at once for `signed_in_oid`); refresh tokens accepted again
    # after use, as Entra generally does, so a replay refused at the facade is the facade's own doing.
    signed_in_oid: str = "aaaaaaaa-0000-4000-8000-000000000001"
    grants: dict[str, dict[str, str]] = field(default_factory=dict)  # code or refresh token -> what it stands for
    # AKS workload identity: a managed identity's client id -> (the service-account token its federated credential
    # trusts, its object id); a client_credentials grant with that assertion gets the identity's EXCHANGE token.
    federated: dict[str, tuple[str, str]] = field(default_factory=dict)
    # Consent and Conditional Access, for on-behalf-of: scopes a user must consent to (through /authorize) before an
    # exchange for them succeeds, and a claims challenge every exchange answers until the user satisfied it there.
    # `interactive`: /authorize shows a page with a Consent button (for a browser) instead of answering at once.
    consent_required: set[str] = field(default_factory=set)
    claims_challenge: str | None = None
    interactive: bool = False
    consented: set[tuple[str, str, str]] = field(default_factory=set)  # (oid, client id, scope)
    satisfied: set[str] = field(default_factory=set)  # oids that answered the claims challenge
    authorize_requests: list[dict[str, str]] = field(default_factory=list)

    # ---- documents -------------------------------------------------------------------------------------------
    def v2_issuer(self, tenant: str) -> str:
        return f"{self.base}{'{tenantid}' if tenant in MULTI else tenant}/v2.0"

    def v1_issuer(self, tenant: str) -> str:
        return f"{self.base}sts.windows.net/{'{tenantid}' if tenant in MULTI else tenant}/"

    def app(self) -> Starlette:
        async def v2(request: Request) -> Response:
            return self._discovery(request, "v2")

        async def v1(request: Request) -> Response:
            return self._discovery(request, "v1")

        async def jwks(_: Request) -> Response:
            self.jwks_fetches += 1
            if self.down:
                return Response(status_code=503)
            return JSONResponse({"keys": [k.jwk for k in self.keys]})

        async def token(request: Request) -> Response:
            form = {k: str(v) for k, v in (await request.form()).items()}
            self.token_requests.append(form)
            if self.token_down:
                return Response("upstream unavailable", status_code=503)
            if form.get("grant_type") == "authorization_code":
                return self.grant_response(request.path_params["tenant"], self.grants.pop(form.get("code", ""), None))
            if form.get("grant_type") == "refresh_token":
                return self.grant_response(
                    request.path_params["tenant"], self.grants.get(form.get("refresh_token", ""))
                )
            if form.get("grant_type") == "client_credentials":
                return self.workload_response(request.path_params["tenant"], form)
            return self.obo_response(form)

        async def authorize(request: Request) -> Response:
            if request.method == "POST":  # the Consent button: the original request, as hidden fields
                return self.signed_in(
                    request.path_params["tenant"], {k: str(v) for k, v in (await request.form()).items()}
                )
            query = dict(request.query_params)
            self.authorize_requests.append(query)
            if self.interactive:
                return HTMLResponse(self.consent_page(query))
            return self.signed_in(request.path_params["tenant"], query)

        return Starlette(
            routes=[
                Route("/{tenant}/v2.0/.well-known/openid-configuration", v2),
                Route("/{tenant}/.well-known/openid-configuration", v1),
                Route("/{tenant}/discovery/v2.0/keys", jwks),
                Route("/{tenant}/discovery/keys", jwks),
                Route("/{tenant}/oauth2/v2.0/token", token, methods=["POST"]),
                Route("/{tenant}/oauth2/v2.0/authorize", authorize, methods=["GET", "POST"]),
            ]
        )

    def _discovery(self, request: Request, version: str) -> Response:
        self.discovery_fetches += 1
        if self.down:
            return Response(status_code=503)
        tenant = request.path_params["tenant"]
        keys = "discovery/v2.0/keys" if version == "v2" else "discovery/keys"
        return JSONResponse(
            {
                "issuer": self.v2_issuer(tenant) if version == "v2" else self.v1_issuer(tenant),
                "jwks_uri": f"{self.base}{tenant}/{keys}",
                "token_endpoint": f"{self.base}{tenant}/oauth2/v2.0/token",
                "authorization_endpoint": f"{self.base}{tenant}/oauth2/v2.0/authorize",
                "id_token_signing_alg_values_supported": ["RS256"],
                "tenant_region_scope": "WW",
            }
        )

    def consent_page(self, query: dict[str, str]) -> str:
        """The sign-in and consent page a browser sees when `interactive`: who is signed in, and a Consent button."""
        hidden = "".join(f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">' for k, v in query.items())
        return (
            "<!doctype html><title>Sign in (Entra stand-in)</title>"
            f"<p>Signed in as {escape(self.signed_in_oid)}</p><p>{escape(query.get('client_id', ''))} asks for "
            f"{escape(query.get('scope', ''))}</p><form method='post'>{hidden}"
            "<button type='submit'>Consent</button></form>"
        )

    def signed_in(self, tenant: str, query: dict[str, str]) -> Response:
        """The user (`signed_in_oid`) consents to what was asked (and answers a claims challenge): a code back."""
        code = "code-" + uuid.uuid4().hex
        grant = {"client_id": query["client_id"], "scope": query.get("scope", "")}
        if query.get("nonce"):  # OpenID Connect (MSAL's auth code flow): an ID token for whoever signed in
            grant |= {"nonce": query["nonce"], "oid": self.signed_in_oid, "tenant": tenant}
        self.grants[code] = grant
        for scope in grant["scope"].split():
            self.consented.add((self.signed_in_oid, grant["client_id"], scope))
        if query.get("claims"):
            self.satisfied.add(self.signed_in_oid)
        answer = urlencode({"code": code, "state": query.get("state", "")})
        return RedirectResponse(f"{query['redirect_uri']}?{answer}", 302)

    def grant_response(self, tenant: str, grant: dict[str, str] | None) -> Response:
        """Authorization code and refresh grants: an access token for the client (this server) with the short scope
        names, and a new refresh token; the old one stays valid. An OpenID Connect grant (this server signing a user
        in for a downstream API) gets a downstream access token, an ID token and client_info, as Entra answers."""
        if grant is None:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        refresh = "rt-" + uuid.uuid4().hex
        self.grants[refresh] = grant
        if "nonce" in grant:
            tokens = self.user_tokens(grant["oid"], grant["tenant"], grant["client_id"], grant["scope"], grant["nonce"])
            return JSONResponse(tokens | {"refresh_token": refresh})
        names = [s.rsplit("/", 1)[-1] for s in grant["scope"].split() if "/" in s]
        access = self.token(tenant=tenant, audience=grant["client_id"], scopes=" ".join(names), oid=self.signed_in_oid)
        return JSONResponse(
            {"token_type": "Bearer", "expires_in": 600, "scope": grant["scope"], "access_token": access,
             "refresh_token": refresh}
        )  # fmt: skip

    def obo_response(self, form: dict[str, Any]) -> Response:
        """On-behalf-of: answers a jwt-bearer grant as Entra does (access, refresh and id tokens, client_info), or
        refuses it as Entra does when the user must act: Conditional Access's claims challenge (AADSTS50079, the
        shape of Microsoft's OBO documentation) or missing consent (AADSTS65001, `suberror: consent_required`)."""
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" or not form.get("assertion"):
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        user = jwt.decode(str(form["assertion"]), options={"verify_signature": False})
        oid, client = str(user.get("oid")), str(form.get("client_id"))
        if self.claims_challenge is not None and oid not in self.satisfied:
            return self.refusal("interaction_required", 50079, "you must enroll in multifactor authentication",
                                claims=self.claims_challenge)  # fmt: skip
        asked = [s for s in str(form.get("scope", "")).split() if s in self.consent_required]
        if any((oid, client, scope) not in self.consented for scope in asked):
            return self.refusal("invalid_grant", 65001, f"The user or administrator has not consented to use the "
                                f"application with ID '{client}'", suberror="consent_required")  # fmt: skip
        body = self.user_tokens(oid, str(user.get("tid")), client, str(form.get("scope", "")))
        return JSONResponse(body | {"refresh_token": "refresh-" + uuid.uuid4().hex})

    def refusal(self, error: str, code: int, text: str, **extra: str) -> Response:
        trace = str(uuid.uuid4())
        return JSONResponse(
            {"error": error, "error_description": f"AADSTS{code}: {text}.\r\nTrace ID: {trace}", "error_codes": [code],
             "timestamp": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()), "trace_id": trace,
             "correlation_id": str(uuid.uuid4()), **extra},
            status_code=400,
        )  # fmt: skip

    def user_tokens(self, oid: str, tenant: str, client: str, scope: str, nonce: str | None = None) -> dict[str, Any]:
        """A downstream access token and the ID token and client_info that tell MSAL whose account it is."""
        now = int(time.time())
        client_info = json.dumps({"uid": oid, "utid": tenant}).encode()
        id_claims = {"iss": self.v2_issuer(tenant).replace("{tenantid}", tenant), "aud": client, "oid": oid,
                     "tid": tenant, "sub": f"pairwise-{oid[:8]}", "iat": now, "exp": now + 3600,
                     "preferred_username": "user@contoso.example", **({"nonce": nonce} if nonce else {})}  # fmt: skip
        return {"token_type": "Bearer", "expires_in": 3600, "ext_expires_in": 3600, "scope": scope,
                "access_token": "downstream-" + uuid.uuid4().hex,
                "id_token": jwt.encode(id_claims, "stand-in-id-token-key-not-verified-by-msal", algorithm="HS256"),
                "client_info": base64.urlsafe_b64encode(client_info).rstrip(b"=").decode()}  # fmt: skip

    def workload_response(self, tenant: str, form: dict[str, str]) -> Response:
        """A managed identity's client_credentials grant with its service-account token (AKS workload identity)."""
        trusted = self.federated.get(form.get("client_id", ""))
        if trusted is None or form.get("client_assertion") != trusted[0]:
            return JSONResponse({"error": "invalid_client", "error_description": "AADSTS70021"}, status_code=401)
        if form.get("scope") != f"{EXCHANGE}/.default":
            return JSONResponse({"error": "invalid_scope"}, status_code=400)
        token = self.exchange_token(tenant=tenant, object_id=trusted[1], client_id=form["client_id"])
        return JSONResponse({"token_type": "Bearer", "expires_in": 3600, "ext_expires_in": 3600, "access_token": token})

    # ---- keys and tokens -------------------------------------------------------------------------------------
    def exchange_token(self, *, tenant: str, object_id: str, client_id: str, lifetime: int = 86400) -> str:
        """A managed identity's token for `api://AzureADTokenExchange`, as Entra issues it: the client assertion an
        app registration's federated credential trusts (issuer this tenant's v2 issuer, subject the object id)."""
        now = int(time.time())
        claims = {"aud": EXCHANGE, "iss": self.v2_issuer(tenant), "sub": object_id, "oid": object_id, "tid": tenant,
                  "azp": client_id, "appid": client_id, "idtyp": "app", "iat": now, "nbf": now, "exp": now + lifetime,
                  "ver": "2.0"}  # fmt: skip
        key = self.keys[0]
        token = jwt.encode(claims, key.private, algorithm="RS256", headers={"kid": key.kid})
        MINTED.append(token)
        return token

    def verify_exchange(self, assertion: str, tenant: str) -> dict[str, Any]:
        """The claims of a client assertion that is a managed identity's token from here: signed with a published
        key, for `api://AzureADTokenExchange`, issued by this tenant's v2 issuer (what Entra checks against the
        federated credential); raises `jwt.InvalidTokenError` otherwise."""
        kid = jwt.get_unverified_header(assertion).get("kid")
        key = next((k for k in self.keys if k.kid == kid), None)
        if key is None:
            raise jwt.InvalidTokenError("not signed with a key published here")
        claims: dict[str, Any] = jwt.decode(
            assertion, key.private.public_key(), algorithms=["RS256"], audience=EXCHANGE, issuer=self.v2_issuer(tenant)
        )
        return claims

    def rotate(self) -> SigningKey:
        """Publish a new signing key (the old one stays published, as Entra does during rollover)."""
        key = new_key()
        self.keys.append(key)
        return key

    def token(
        self,
        *,
        tenant: str,
        audience: str,
        scopes: str | None = "mcp.read",
        roles: list[str] | None = None,
        version: str = "2.0",
        oid: str = "aaaaaaaa-0000-4000-8000-000000000001",
        app_id: str = "cccccccc-0000-4000-8000-000000000001",
        lifetime: int = 600,
        key: SigningKey | None = None,
        **overrides: Any,
    ) -> str:
        """An access token shaped like Entra's (app/devissuer/tokens.py); `overrides` set or (with None) remove any
        claim."""
        identity: dict[str, Any] = {"oid": oid, "sub": f"pairwise-{oid[:8]}"}
        if scopes is not None:
            identity["scp"] = scopes
        if roles is not None:
            identity["roles"] = roles
        issuer = self.v2_issuer(tenant) if version == "2.0" else self.v1_issuer(tenant)
        token = access_token(
            (key or self.keys[0]).private,
            issuer=issuer.replace("{tenantid}", tenant),
            audience=audience,
            tenant=tenant,
            identity=identity,
            lifetime=lifetime,
            version=version,
            client_app=app_id,
            overrides=overrides,
        )
        MINTED.append(token)
        return token

    def app_token(self, *, tenant: str, audience: str, roles: list[str], app_id: str, **overrides: Any) -> str:
        """App-only (client credentials / managed identity): roles, no scp; oid and sub are the app's SP."""
        return self.token(
            tenant=tenant,
            audience=audience,
            scopes=None,
            roles=roles,
            oid=app_id,
            app_id=app_id,
            sub=app_id,
            idtyp="app",
            **overrides,
        )
