"""A local Azure Key Vault stand-in: HTTPS on loopback, the 401 challenge flow, secrets get and paged list.

REST shapes follow the Key Vault data plane: `GET /secrets/{name}[/{version}]`, `GET /secrets` with `nextLink`
paging, `api-version` required, and a bearer challenge naming the tenant authority and the vault resource.
Tokens are verified (signature, audience) against the Entra stand-in's keys.
"""

from __future__ import annotations

import ipaddress
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from azure.core.credentials import AccessToken
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.entra import EntraStandIn
from tests.support.tls import certificate, private_pem

VAULT_RESOURCE = "https://vault.azure.net"
PAGE_SIZE = 2  # small, so every listing in the tests crosses pages


@dataclass
class TlsFiles:
    ca: Path
    cert: Path
    key: Path


def make_tls(directory: Path, names: tuple[str, ...] = ()) -> TlsFiles:
    """A throwaway CA and a server certificate for 127.0.0.1 (and the DNS `names`), written as PEM files."""
    ca_key, ca_name = ec.generate_private_key(ec.SECP256R1()), "keyvault stand-in test CA"
    ca = certificate(
        ca_key,
        ca_name,
        (x509.BasicConstraints(ca=True, path_length=0), True),
        (x509.KeyUsage(False, False, False, False, False, True, True, False, False), True),
        (x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False),
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = certificate(
        key,
        "127.0.0.1",
        (
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), *(x509.DNSName(name) for name in names)]
            ),
            False,
        ),
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), False),
        (x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False),
        signer=(ca_key, ca_name),
    )
    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(private_pem(key))
    return files


@dataclass
class KeyVaultStandIn:
    """Serve `app()` over TLS; `base` is the vault URL. `down=True` answers 503 to everything."""

    entra: EntraStandIn
    tenant: str
    base: str = "https://127.0.0.1:0"
    secrets: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # lower name -> [(version, value)]
    names: dict[str, str] = field(default_factory=dict)  # lower name -> name as created
    down: bool = False
    requests: list[str] = field(default_factory=list)
    unauthenticated: int = 0

    def set(self, name: str, value: str) -> str:
        """Create or add a version of a secret (names are case-insensitive, as in Key Vault)."""
        version = uuid.uuid4().hex
        self.names.setdefault(name.lower(), name)
        self.secrets.setdefault(name.lower(), []).append((version, value))
        return version

    def clear(self) -> None:
        self.secrets.clear()
        self.names.clear()

    def app(self) -> Starlette:
        async def list_secrets(request: Request) -> Response:
            if (denied := self._gate(request)) is not None:
                return denied
            names = sorted(self.secrets)
            start = int(request.query_params.get("$skiptoken", "0"))
            size = min(int(request.query_params.get("maxresults", PAGE_SIZE)), PAGE_SIZE)
            page = names[start : start + size]
            body: dict[str, Any] = {
                "value": [
                    {"id": f"{self.base}/secrets/{self.names[n]}", "attributes": self._attributes(), "tags": {}}
                    for n in page
                ],
                "nextLink": None,
            }
            if start + size < len(names):
                api = request.query_params["api-version"]
                body["nextLink"] = f"{self.base}/secrets?api-version={api}&$skiptoken={start + size}&maxresults={size}"
            return JSONResponse(body)

        async def get_secret(request: Request) -> Response:
            if (denied := self._gate(request)) is not None:
                return denied
            name = request.path_params["name"]
            versions = self.secrets.get(name.lower())
            wanted = request.path_params.get("version") or ""
            found = [v for v in versions or [] if not wanted or v[0] == wanted]
            if not found:
                return JSONResponse(
                    {"error": {"code": "SecretNotFound", "message": f"A secret with (name/id) {name} was not found"}},
                    status_code=404,
                )
            version, value = found[-1]
            return JSONResponse(
                {
                    "value": value,
                    "id": f"{self.base}/secrets/{self.names[name.lower()]}/{version}",
                    "attributes": self._attributes(),
                    "tags": {},
                }
            )

        return Starlette(
            routes=[
                Route("/secrets", list_secrets),
                Route("/secrets/{name}", get_secret),
                Route("/secrets/{name}/{version}", get_secret),
            ]
        )

    def _gate(self, request: Request) -> Response | None:
        self.requests.append(request.url.path)
        if self.down:
            return JSONResponse({"error": {"code": "ServiceUnavailable", "message": "down"}}, status_code=503)
        if "api-version" not in request.query_params:
            return JSONResponse({"error": {"code": "MissingApiVersionParameter"}}, status_code=400)
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("bearer ") or not self._valid(header[7:]):
            self.unauthenticated += 1
            challenge = f'Bearer authorization="{self.entra.base}{self.tenant}", resource="{VAULT_RESOURCE}"'
            return JSONResponse(
                {"error": {"code": "Unauthorized", "message": "AKV10000: Request is missing a Bearer token."}},
                status_code=401,
                headers={"WWW-Authenticate": challenge},
            )
        return None

    def _valid(self, token: str) -> bool:
        for key in self.entra.keys:
            try:
                jwt.decode(token, key.private.public_key(), algorithms=["RS256"], audience=VAULT_RESOURCE)
                return True
            except jwt.PyJWTError:
                continue
        return False

    @staticmethod
    def _attributes() -> dict[str, Any]:
        now = int(time.time())
        return {"enabled": True, "created": now, "updated": now, "recoveryLevel": "Recoverable+Purgeable"}


class LocalIssuerCredential:
    """An azure-core `TokenCredential`: tokens for the requested resource, minted by the Entra stand-in."""

    def __init__(self, entra: EntraStandIn, tenant: str, app_id: str) -> None:
        self.entra, self.tenant, self.app_id = entra, tenant, app_id
        self.requests: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, tenant_id: str | None = None, **_: Any) -> AccessToken:
        self.requests.append(scopes)
        resource = scopes[0].removesuffix("/.default")
        token = self.entra.app_token(
            tenant=tenant_id or self.tenant, audience=resource, roles=["Secrets.Read"], app_id=self.app_id
        )
        return AccessToken(token, int(time.time()) + 600)


VAULT_IDENTITY = "dddddddd-0000-4000-8000-00000000000d"  # the server's managed identity, as the vault sees it


def vault_section(vault: KeyVaultStandIn, tls: TlsFiles, **extra: Any) -> dict[str, Any]:
    """The `keyvault` settings section pointing at the stand-in (trusting its test CA)."""
    return {"url": vault.base, "credential": "local-issuer", "ca_file": tls.ca, "timeout_seconds": 5, **extra}
