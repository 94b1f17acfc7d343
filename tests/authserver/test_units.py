"""Units of the authorization-server facade: the CIMD fetch's safety rules against a real https server (a local CA
trusted through SSL_CERT_FILE), sealed state, redirect URI matching and DCR metadata rules."""

from __future__ import annotations

import base64
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from app.auth.downstream import certificate_credential
from app.auth.oauth_errors import OAuthError
from app.authserver.cimd import ClientDocuments
from app.authserver.clients import Client, client_metadata
from app.authserver.store import MemoryStore, Sealed
from app.authserver.upstream import client_assertion
from tests.support.keyvault import make_tls
from tests.support.servers import ServerThread
from tests.support.tls import certificate, private_pem

served: dict[str, Any] = {}
REBIND_HOST = "rebind.test"  # a made-up name the tests resolve themselves (the server certificate covers it)


async def _document(request: Request) -> Response:
    name = request.path_params["name"]
    if name == "moved.json":
        return RedirectResponse(str(request.url).replace("moved.json", "good.json"), 302)
    served[name] = served.get(name, 0) + 1
    url = str(request.url)
    return JSONResponse(
        {"client_id": url, "client_name": "Units", "redirect_uris": ["http://127.0.0.1/cb"]},
        headers={"cache-control": "max-age=60" if name == "good.json" else "no-store"},
    )


@pytest.fixture(scope="module")
def https_base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tls = make_tls(tmp_path_factory.mktemp("cimd-tls"), names=(REBIND_HOST,))
    app = Starlette(routes=[Route("/c/{name}", _document)])
    with (
        pytest.MonkeyPatch.context() as patch,
        ServerThread(app, ssl_certfile=str(tls.cert), ssl_keyfile=str(tls.key)) as server,
    ):
        patch.setenv("SSL_CERT_FILE", str(tls.ca))
        yield server.url.replace("http://", "https://")


@pytest.fixture
async def documents(https_base: str) -> AsyncIterator[ClientDocuments]:
    fetcher = ClientDocuments(5120, 5.0, 10, development=True)  # SSL_CERT_FILE is set: trust the local CA
    yield fetcher
    await fetcher.aclose()


async def test_a_document_is_fetched_checked_and_cached_by_its_headers(
    documents: ClientDocuments, https_base: str
) -> None:
    url = f"{https_base}/c/good.json"
    client = await documents.client(url)
    assert client.kind == "cimd" and client.domain == "127.0.0.1" and client.client_name == "Units"
    await documents.client(url)
    assert served["good.json"] == 1  # max-age=60: the second lookup is the cache's
    await documents.client(f"{https_base}/c/fresh.json")
    await documents.client(f"{https_base}/c/fresh.json")
    assert served["fresh.json"] == 2  # no-store: fetched each time


async def test_redirects_are_not_followed(documents: ClientDocuments, https_base: str) -> None:
    with pytest.raises(OAuthError, match="answered 302"):
        await documents.client(f"{https_base}/c/moved.json")


async def test_outside_development_the_resolved_loopback_address_is_refused(https_base: str) -> None:
    """The check is on the address the name resolves to (and is connected to), not on the name: `localhost`."""
    fetcher = ClientDocuments(5120, 5.0, 10, development=False)
    try:
        port = https_base.rsplit(":", 1)[1]
        for url in (f"https://localhost:{port}/c/good.json", f"{https_base}/c/good.json"):
            with pytest.raises(OAuthError, match="private, loopback or link-local"):
                await fetcher.client(url)
        with pytest.raises(OAuthError, match="must be https"):
            await fetcher.client(f"http://127.0.0.1:{port}/c/good.json")
    finally:
        await fetcher.aclose()


async def test_the_fetch_connects_to_the_address_it_checked_when_the_name_answers_differently_later(
    documents: ClientDocuments, https_base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: the name first answers the document server's address (checked, allowed in development), then
    another loopback address where nothing listens. The fetch resolves once and connects to what it checked."""
    real = socket.getaddrinfo
    answers = iter(["127.0.0.1", "127.0.0.2"])
    asked: list[object] = []

    def rebinding(host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if REBIND_HOST not in name.lower():  # the made-up name never reaches a real resolver
            return real(host, port, family, type, proto, flags)
        asked.append(host)
        address = next(answers, "127.0.0.2")
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, int(port)))]

    # asyncio's loop.getaddrinfo (the check) and anyio's (the connect) both call socket.getaddrinfo.
    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    url = f"https://{REBIND_HOST}:{https_base.rsplit(':', 1)[1]}/c/rebind.json"
    client = await documents.client(url)
    assert client.client_id == url and client.client_name == "Units" and client.domain == REBIND_HOST
    assert served["rebind.json"] == 1  # the document came from the server at the checked address
    assert len(asked) == 1  # resolved once: the connection did not ask the name again


async def test_an_untrusted_certificate_is_refused(https_base: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSL_CERT_FILE")  # the system store alone does not know the local CA
    fetcher = ClientDocuments(5120, 5.0, 10, development=True)
    try:
        with pytest.raises(OAuthError, match="could not be fetched"):
            await fetcher.client(f"{https_base}/c/good.json")
    finally:
        await fetcher.aclose()


async def test_sealed_records_hold_no_secret_and_are_taken_once() -> None:
    store = MemoryStore(1024 * 1024)
    sealed = Sealed(store)
    await sealed.put("code", "the-code-value", {"access_token": "the-access-token"}, 60)
    raw = b"".join(name.encode() + value for name, (value, _) in store._records.items())
    assert b"the-code-value" not in raw and b"the-access-token" not in raw
    assert await sealed.get("code", "another-code") is None
    assert await sealed.take("code", "the-code-value") == {"access_token": "the-access-token"}
    assert await sealed.take("code", "the-code-value") is None


def test_redirect_uris_match_exactly_except_the_loopback_port() -> None:
    client = Client("c", "C", ("http://127.0.0.1:9/cb", "https://app.example/cb"), "dcr")
    assert client.redirect_matches("http://127.0.0.1:51234/cb")  # RFC 8252 section 7.3
    assert not client.redirect_matches("http://127.0.0.1:51234/other")
    assert not client.redirect_matches("http://localhost:9/cb")
    assert client.redirect_matches("https://app.example/cb")
    assert not client.redirect_matches("https://app.example:8443/cb")
    assert not client.redirect_matches("https://app.example/cb?x=1")


@pytest.mark.parametrize(
    ("metadata", "error"),
    [
        ({"redirect_uris": ["https://app.example/cb"], "application_type": "web"}, None),
        ({"redirect_uris": ["com.example.app:/cb"]}, None),
        ({"redirect_uris": ["javascript:alert(1)"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["https://app.example/cb#x"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["http://127.0.0.1/cb"], "application_type": "web"}, "invalid_redirect_uri"),
        ({"redirect_uris": ["http://127.0.0.1/cb"], "application_type": "service"}, "invalid_client_metadata"),
        ({"redirect_uris": []}, "invalid_redirect_uri"),
        ({"redirect_uris": ["http://127.0.0.1/cb"], "grant_types": ["client_credentials"]}, "invalid_client_metadata"),
        ({"redirect_uris": ["http://127.0.0.1/cb"], "client_name": "x" * 101}, "invalid_client_metadata"),
    ],
)
def test_dcr_metadata_rules(metadata: dict[str, Any], error: str | None) -> None:
    if error is None:
        assert client_metadata(metadata)["token_endpoint_auth_method"] == "none"
        return
    with pytest.raises(OAuthError) as refused:
        client_metadata(metadata)
    assert refused.value.error == error


def test_with_a_certificate_the_upstream_gets_a_signed_client_assertion(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = certificate(key, "facade")
    pem = tmp_path / "facade.pem"
    pem.write_bytes(private_pem(key) + cert.public_bytes(serialization.Encoding.PEM))
    credential = certificate_credential(pem)  # the same loader on-behalf-of uses
    endpoint = "https://login.microsoftonline.com/t/oauth2/v2.0/token"
    assertion = client_assertion(credential, "server-app", endpoint)
    claims = jwt.decode(assertion, key.public_key(), algorithms=["RS256"], audience=endpoint)
    assert claims["iss"] == claims["sub"] == "server-app" and claims["exp"] - claims["nbf"] == 600
    thumbprint = base64.urlsafe_b64decode(jwt.get_unverified_header(assertion)["x5t"] + "=")
    assert thumbprint == cert.fingerprint(hashes.SHA1())  # noqa: S303 - Entra's x5t is SHA-1
