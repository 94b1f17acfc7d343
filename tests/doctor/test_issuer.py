"""The issuer check against the Entra stand-in: discovery, the issuer's tenant, the signing keys; an unreachable JWKS
names its URL and what to check; the dev issuer not running is a skip."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
import pytest

from app.doctor.http import client
from app.doctor.issuer import issuer_findings
from tests.support.doctor import Documents
from tests.support.entra import EntraStandIn
from tests.support.servers import ServerThread, free_port
from tests.support.values import OTHER_TENANT, TENANT


@pytest.fixture
def http() -> Iterator[httpx2.Client]:
    with client() as one:
        yield one


@pytest.fixture
def documents() -> Iterator[Documents]:
    stand_in = Documents()
    with ServerThread(stand_in.app()) as server:
        stand_in.base = server.url
        yield stand_in


def _by_check(findings: list) -> dict[str, tuple[str, str, str]]:  # type: ignore[type-arg]
    return {f.check: (f.status, f.message, f.fix) for f in findings}


def test_a_reachable_issuer_for_this_tenant_with_keys_is_ok(entra: EntraStandIn, http: httpx2.Client) -> None:
    found = _by_check(issuer_findings(http, entra.base, TENANT))
    assert found["issuer"][0] == "ok" and TENANT in found["issuer"][1]
    assert found["jwks"][0] == "ok" and "1 signing key(s)" in found["jwks"][1]


def test_a_multi_tenant_issuer_must_carry_the_tenantid_template(entra: EntraStandIn, http: httpx2.Client) -> None:
    found = _by_check(issuer_findings(http, entra.base, "organizations"))
    assert found["issuer"][0] == "ok" and "{tenantid}" in found["issuer"][1]


def test_an_unreachable_jwks_is_an_error_naming_its_url_and_what_to_check(
    documents: Documents, http: httpx2.Client
) -> None:
    closed = f"http://127.0.0.1:{free_port()}/{TENANT}/discovery/v2.0/keys"
    documents.set(
        f"/{TENANT}/v2.0/.well-known/openid-configuration",
        {"issuer": f"{documents.base}/{TENANT}/v2.0", "jwks_uri": closed},
    )
    found = _by_check(issuer_findings(http, documents.base + "/", TENANT))
    assert found["issuer"][0] == "ok"
    status, message, fix = found["jwks"]
    assert status == "error" and closed in message and "unreachable" in message
    assert "egress" in fix and "proxy" in fix.lower() and "AZUREAD__INSTANCE" in fix


def test_an_issuer_down_is_an_error(entra: EntraStandIn, http: httpx2.Client) -> None:
    entra.down = True
    (finding,) = issuer_findings(http, entra.base, TENANT)
    assert (finding.check, finding.status) == ("issuer", "error") and "503" in finding.message


def test_an_issuer_naming_another_tenant_is_an_error(documents: Documents, http: httpx2.Client) -> None:
    documents.set(
        f"/{TENANT}/v2.0/.well-known/openid-configuration",
        {"issuer": f"{documents.base}/{OTHER_TENANT}/v2.0", "jwks_uri": f"{documents.base}/keys"},
    )
    documents.set("/keys", {"keys": [{"kty": "RSA", "kid": "k"}]})
    found = _by_check(issuer_findings(http, documents.base + "/", TENANT))
    assert found["issuer"][0] == "error" and "AZUREAD__TENANT_ID" in found["issuer"][2]


def test_a_jwks_without_keys_is_an_error(documents: Documents, http: httpx2.Client) -> None:
    documents.set(
        f"/{TENANT}/v2.0/.well-known/openid-configuration",
        {"issuer": f"{documents.base}/{TENANT}/v2.0", "jwks_uri": f"{documents.base}/keys"},
    )
    documents.set("/keys", {"keys": "none"})
    assert _by_check(issuer_findings(http, documents.base + "/", TENANT))["jwks"][0] == "error"


def test_the_dev_issuer_not_running_is_a_skip(http: httpx2.Client) -> None:
    (finding,) = issuer_findings(http, f"http://127.0.0.1:{free_port()}/", TENANT, dev_issuer=True)
    assert finding.status == "skip" and "starts with the server" in finding.message
