"""Which clients the facade serves, and their redirect URIs: pre-registered (settings), CIMD (an https client id whose
metadata document is fetched, app/authserver/cimd.py) and DCR (RFC 7591, stored in the state store).

Redirect URIs match exactly, except RFC 8252 section 7.3: a loopback `http` redirect URI matches on any port.
DCR takes public clients only (`token_endpoint_auth_method` `none`, PKCE), with OIDC `application_type` rules:
`web` redirects are https on a non-loopback host, `native` ones loopback http or a private-use scheme.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from app.auth.oauth_errors import OAuthError
from app.authserver.store import Sealed
from app.settings import PreRegisteredClient, is_loopback_host

REGISTRATION_SECONDS = 180 * 24 * 3600
MAX_REDIRECT_URIS = 10
MAX_URI = 2000
MAX_NAME = 100


@dataclass(frozen=True)
class Client:
    """A client as the consent page shows it, and what its authorization requests are held to."""

    client_id: str
    client_name: str
    redirect_uris: tuple[str, ...]
    kind: str  # "pre-registered", "cimd" or "dcr"
    domain: str | None = None  # CIMD: the host its client id (and metadata document) is served from: verified

    def redirect_matches(self, uri: str) -> bool:
        return any(_same_redirect(registered, uri) for registered in self.redirect_uris)


def _same_redirect(registered: str, asked: str) -> bool:
    if registered == asked:
        return True
    try:
        a, b = urlsplit(registered), urlsplit(asked)
        loopback = a.scheme == b.scheme == "http" and is_loopback_host(a.hostname)
        return loopback and (a.hostname, a.path, a.query) == (b.hostname, b.path, b.query) and b.username is None
    except ValueError:
        return False


def check_redirect_uri(uri: object, application_type: str) -> str:
    """One redirect URI of a DCR request or CIMD document, by OIDC Registration's `application_type` rules."""
    if not isinstance(uri, str) or not uri or len(uri) > MAX_URI or "#" in uri:
        raise OAuthError("invalid_redirect_uri", "each redirect URI is an absolute URI without a fragment")
    try:
        parts = urlsplit(uri)
        host = parts.hostname
    except ValueError:
        raise OAuthError("invalid_redirect_uri", f"redirect URI {uri[:200]!r} is not a URI") from None
    if parts.username is not None or parts.password is not None:
        raise OAuthError("invalid_redirect_uri", "a redirect URI may not carry user information")
    if application_type == "web":
        if parts.scheme != "https" or not host or is_loopback_host(host):
            raise OAuthError("invalid_redirect_uri", "a web client's redirect URIs are https on a public host")
    elif parts.scheme == "http":
        if not is_loopback_host(host):
            raise OAuthError("invalid_redirect_uri", "a native client's http redirect URIs are loopback (RFC 8252)")
    elif parts.scheme == "https":
        if not host:
            raise OAuthError("invalid_redirect_uri", f"redirect URI {uri[:200]!r} has no host")
    elif "." not in parts.scheme or parts.scheme in {"javascript", "data", "file", "vbscript"}:
        raise OAuthError(
            "invalid_redirect_uri", "a native client's custom scheme is a reversed domain name (RFC 8252 section 7.1)"
        )
    return uri


def client_metadata(body: Mapping[str, Any], *, for_cimd: bool = False) -> dict[str, Any]:
    """The registration metadata the facade keeps, validated (RFC 7591 section 2); anything else is dropped."""
    application_type = body.get("application_type", "native" if not for_cimd else "web")
    if application_type not in ("native", "web"):
        raise OAuthError("invalid_client_metadata", "application_type is native or web")
    uris = body.get("redirect_uris")
    if not isinstance(uris, list) or not 1 <= len(uris) <= MAX_REDIRECT_URIS:
        raise OAuthError("invalid_redirect_uri", f"redirect_uris is a list of 1 to {MAX_REDIRECT_URIS} URIs")
    # A CIMD document's redirect URIs follow the same rules, whichever application_type it names.
    redirect_uris = [check_redirect_uri(uri, "native" if for_cimd else application_type) for uri in uris]
    method = body.get("token_endpoint_auth_method", "none")
    if method != "none":
        raise OAuthError(
            "invalid_client_metadata",
            "this authorization server registers public clients only: token_endpoint_auth_method none, with PKCE",
        )
    grants = body.get("grant_types", ["authorization_code"])
    if not isinstance(grants, list) or not set(grants) <= {"authorization_code", "refresh_token"}:
        raise OAuthError("invalid_client_metadata", "grant_types may be authorization_code and refresh_token")
    responses = body.get("response_types", ["code"])
    if responses != ["code"]:
        raise OAuthError("invalid_client_metadata", "response_types is [code]")
    name = body.get("client_name", "")
    if not isinstance(name, str) or len(name) > MAX_NAME:
        raise OAuthError("invalid_client_metadata", f"client_name is a string of at most {MAX_NAME} characters")
    return {
        "redirect_uris": redirect_uris,
        "client_name": name,
        "application_type": application_type,
        "token_endpoint_auth_method": "none",
        "grant_types": grants,
        "response_types": ["code"],
    }


class Registry:
    """Pre-registered clients from settings, then DCR registrations from the store (CIMD is looked up by caller)."""

    def __init__(self, pre_registered: list[PreRegisteredClient], sealed: Sealed) -> None:
        self.pre = {
            c.client_id: Client(c.client_id, c.client_name or c.client_id, tuple(c.redirect_uris), "pre-registered")
            for c in pre_registered
        }
        self.sealed = sealed

    async def register(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """RFC 7591: a new public client; the answer echoes what was kept."""
        metadata = client_metadata(body)
        client_id = "dcr-" + secrets.token_urlsafe(24)
        await self.sealed.put("client", client_id, metadata, REGISTRATION_SECONDS)
        return {"client_id": client_id, **metadata}

    async def find(self, client_id: str) -> Client | None:
        if (client := self.pre.get(client_id)) is not None:
            return client
        if not client_id.startswith("dcr-") or len(client_id) > 64:
            return None
        record = await self.sealed.get("client", client_id)
        if record is None:
            return None
        name = str(record.get("client_name") or "an unnamed client")
        return Client(client_id, name, tuple(record["redirect_uris"]), "dcr")
