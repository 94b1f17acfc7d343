"""The app with the connect page on, against the TLS Entra stand-in that wants consent for the profile tool's
downstream scope, and the downstream API stand-in that records what it was sent."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.main import create_app
from tests.support.connect import DOWNSTREAM, ConnectApp, connect_settings
from tests.support.entra import EntraStandIn
from tests.support.servers import ServerThread, free_port


@pytest.fixture
def connect_app(
    entra_tls: tuple[EntraStandIn, Path],
    profile_api: tuple[str, list[dict[str, str]]],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Iterator[ConnectApp]:
    entra, cert = entra_tls
    api_url, api_seen = profile_api
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # httpx2 (JWKS) trusts the stand-in's certificate
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))  # so does MSAL's requests session
    monkeypatch.setenv("PROFILE_API__BASE_URL", api_url)
    entra.consent_required = {DOWNSTREAM}
    port = free_port()
    audit = tmp_path / "audit.jsonl"
    with ServerThread(create_app(connect_settings(entra, port, audit={"sink": f"file:{audit}"})), port=port) as server:
        yield ConnectApp(entra, cert, server.url, api_seen, server, audit)
