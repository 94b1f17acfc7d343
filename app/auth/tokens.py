"""Entra ID access-token validation: issuer, tenant, audience, lifetime and RS256 signature, on every request."""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx2
import jwt
from mcp.server.auth.provider import AccessToken

from app.auth.keys import IssuerKeys
from app.auth.principal import Principal
from app.auth.resource import Authority, ResourceServer

log = logging.getLogger("app.auth")

ALLOWED_ALGORITHMS = ("RS256",)
MAX_TOKEN_BYTES = 16 * 1024
VALIDATED_CACHE_SIZE = 10_000
TENANT_PLACEHOLDER = "{tenantid}"


# PyJWT's failures, most specific first, as the reason codes we log and count.
_REASONS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "expired"),
    (jwt.ImmatureSignatureError, "not_yet_valid"),
    (jwt.InvalidAudienceError, "wrong_audience"),
    (jwt.InvalidIssuerError, "wrong_issuer"),
    (jwt.InvalidSignatureError, "bad_signature"),
)


class InvalidTokenError(Exception):
    """A token was rejected; `reason` is a short code safe to log and count."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def token_fingerprint(token: str) -> str:
    """A short, non-reversible handle for a token, for logs and correlation."""
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()[:12]


@dataclass(frozen=True)
class _Family:
    version: str
    keys: IssuerKeys


class EntraTokenValidator:
    """Validates Entra v2 (and, by default, v1) access tokens for this server only.

    Implements the MCP SDK's `TokenVerifier` protocol (`verify_token`), plus `validate` for callers that
    need the reason a token was refused.
    """

    def __init__(
        self, server: ResourceServer, http: httpx2.AsyncClient, keys_of: EntraTokenValidator | None = None
    ) -> None:
        """`keys_of`: a validator for another server of the same authority, whose signing keys (JWKS cache and its
        refreshes) this one shares; it starts and stops them."""
        authority = server.authority

        def keys(discovery_path: str) -> IssuerKeys:
            return IssuerKeys(
                f"{authority.base}/{discovery_path}",
                http,
                authority.jwks_refresh_seconds,
                authority.jwks_max_age_seconds,
            )

        self._authority: Authority = authority
        self._families: list[_Family]
        if keys_of is not None:
            if keys_of._authority != authority:
                raise ValueError("servers that share signing keys must share their authority")
            self._families = keys_of._families
        else:
            self._families = [_Family("2.0", keys("v2.0/.well-known/openid-configuration"))]
            if authority.accept_v1:
                self._families.append(_Family("1.0", keys(".well-known/openid-configuration")))
        self._owns_keys = keys_of is None
        self._audiences = list(server.audiences)
        self._tenant = authority.tenant_id.lower()
        self._multi_tenant = authority.multi_tenant
        self._allowed_tenants = {t.lower() for t in authority.allowed_tenants}
        self._leeway = authority.clock_skew_seconds
        self._implied = server.implied_scopes
        # Validated tokens, kept only until their own exp: the signature and claims can't change, so re-verifying
        # an identical token buys nothing (the RSA check dominates the request's auth cost). Keyed by the token
        # itself, which its Principal holds anyway (for on-behalf-of): a dict compares keys in full, and str
        # hashing is randomised per process, so no crafted token can collide with or flood a cached one.
        self._validated: OrderedDict[str, tuple[Principal, IssuerKeys, str]] = OrderedDict()

    @property
    def ready(self) -> bool:
        return all(family.keys.ready for family in self._families)

    async def keys_loaded(self) -> bool:
        """The readiness check for the issuers' signing keys (JWKS): loaded, so tokens can be validated."""
        return self.ready

    async def start(self) -> None:
        for family in self._families if self._owns_keys else ():
            await family.keys.start()

    async def stop(self) -> None:
        for family in self._families if self._owns_keys else ():
            await family.keys.stop()

    async def verify_token(self, token: str) -> AccessToken | None:
        """The SDK `TokenVerifier` seam: an `AccessToken` for a valid token, else None."""
        try:
            principal = await self.validate(token)
        except InvalidTokenError:
            return None
        return to_access_token(principal)

    async def validate(self, token: str) -> Principal:
        """Return the caller a token proves, or raise `InvalidTokenError` with a reason code."""
        if len(token) > MAX_TOKEN_BYTES:
            raise InvalidTokenError("token_too_large")
        cached = self._validated.get(token)
        if cached is not None:
            principal, keys, kid = cached
            # Still within its own lifetime, and its signing key still published (a withdrawn key ends it).
            if time.time() <= (principal.expires_at or 0) + self._leeway and keys.key(kid) is not None:
                self._validated.move_to_end(token)
                return principal
            del self._validated[token]  # validate afresh, exactly as an uncached token would be
        principal, keys, kid = await self._validate_uncached(token)
        self._validated[token] = (principal, keys, kid)  # the same str object as principal._assertion
        if len(self._validated) > VALIDATED_CACHE_SIZE:
            self._validated.popitem(last=False)
        return principal

    async def _validate_uncached(self, token: str) -> tuple[Principal, IssuerKeys, str]:
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise InvalidTokenError("malformed") from None
        # Decide everything we can before any key lookup, so junk never spends the kid-miss refresh window.
        if header.get("alg") not in ALLOWED_ALGORITHMS:
            raise InvalidTokenError("alg_not_allowed")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidTokenError("no_kid")
        tid = unverified.get("tid")
        if not isinstance(tid, str) or not tid:
            raise InvalidTokenError("no_tenant")
        family, issuer = self._match_issuer(unverified.get("iss"), tid.lower())
        key = await family.keys.key_or_refresh(kid)
        if key is None:
            raise InvalidTokenError("no_keys" if not family.keys.ready else "unknown_kid")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=list(ALLOWED_ALGORITHMS),
                audience=self._audiences,
                issuer=issuer,
                leeway=self._leeway,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            reason = next((code for kind, code in _REASONS if isinstance(exc, kind)), "invalid_claims")
            raise InvalidTokenError(reason) from None
        return _principal(claims, family.version, token, self._implied), family.keys, kid

    def _match_issuer(self, iss: object, tid: str) -> tuple[_Family, str]:
        """The issuer family whose (tenant-substituted) issuer the token names, after tenant binding."""
        if not isinstance(iss, str):
            raise InvalidTokenError("wrong_issuer")
        if self._multi_tenant:
            if self._allowed_tenants and tid not in self._allowed_tenants:
                raise InvalidTokenError("tenant_not_allowed")
        elif tid != self._tenant and not _tenant_in_issuer(iss, tid):
            raise InvalidTokenError("wrong_tenant")
        known = False
        for family in self._families:
            template = family.keys.issuer
            if template is None:
                continue
            known = True
            expected = template.replace(TENANT_PLACEHOLDER, tid)
            if iss == expected:
                # Tenant binding (as Microsoft.Identity.Web does): the issuer's tenant segment is the token's tid.
                if not _tenant_in_issuer(expected, tid):
                    raise InvalidTokenError("tenant_mismatch")
                return family, expected
        raise InvalidTokenError("wrong_issuer" if known else "no_keys")


def _tenant_in_issuer(issuer: str, tid: str) -> bool:
    return f"/{tid}/" in issuer.lower() + "/"


def effective_scopes(granted: frozenset[str], implied: Mapping[str, frozenset[str]]) -> frozenset[str]:
    """The granted scopes plus everything they imply (MCP__SCOPE_IMPLIES, closed transitively at startup)."""
    return granted.union(*(implied[s] for s in granted if s in implied))


def _principal(claims: Mapping[str, Any], version: str, token: str, implied: Mapping[str, frozenset[str]]) -> Principal:
    # The scope hierarchy is applied once, here: every decision (tools, lists, routes) reads `Principal.scopes`.
    scp = claims.get("scp")
    roles = claims.get("roles")
    client_id = claims.get("azp") or claims.get("appid") or ""
    return Principal(
        tid=str(claims["tid"]),
        sub=str(claims.get("sub", "")),
        oid=str(claims["oid"]) if claims.get("oid") else None,
        client_id=str(client_id),
        scopes=effective_scopes(frozenset(scp.split()), implied) if isinstance(scp, str) else frozenset(),
        roles=frozenset(r for r in roles if isinstance(r, str)) if isinstance(roles, list) else frozenset(),
        issuer=str(claims["iss"]),
        token_version=str(claims.get("ver", version)),
        token_id=str(claims.get("uti") or claims.get("jti") or token_fingerprint(token)),
        name=str(claims["name"]) if claims.get("name") else None,
        expires_at=int(claims["exp"]),
        idtyp=claims["idtyp"] if isinstance(claims.get("idtyp"), str) else None,
        acrs=_strings(claims.get("acrs")),
        actor_facets=_facets(claims.get("xms_act_fct")),
        subject_facets=_facets(claims.get("xms_sub_fct")),
        agent_parent=_short(claims.get("xms_par_app_azp")),
        _assertion=token,
    )


# Optional claims of the documented JSON type only; any other type reads as absent (never an error: the token is
# signed, but what a claim holds is still not ours to trust blindly).
def _strings(value: Any) -> frozenset[str]:
    """`acrs`: a JSON array of strings; its strings, or nothing."""
    return frozenset(v for v in value if isinstance(v, str)) if isinstance(value, list) else frozenset()


def _facets(value: Any) -> frozenset[int]:
    """`xms_act_fct` / `xms_sub_fct`: space-separated small integers ("3 9 11"); other words are ignored."""
    if not isinstance(value, str):
        return frozenset()
    return frozenset(int(word) for word in value.split() if len(word) <= 4 and word.isascii() and word.isdigit())


def _short(value: Any) -> str | None:
    """`xms_par_app_azp`: a GUID; a non-empty string of GUID size at most, or nothing."""
    return value if isinstance(value, str) and 0 < len(value) <= 64 else None


def to_access_token(principal: Principal) -> AccessToken:
    """The SDK's view of the caller; `subject` + `iss` are what the SDK binds sessions to."""
    return AccessToken(
        token=principal.token_id,  # an id, not the token: SDK helpers must never hand the raw token out
        client_id=principal.client_id,
        scopes=sorted(principal.scopes | principal.roles),
        expires_at=principal.expires_at,
        subject=principal.key,
        claims={"iss": principal.issuer, "tid": principal.tid},
    )
