"""What clients discover, checked from outside: against the real app on a real uvicorn (healthy), against servers
whose metadata differs or is junk (each a finding, never an exception)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from app.core.findings import Finding
from app.doctor.http import client
from app.doctor.metadata import blackbox_findings, discovery_urls, prm_findings, prm_url
from tests.support.doctor import Documents
from tests.support.servers import ServerThread, free_port


@pytest.fixture
def http() -> Iterator[httpx2.Client]:
    with client() as one:
        yield one


@pytest.fixture(scope="module")
def documents() -> Iterator[Documents]:
    stand_in = Documents()
    with ServerThread(stand_in.app()) as server:
        stand_in.base = server.url
        yield stand_in


def _statuses(findings: list[Finding]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for finding in findings:
        found.setdefault(finding.check, []).append(finding.status)
    return found


def test_the_well_known_urls_follow_rfc_9728_and_rfc_8414() -> None:
    assert prm_url("https://mcp.contoso.com/mcp") == "https://mcp.contoso.com/.well-known/oauth-protected-resource/mcp"
    assert discovery_urls("https://login.microsoftonline.com/t/v2.0") == [
        "https://login.microsoftonline.com/.well-known/oauth-authorization-server/t/v2.0",
        "https://login.microsoftonline.com/.well-known/openid-configuration/t/v2.0",
        "https://login.microsoftonline.com/t/v2.0/.well-known/openid-configuration",
    ]


def test_a_running_server_is_healthy_from_outside(app_server: ServerThread, http: httpx2.Client) -> None:
    url = app_server.settings.resource  # type: ignore[attr-defined]
    found = blackbox_findings(http, url)
    statuses = _statuses(found)
    assert statuses["prm"] == ["ok"] and statuses["challenge"] == ["ok"]
    # The Entra stand-in, like Entra, does not list code_challenge_methods_supported: a warning, not an error.
    assert statuses["auth-server"] == ["warn"]
    assert "code_challenge_methods_supported" in next(f.message for f in found if f.check == "auth-server")


def test_a_server_whose_metadata_names_another_resource_is_an_error(documents: Documents, http: httpx2.Client) -> None:
    url = f"{documents.base}/mcp"
    documents.set("/.well-known/oauth-protected-resource/mcp", {"resource": "https://elsewhere.example/mcp",
                  "authorization_servers": [f"{documents.base}/issuer"]})  # fmt: skip
    documents.set("/mcp", {}, 401, {"WWW-Authenticate": f'Bearer resource_metadata="{prm_url(url)}"'})
    found = blackbox_findings(http, url)
    prm = next(f for f in found if f.check == "prm")
    assert prm.status == "error" and "https://elsewhere.example/mcp" in prm.message and "MCP__RESOURCE_HOST" in prm.fix


def test_no_server_at_the_url_is_an_error_from_outside_and_a_warning_from_settings(http: httpx2.Client) -> None:
    url = f"http://127.0.0.1:{free_port()}/mcp"
    assert _statuses(blackbox_findings(http, url))["prm"] == ["error"]
    assert [f.status for f in prm_findings(http, url)] == ["warn"]


def test_an_authorization_server_without_s256_is_an_error_and_with_it_ok(
    documents: Documents, http: httpx2.Client
) -> None:
    url, issuer = f"{documents.base}/mcp", f"{documents.base}/issuer"
    documents.set("/.well-known/oauth-protected-resource/mcp", {"resource": url, "authorization_servers": [issuer]})
    documents.set("/mcp", {}, 401, {"WWW-Authenticate": f'Bearer resource_metadata="{prm_url(url)}"'})
    metadata = {"issuer": issuer, "authorization_endpoint": f"{issuer}/a", "token_endpoint": f"{issuer}/t"}
    documents.set(
        "/.well-known/oauth-authorization-server/issuer", {**metadata, "code_challenge_methods_supported": ["plain"]}
    )
    assert _statuses(blackbox_findings(http, url)) == {"prm": ["ok"], "challenge": ["ok"], "auth-server": ["error"]}
    documents.set(
        "/.well-known/oauth-authorization-server/issuer", {**metadata, "code_challenge_methods_supported": ["S256"]}
    )
    assert _statuses(blackbox_findings(http, url)) == {"prm": ["ok"], "challenge": ["ok"], "auth-server": ["ok"]}


def test_a_200_without_a_challenge_is_an_error(documents: Documents, http: httpx2.Client) -> None:
    url = f"{documents.base}/open"
    documents.set("/.well-known/oauth-protected-resource/open", {"resource": url, "authorization_servers": ["x"]})
    documents.set("/open", {"jsonrpc": "2.0", "id": 1, "result": {}})
    challenge = next(f for f in blackbox_findings(http, url) if f.check == "challenge")
    assert challenge.status == "error" and "answered 200 without WWW-Authenticate" in challenge.message


def test_a_redirect_to_another_host_is_not_followed(documents: Documents, http: httpx2.Client) -> None:
    url = f"{documents.base}/moved"
    documents.set("/.well-known/oauth-protected-resource/moved", {}, 302, {"Location": "https://elsewhere.example/x"})
    (prm,) = prm_findings(http, url, required=True)
    assert prm.status == "error" and "redirects to another host (elsewhere.example)" in prm.message


# ---- junk: every JSON type where a document or field belongs ------------------------------------------------------
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=8,
)


def _field(good: Callable[[], Any]) -> st.SearchStrategy[Any]:
    return st.one_of(JSON, st.builds(good))


@hypothesis_settings(max_examples=80)
@given(data=st.data())
def test_junk_metadata_yields_findings_never_exceptions(documents: Documents, data: st.DataObject) -> None:
    stand_in = documents
    with client() as http:
        base, url = documents.base, f"{documents.base}/mcp"
        issuer = f"{base}/issuer"
        servers = data.draw(st.one_of(JSON, st.lists(st.one_of(JSON, st.just(issuer)), max_size=3)))
        prm = data.draw(st.one_of(JSON, st.fixed_dictionaries(
            {"resource": _field(lambda: url), "authorization_servers": st.just(servers)})))  # fmt: skip
        stand_in.set("/.well-known/oauth-protected-resource/mcp", prm)
        header = data.draw(st.one_of(st.text(max_size=40).map(lambda t: "Bearer " + t), st.just(
            f'Bearer resource_metadata="{prm_url(url)}"')))  # fmt: skip
        stand_in.set("/mcp", data.draw(JSON), data.draw(st.sampled_from([200, 401, 403, 500])),
                     {"WWW-Authenticate": header.encode("ascii", "replace").decode()})  # fmt: skip
        metadata = data.draw(st.one_of(JSON, st.fixed_dictionaries({
            "issuer": _field(lambda: issuer), "authorization_endpoint": _field(lambda: f"{issuer}/a"),
            "token_endpoint": _field(lambda: f"{issuer}/t"), "code_challenge_methods_supported": JSON})))  # fmt: skip
        stand_in.set("/.well-known/oauth-authorization-server/issuer", metadata)
        found = blackbox_findings(http, url)
    assert found and all(isinstance(f, Finding) and f.status in ("ok", "warn", "error", "skip") for f in found)
