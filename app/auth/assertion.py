"""This server's client assertion from the workload's managed identity: no secret or certificate anywhere.

Entra takes a token the managed identity gets for `api://AzureADTokenExchange` as the client assertion of an app
registration whose federated identity credential trusts that identity (issuer `{instance}{tenant}/v2.0`, subject the
identity's object id). azure-identity's `ManagedIdentityCredential` finds the identity: `IDENTITY_ENDPOINT` (Container
Apps, App Service), `AZURE_FEDERATED_TOKEN_FILE` (AKS workload identity), else IMDS (VMs). One assertion serves every
token request until 5 minutes before it expires.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from azure.core.credentials import AccessToken, TokenCredential

from app.core.hosts import is_loopback_host

log = logging.getLogger("app.auth.assertion")

EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"  # public cloud
# Sovereign clouds have their own token-exchange audience (Microsoft Graph's federated identity credential docs).
_CLOUD_AUDIENCES = {
    "login.microsoftonline.us": "api://AzureADTokenExchangeUSGov",
    "login.chinacloudapi.cn": "api://AzureADTokenExchangeChina",
    "login.partner.microsoftonline.cn": "api://AzureADTokenExchangeChina",
}
REFRESH_MARGIN_SECONDS = 300
_AADSTS = re.compile(r"AADSTS\d{4,6}")
HINT = "is a managed identity assigned, and IDENTITY_ENDPOINT / AZURE_FEDERATED_TOKEN_FILE set?"


class AssertionUnavailable(RuntimeError):
    """The managed identity gave no assertion; the message names the failure's type and what to check, never a token."""


def token_exchange_audience(instance: str) -> str:
    """The audience of the managed identity's token for Entra at `instance` (AZUREAD__INSTANCE)."""
    return _CLOUD_AUDIENCES.get((urlsplit(instance).hostname or "").lower(), EXCHANGE_AUDIENCE)


class ManagedIdentityAssertion:
    """Called, the current client assertion: MSAL's `client_assertion` callable, and the facade's. Blocking
    (azure-identity is sync) and thread-safe: concurrent callers wait for one request to the identity endpoint. A
    failure is repeated to the callers of the next `retry_seconds` without asking again (azure-identity already
    retried), so an outage does not queue every tool call behind seconds of retries each."""

    def __init__(
        self, credential: TokenCredential, audience: str = EXCHANGE_AUDIENCE, retry_seconds: float = 10.0
    ) -> None:
        self._credential = credential
        self._scope = f"{audience}/.default"
        self._retry_seconds = retry_seconds
        self._token: AccessToken | None = None
        self._failed: tuple[float, str] | None = None  # when the last fetch failed, and its message
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            token, now = self._token, time.time()
            if token is None or token.expires_on - REFRESH_MARGIN_SECONDS <= now:
                try:
                    token = self._token = self._refresh()
                except AssertionUnavailable:
                    if token is None or token.expires_on - 60 <= now:
                        raise
                    # An early refresh failed: the current assertion is still good for a few minutes.
            return token.token

    def _refresh(self) -> AccessToken:
        if self._failed is not None and time.monotonic() - self._failed[0] < self._retry_seconds:
            raise AssertionUnavailable(self._failed[1])
        try:
            token = self._fetch()
        except AssertionUnavailable as exc:
            self._failed = (time.monotonic(), str(exc))
            raise
        self._failed = None
        return token

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._scope})"  # MSAL fingerprints credentials by repr: never the token

    def _fetch(self) -> AccessToken:
        try:
            token = self._credential.get_token(self._scope)
        except Exception as exc:  # any failure (unavailable, refused, misconfigured) is one clear error
            what = type(exc).__name__
            # Only Entra's AADSTS codes from azure-identity's text: the rest may echo what was sent (an assertion).
            codes = ",".join(dict.fromkeys(_AADSTS.findall(str(exc)))) or "none"
            log.warning(
                "the managed identity could not provide a client assertion", extra={"error": what, "aadsts": codes}
            )
            raise AssertionUnavailable(
                f"the managed identity could not provide a client assertion ({what}): {HINT}"
            ) from None
        if not token.token:
            log.warning("the managed identity could not provide a client assertion", extra={"error": "empty token"})
            raise AssertionUnavailable(
                f"the managed identity could not provide a client assertion (empty token): {HINT}"
            )
        return token


class _Deferred:
    """Builds `ManagedIdentityCredential` at its first use: it reads the environment then, and a bad one (AKS without
    a client id) becomes `AssertionUnavailable` on a call, not a crash at startup."""

    def __init__(self, client_id: str | None) -> None:
        self._client_id = client_id
        self._credential: TokenCredential | None = None

    def get_token(
        self, *scopes: str, claims: str | None = None, tenant_id: str | None = None, enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:  # fmt: skip
        if self._credential is None:
            from azure.identity import ManagedIdentityCredential

            options: dict[str, Any] = {}
            if is_loopback_host(urlsplit(os.environ.get("AZURE_AUTHORITY_HOST", "")).hostname):
                # Instance discovery asks Microsoft's cloud about the authority; a loopback stand-in isn't there.
                options["disable_instance_discovery"] = True
            self._credential = ManagedIdentityCredential(client_id=self._client_id, **options)
        return self._credential.get_token(*scopes, claims=claims, tenant_id=tenant_id, enable_cae=enable_cae, **kwargs)


def managed_identity_assertion(client_id: str | None, audience: str = EXCHANGE_AUDIENCE) -> ManagedIdentityAssertion:
    """The workload's managed identity as a client assertion: the user-assigned one `client_id` names, else the
    system-assigned one (or `AZURE_CLIENT_ID` with AKS workload identity)."""
    return ManagedIdentityAssertion(_Deferred(client_id), audience)
