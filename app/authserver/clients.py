"""Which clients the facade serves, and their redirect URIs: pre-registered (settings), CIMD (an https client id whose
metadata document is fetched, app/authserver/cimd.py) and DCR (RFC 7591, stored in the state store).

Redirect URIs match exactly, except RFC 8252 section 7.3: a loopback `http` redirect URI matches on any port.
DCR takes public clients only (`token_endpoint_auth_method` `none`, PKCE), with OIDC `application_type` rules:
`web` redirects are https on a non-loopback host, `native` ones loopback http or a private-use scheme.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlsplit

from app.auth.oauth_errors import OAuthError
from app.authserver.options import PreRegistered
from app.authserver.store import Sealed, StateStoreError
from app.core.hosts import is_loopback_host

REGISTRATION_SECONDS = 180 * 24 * 3600  # a registration that completed a sign-in
REGISTRATION_SHARE = 0.5  # a registration is stored only while a bounded state store is under half full
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
    a, b = _loopback(registered), _loopback(asked)
    return a is not None and b is not None and (a.hostname, a.path, a.query) == (b.hostname, b.path, b.query)


def _loopback(uri: str) -> SplitResult | None:
    """`uri` as a well-formed loopback `http` URI (RFC 8252 section 7.3: any port matches): a loopback host, a port
    in range or none, no user info, no fragment, and an authority that reads back exactly as parsed; else None."""
    try:
        parts = urlsplit(uri)
        port, host = parts.port, parts.hostname
    except ValueError:  # a port out of range or not a number (`:5000\.evil.com`)
        return None
    if parts.scheme != "http" or not is_loopback_host(host) or "#" in uri or "\\" in uri or port == 0:
        return None
    shown = f"[{host}]" if host and ":" in host else host
    return parts if parts.netloc == (shown if port is None else f"{shown}:{port}") else None


_REVERSE_DNS = re.compile(r"[a-z][a-z0-9-]*(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+")
_BROWSER_SCHEMES = {"javascript", "data", "file", "vbscript", "blob", "about", "filesystem"}


def private_use_scheme(scheme: str) -> bool:
    """RFC 8252 section 7.1: a private-use scheme is a reversed domain name (`com.example.app`), and never one that
    reads as a browser's own scheme once its dots and dashes are dropped (`java.script`)."""
    return bool(_REVERSE_DNS.fullmatch(scheme)) and scheme.replace(".", "").replace("-", "") not in _BROWSER_SCHEMES


def check_redirect_uri(uri: object, application_type: str) -> str:
    """One redirect URI of a DCR request or CIMD document: `https`, loopback `http` (RFC 8252 section 7.3) or a
    private-use scheme in reverse-DNS form (section 7.1), by OIDC Registration's `application_type` rules."""
    if not isinstance(uri, str) or not uri or len(uri) > MAX_URI or "#" in uri or "\\" in uri:
        raise OAuthError("invalid_redirect_uri", "each redirect URI is an absolute URI without a fragment")
    try:
        parts = urlsplit(uri)
        host, _ = parts.hostname, parts.port
    except ValueError:
        raise OAuthError("invalid_redirect_uri", f"redirect URI {uri[:200]!r} is not a URI") from None
    if parts.username is not None or parts.password is not None:
        raise OAuthError("invalid_redirect_uri", "a redirect URI may not carry user information")
    if application_type == "web":
        if parts.scheme != "https" or not host or is_loopback_host(host):
            raise OAuthError("invalid_redirect_uri", "a web client's redirect URIs are https on a public host")
    elif parts.scheme == "http":
        if _loopback(uri) is None:
            raise OAuthError(
                "invalid_redirect_uri",
                "a native client's http redirect URIs are loopback, with a valid port (RFC 8252)",
            )
    elif parts.scheme == "https":
        if not host:
            raise OAuthError("invalid_redirect_uri", f"redirect URI {uri[:200]!r} has no host")
    elif not private_use_scheme(parts.scheme):
        raise OAuthError(
            "invalid_redirect_uri",
            "a native client's redirect URI is https, loopback http, or a private-use scheme that is a reversed "
            "domain name such as com.example.app (RFC 8252 section 7.1)",
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
    """Pre-registered clients from settings, then DCR registrations from the store (CIMD is looked up by caller).
    A registration is kept `pending_seconds` until a sign-in completes with it, then REGISTRATION_SECONDS."""

    def __init__(self, pre_registered: Sequence[PreRegistered], sealed: Sealed, pending_seconds: int) -> None:
        self.pre = {
            c.client_id: Client(c.client_id, c.client_name or c.client_id, tuple(c.redirect_uris), "pre-registered")
            for c in pre_registered
        }
        self.sealed, self.pending_seconds = sealed, pending_seconds

    async def register(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """RFC 7591: a new public client; the answer echoes what was kept."""
        metadata = client_metadata(body)
        client_id = "dcr-" + secrets.token_urlsafe(24)
        try:
            await self.sealed.put("client", client_id, metadata | {"pending": True}, self.pending_seconds,
                                  REGISTRATION_SHARE)  # fmt: skip
        except StateStoreError:
            raise OAuthError(
                "temporarily_unavailable", "this server holds as many client registrations as it can: retry later", 503
            ) from None
        return {"client_id": client_id, **metadata}

    async def signed_in(self, client_id: str) -> None:
        """A sign-in completed with this client: a pending registration is kept for REGISTRATION_SECONDS."""
        record = await self.sealed.get("client", client_id) if client_id.startswith("dcr-") else None
        if record is not None and record.pop("pending", False):
            await self.sealed.put("client", client_id, record, REGISTRATION_SECONDS)

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
