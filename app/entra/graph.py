"""A small Microsoft Graph v1.0 client for app registrations: read, create and update an application, its service
principal and its federated identity credentials.

Plain REST rather than msgraph-sdk: a handful of documented calls need no Kiota runtime or extra dependency;
azure-identity (the token) and httpx2 (the calls) are already in the stack.
"""

from __future__ import annotations

import ssl
import time
from typing import Any
from urllib.parse import quote, urlsplit

import httpx2
from azure.core.credentials import AccessToken, TokenCredential
from azure.core.exceptions import ClientAuthenticationError

from app.entra.needs import AppNeeds

GRAPH_URL = "https://graph.microsoft.com"
READ_PERMISSION = "Application.Read.All"
WRITE_PERMISSION = "Application.ReadWrite.OwnedBy or Application.ReadWrite.All, or ownership of the application"
_PAGES = 20  # at most this many pages of one listing (an app has at most 20 federated credentials)


class GraphError(Exception):
    """A Graph call failed: one line saying what and what to do; never a token. `status` and `code` are Graph's
    answer (None without one)."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code = status, code


class GraphClient:
    """Sync Graph calls with a bearer token from `credential` (DefaultAzureCredential when None).

    The token's scope is `{origin of base_url}/.default`, so a national cloud's Graph (`https://graph.microsoft.us`)
    gets its own tokens, for `tenant_id` when given (az login with several tenants signs in to that one). `verify`
    is httpx2's (True: the system's CAs, or SSL_CERT_FILE).
    """

    def __init__(
        self,
        base_url: str = GRAPH_URL,
        credential: TokenCredential | None = None,
        *,
        verify: ssl.SSLContext | bool = True,
        timeout: float = 20.0,
        tenant_id: str | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "https" or not parts.hostname:
            raise GraphError(f"the Graph URL must be https://host (tokens go there): {base_url[:100]!r}")
        self.origin = f"{parts.scheme}://{parts.netloc}".lower()
        self.scope = f"{self.origin}/.default"
        if credential is None:
            from azure.identity import DefaultAzureCredential  # az login, workload identity or managed identity

            credential = DefaultAzureCredential()
        self._credential, self._tenant = credential, tenant_id
        self._token: AccessToken | None = None
        self._http = httpx2.Client(
            base_url=f"{self.origin}/v1.0",
            verify=verify,
            timeout=httpx2.Timeout(timeout, connect=min(timeout, 10.0)),
            follow_redirects=False,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> GraphClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ---- applications --------------------------------------------------------------------------------------------
    def find_application(self, needs: AppNeeds) -> dict[str, Any] | None:
        """The registration of `needs`: by appId when settings name a client id, else by an identifierUri equal to
        the resource URL (or the configured App ID URI). None when there is none."""
        if needs.client_id:
            return self.application_by_app_id(needs.client_id)
        for uri in dict.fromkeys((needs.resource, needs.app_id_uri)):
            if (found := self.application_by_identifier_uri(uri)) is not None:
                return found
        return None

    def application_by_app_id(self, app_id: str) -> dict[str, Any] | None:
        return self._get_one(f"/applications(appId='{_quoted(app_id)}')")

    def application_by_identifier_uri(self, uri: str) -> dict[str, Any] | None:
        found = self._list("/applications", {"$filter": f"identifierUris/any(x:x eq '{_literal(uri)}')"})
        return found[0] if found else None

    def create_application(self, body: dict[str, Any]) -> dict[str, Any]:
        created = self._json(self._call("POST", "/applications", body=body, write=True))
        if not isinstance(created.get("id"), str) or not isinstance(created.get("appId"), str):
            raise GraphError("Microsoft Graph created the application but answered without its id and appId")
        return created

    def update_application(self, object_id: str, patch: dict[str, Any]) -> None:
        self._call("PATCH", f"/applications/{_quoted(object_id)}", body=patch, write=True)

    # ---- service principals and federated credentials -------------------------------------------------------------
    def service_principal(self, app_id: str) -> dict[str, Any] | None:
        return self._get_one(f"/servicePrincipals(appId='{_quoted(app_id)}')")

    def create_service_principal(self, app_id: str) -> dict[str, Any]:
        return self._json(self._call("POST", "/servicePrincipals", body={"appId": app_id}, write=True))

    def federated_credentials(self, object_id: str) -> list[dict[str, Any]]:
        return self._list(f"/applications/{_quoted(object_id)}/federatedIdentityCredentials")

    def add_federated_credential(self, object_id: str, body: dict[str, Any]) -> dict[str, Any]:
        path = f"/applications/{_quoted(object_id)}/federatedIdentityCredentials"
        return self._json(self._call("POST", path, body=body, write=True))

    # ---- plumbing --------------------------------------------------------------------------------------------------
    def _get_one(self, path: str) -> dict[str, Any] | None:
        response = self._call("GET", path, missing_ok=True)
        return None if response.status_code == 404 else self._json(response)

    def _list(self, path: str, params: dict[str, str] | None = None) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        url: str | None = path
        for _ in range(_PAGES):
            page = self._json(self._call("GET", url or path, params=params))
            value = page.get("value")
            if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
                raise GraphError(f"Microsoft Graph answered GET {path} without a list of objects")
            found += value
            url, params = page.get("@odata.nextLink"), None
            if not url:
                return found
            if not str(url).lower().startswith(self.origin + "/"):
                raise GraphError(f"Microsoft Graph paged GET {path} to another host; refusing to send the token there")
        raise GraphError(f"Microsoft Graph paged GET {path} more than {_PAGES} times")

    def _call(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        write: bool = False,
        missing_ok: bool = False,
    ) -> httpx2.Response:
        headers = {"Authorization": f"Bearer {self._bearer()}", "Accept": "application/json"}
        shown = f"{method} {path.split('?')[0]}"
        try:
            response = self._http.request(method, path, json=body, params=params, headers=headers)
        except httpx2.TimeoutException:
            raise GraphError(f"Microsoft Graph at {self.origin} did not answer {shown} in time") from None
        except httpx2.TransportError as exc:
            raise GraphError(f"Microsoft Graph at {self.origin} is unreachable ({type(exc).__name__})") from None
        if response.is_success or (missing_ok and response.status_code == 404):
            return response
        code, message = _error_of(response)
        status = response.status_code
        if status == 401:
            raise GraphError(f"Microsoft Graph refused the token for {shown} (401 {code}): {message}", status, code)
        if status == 403:
            needed = WRITE_PERMISSION if write else READ_PERMISSION
            raise GraphError(
                f"Microsoft Graph: no permission for {shown} (403 {code}); it needs {needed}", status, code
            )
        raise GraphError(f"Microsoft Graph {shown}: {status} {code}: {message}", status, code)

    def _bearer(self) -> str:
        if self._token is None or self._token.expires_on - 120 < time.time():
            try:
                if self._tenant:
                    self._token = self._credential.get_token(self.scope, tenant_id=self._tenant)
                else:
                    self._token = self._credential.get_token(self.scope)
            except ClientAuthenticationError as exc:  # CredentialUnavailableError too: no az login, no identity
                text = str(exc.message or exc).strip()
                first = text.splitlines()[0][:300] if text else "no detail"
                raise GraphError(
                    f"no Microsoft Graph token ({type(exc).__name__}): {first}. Sign in with `az login`, or run "
                    "where a workload or managed identity is available"
                ) from None
        return self._token.token

    @staticmethod
    def _json(response: httpx2.Response) -> dict[str, Any]:
        try:
            document = response.json()
        except ValueError:
            document = None
        if not isinstance(document, dict):
            raise GraphError(f"Microsoft Graph answered {response.status_code} without a JSON object")
        return document


def _error_of(response: httpx2.Response) -> tuple[str, str]:
    """Graph's `{"error": {"code", "message"}}`, bounded; the status phrase when the body is not that."""
    try:
        error = response.json().get("error", {})
        return str(error.get("code", "error"))[:80], " ".join(str(error.get("message", "")).split())[:300]
    except (ValueError, AttributeError):
        return response.reason_phrase or "error", ""


def _quoted(value: str) -> str:
    return quote(_literal(value), safe="")


def _literal(value: str) -> str:
    """An OData string literal's content: a quote is doubled."""
    return value.replace("'", "''")
