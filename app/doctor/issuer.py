"""The issuer check: the v2 discovery document answers, names this tenant, and its JWKS holds signing keys."""

from __future__ import annotations

import re

import httpx2

from app.core.findings import Finding, error, ok, skip
from app.doctor.http import fetch

_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
MULTI_TENANT = {"organizations", "common"}
NETWORK_FIX = (
    "check that this machine can reach {host} (network egress, a proxy: HTTPS_PROXY, a firewall) and that "
    "AZUREAD__INSTANCE is your cloud's authority (https://login.microsoftonline.com/ in the public cloud)"
)


def discovery_url(instance: str, tenant: str) -> str:
    """Entra's v2 OpenID configuration for a tenant (`{instance}{tenant}/v2.0/.well-known/openid-configuration`)."""
    return f"{instance.rstrip('/')}/{tenant}/v2.0/.well-known/openid-configuration"


def issuer_findings(http: httpx2.Client, instance: str, tenant: str, dev_issuer: bool = False) -> list[Finding]:
    """`issuer` and `jwks`. `dev_issuer`: the embedded dev issuer stands in for Entra (it runs with the server, so
    not answering is a skip)."""
    url = discovery_url(instance, tenant)
    host = instance.split("//", 1)[-1].split("/", 1)[0]
    answer = fetch(http, url)
    if not answer.answered and dev_issuer:
        return [skip("issuer", f"the embedded dev issuer at {instance} is {answer.problem}: it starts with the server")]
    if not answer.answered:
        return [error("issuer", f"{url} is {answer.problem}", NETWORK_FIX.format(host=host))]
    document = answer.document()
    if answer.status != 200 or document is None:
        return [
            error(
                "issuer",
                f"{url} answered {answer.status} without a discovery document",
                f"check AZUREAD__TENANT_ID ({tenant}): a tenant id (GUID), your domain, or organizations / common; "
                "and AZUREAD__INSTANCE",
            )
        ]
    found = [_issuer_matches(url, document.get("issuer"), tenant)]
    return found + jwks_findings(http, document.get("jwks_uri"), host)


def _issuer_matches(url: str, issuer: object, tenant: str) -> Finding:
    if not isinstance(issuer, str) or not issuer:
        return error("issuer", f"{url} names no issuer", "check AZUREAD__INSTANCE: it is not an Entra authority")
    if tenant.lower() in MULTI_TENANT:
        if "{tenantid}" not in issuer:
            return error(
                "issuer",
                f"the multi-tenant ({tenant}) issuer is {issuer}, without the {{tenantid}} template",
                "check AZUREAD__INSTANCE: a multi-tenant authority's issuer is templated (…/{tenantid}/v2.0)",
            )
        return ok("issuer", f"{issuer} (multi-tenant: each token's tid fills {{tenantid}})")
    if _GUID.fullmatch(tenant) and tenant.lower() not in issuer.lower():
        return error(
            "issuer",
            f"the issuer {issuer} does not name the tenant {tenant}",
            "check AZUREAD__TENANT_ID (the Directory (tenant) ID on the app registration's Overview page)",
        )
    return ok("issuer", f"{issuer}")


def jwks_findings(http: httpx2.Client, jwks_uri: object, host: str) -> list[Finding]:
    """The signing keys: the JWKS answers with at least one key."""
    if not isinstance(jwks_uri, str) or not jwks_uri:
        return [error("jwks", "the discovery document names no jwks_uri", "check AZUREAD__INSTANCE")]
    answer = fetch(http, jwks_uri)
    keys_host = jwks_uri.split("//", 1)[-1].split("/", 1)[0] or host
    if not answer.answered or answer.status != 200:
        what = answer.problem or f"answered {answer.status}"
        return [
            error(
                "jwks",
                f"the signing keys at {jwks_uri} cannot be read: {what}; no token can be validated",
                NETWORK_FIX.format(host=keys_host),
            )
        ]
    document = answer.document()
    keys = document.get("keys") if document else None
    usable = [key for key in keys if isinstance(key, dict) and key.get("kty")] if isinstance(keys, list) else []
    if not usable:
        return [
            error("jwks", f"{jwks_uri} holds no signing keys", "check AZUREAD__INSTANCE: it is not an Entra authority")
        ]
    return [ok("jwks", f"{len(usable)} signing key(s) at {jwks_uri}")]
