"""The authorization-server facade (AUTH_SERVER__ENABLED), for real: a uvicorn server with the embedded dev issuer as
its upstream, the Python SDK's `OAuthClientProvider` registering itself (DCR) or using a CIMD client id, headless
Chromium clicking through the consent page and the dev issuer's sign-in page, then tools listed and called, and a
refresh. The refusals each get a clear error, and nothing is issued. Every step is audited, with no code or token.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.main import create_app
from app.settings import AuthServerSettings, Settings
from tests.support.facade import BrowserClient, ConsentForm, Flow, query
from tests.support.keyvault import make_tls
from tests.support.oauth import (
    Callback,
    chromium,
    missing_ts_sdk,
    require_chromium,
    ts_oauth_client,
)
from tests.support.servers import ServerThread, free_port
from tests.support.values import JWT_SHAPED, REPO

require_chromium()
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("auth_server")]

TOKEN_SECONDS = 6  # the dev issuer's access tokens: short, so the refresh is seen
FACADE_SECRET = "facade-test-secret-0123456789"


@dataclass
class Facade:
    url: str
    settings: Settings
    audit: Path
    documents: dict[str, Any]  # path -> CIMD document (or bytes) the https document server serves
    documents_url: str

    @property
    def resource(self) -> str:
        return f"{self.url}/mcp"

    def audit_records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.audit.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def facade(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Facade]:
    tmp = tmp_path_factory.mktemp("facade")
    tls = make_tls(tmp)
    documents: dict[str, Any] = {}

    async def document(request: Request) -> Response:
        found = documents.get(request.path_params["name"])
        if isinstance(found, bytes):
            return Response(found, media_type="application/json")
        if found is None:
            return JSONResponse({}, 404)
        return JSONResponse(found, headers={"cache-control": "max-age=60"})

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = Settings(
        _env_file=None,
        app_env="development",
        dev_issuer={"port": free_port(), "key_dir": tmp / "dev", "token_seconds": TOKEN_SECONDS},
        mcp={"resource_host": url},
        azuread={"client_secret": FACADE_SECRET, "clock_skew_seconds": 0},
        auth_server={"enabled": True, "registrations_per_ip": "1000/minute"},  # this module's clients share an IP
        rate_limit={"unauthenticated": "1000/minute"},
        audit={"sink": f"file:{tmp / 'audit.jsonl'}"},
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SSL_CERT_FILE", str(tls.ca))  # the CIMD fetch trusts the system store, which honours this
        app = create_app(settings)
    docs = ServerThread(
        Starlette(routes=[Route("/clients/{name}", document)]), ssl_certfile=str(tls.cert), ssl_keyfile=str(tls.key)
    )
    with docs, ServerThread(app, port=port):
        yield Facade(url, settings, tmp / "audit.jsonl", documents, docs.url.replace("http://", "https://"))


async def _sign_in_list_call_refresh(
    facade: Facade, caplog: pytest.LogCaptureFixture, client_metadata_url: str | None = None
) -> BrowserClient:
    caplog.set_level(logging.DEBUG)
    with Callback() as callback:
        async with chromium() as browser:
            person = BrowserClient(facade.resource, callback, browser, client_metadata_url)
            async with (
                httpx2.AsyncClient(auth=person.provider, timeout=30) as http,
                Client(streamable_http_client(facade.resource, http_client=http)) as client,
            ):
                names = {tool.name for tool in (await client.list_tools()).tools}
                who = await client.call_tool("whoami", {})
                await asyncio.sleep(TOKEN_SECONDS + 1)  # the access token expires; the SDK refreshes at the facade
                again = await client.call_tool("whoami", {})
    assert {"whoami", "search_notes"} <= names
    assert who.structured_content is not None and who.structured_content["name"] == "Dev User"
    assert again.structured_content is not None and again.structured_content["name"] == "Dev User"
    assert person.sign_ins == 1 and len(person.storage.issued) == 2  # one sign-in, then a refresh
    first, renewed = person.storage.issued
    assert renewed.access_token != first.access_token
    assert first.refresh_token and renewed.refresh_token and renewed.refresh_token != first.refresh_token
    assert not JWT_SHAPED.match(first.refresh_token)  # the facade's own handle, never the upstream's token
    codes = [r.get("code", "") for r in callback.seen]
    text = facade.audit.read_text()
    assert not JWT_SHAPED.search(text) and not [c for c in codes if c in text]
    assert first.refresh_token not in text and renewed.refresh_token not in text
    logged = "\n".join(r.getMessage() + repr(r.__dict__) for r in caplog.records)  # the server's and the clients'
    assert not JWT_SHAPED.search(logged) and not [c for c in codes if c in logged]
    assert first.refresh_token not in logged and renewed.refresh_token not in logged
    return person


async def test_python_sdk_registers_with_dcr_consents_signs_in_calls_tools_and_refreshes(
    facade: Facade, caplog: pytest.LogCaptureFixture
) -> None:
    person = await _sign_in_list_call_refresh(facade, caplog)
    client = person.storage.client
    assert client is not None and client.client_id.startswith("dcr-")
    assert "Facade Test Client" in person.consent_text and "registered itself" in person.consent_text
    events = [(r["event"], r.get("outcome")) for r in facade.audit_records() if r.get("client_id") == client.client_id]
    assert events == [
        ("authserver_registration", "registered"),
        ("authserver_consent", "granted"),
        ("authserver_code", "issued"),
        ("authserver_token", "issued"),
        ("authserver_token", "issued"),
    ]
    issued = [r for r in facade.audit_records() if r["event"] == "authserver_token" and r.get("outcome") == "issued"]
    assert issued[-1]["grant"] == "refresh_token" and issued[-1]["user"] == "22222222-2222-4222-8222-222222222222"


async def test_python_sdk_with_a_cimd_client_id(facade: Facade, caplog: pytest.LogCaptureFixture) -> None:
    with Callback() as probe:
        redirect = probe.uri
    url = f"{facade.documents_url}/clients/sdk.json"
    # The SDK's own listener takes the callback's port: the document lists the loopback URI without a fixed port.
    facade.documents["sdk.json"] = {
        "client_id": url,
        "client_name": "CIMD Test Client",
        "redirect_uris": [redirect.rsplit(":", 1)[0] + ":1/callback"],
        "token_endpoint_auth_method": "none",
    }
    person = await _sign_in_list_call_refresh(facade, caplog, client_metadata_url=url)
    assert "CIMD Test Client" in person.consent_text and "verified" in person.consent_text
    assert "127.0.0.1" in person.consent_text  # the domain the document came from


async def test_typescript_sdk_registers_with_dcr_and_signs_in(facade: Facade) -> None:
    if (reason := missing_ts_sdk()) is not None:
        pytest.skip(reason)
    async with ts_oauth_client(facade.resource, "register") as run:
        assert run.authorize.startswith(f"{facade.url}/oauth/authorize?")
        redirect_uri = query(run.authorize)["redirect_uri"]
        async with chromium() as browser:
            page = await browser.new_page()
            await page.goto(run.authorize)
            await page.get_by_role("button", name="Approve").click()
            await page.get_by_label("Second User").check()
            async with page.expect_navigation(url=f"{redirect_uri}?**"):
                await page.get_by_role("button", name="Sign in").click()
            assert "Signed in" in await page.inner_text("body")
    result = run.result()
    assert result["registered"].startswith("dcr-") and {"whoami", "search_notes"} <= set(result["tools"])
    assert result["whoami"]["name"] == "Second User"


async def test_metadata_names_the_facade_and_prm_points_to_it(facade: Facade) -> None:
    async with httpx2.AsyncClient() as http:
        prm = (await http.get(f"{facade.url}/.well-known/oauth-protected-resource/mcp")).json()
        meta = (await http.get(f"{facade.url}/.well-known/oauth-authorization-server")).json()
    assert prm["authorization_servers"] == [facade.url]
    assert meta["issuer"] == facade.url and meta["registration_endpoint"] == f"{facade.url}/oauth/register"
    assert meta["client_id_metadata_document_supported"] is True
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["authorization_response_iss_parameter_supported"] is True
    assert "offline_access" not in prm["scopes_supported"]


@pytest.fixture
async def http() -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(timeout=30) as client:
        yield client


def _upstream_visits(facade: Facade) -> int:
    return sum(1 for r in facade.audit_records() if r["event"] == "authserver_consent" and r["outcome"] == "granted")


async def test_an_unregistered_redirect_uri_is_refused_with_no_redirect(
    facade: Facade, http: httpx2.AsyncClient
) -> None:
    flow = Flow(http, facade.url)
    assert (await flow.register()).status_code == 201
    page = await flow.authorize(redirect_uri="http://127.0.0.1:49153/elsewhere")
    assert page.status_code == 400 and "redirect_uri is not one this client registered" in page.text
    assert "location" not in page.headers


async def test_dcr_refuses_bad_metadata(facade: Facade, http: httpx2.AsyncClient) -> None:
    flow = Flow(http, facade.url)
    web_loopback = await flow.register(application_type="web")
    assert web_loopback.status_code == 400 and web_loopback.json()["error"] == "invalid_redirect_uri"
    secret = await flow.register(token_endpoint_auth_method="client_secret_post")
    assert secret.status_code == 400 and secret.json()["error"] == "invalid_client_metadata"
    native_remote = await flow.register(redirect_uris=["http://example.com/cb"])
    assert native_remote.status_code == 400 and native_remote.json()["error"] == "invalid_redirect_uri"


async def test_plain_pkce_is_refused_before_consent(facade: Facade, http: httpx2.AsyncClient) -> None:
    flow = await Flow.registered(http, facade.url)
    page = await flow.authorize(code_challenge_method="plain", code_challenge=flow.verifier)
    assert page.status_code == 400 and "plain is refused" in page.text and "Approve" not in page.text


async def test_a_wrong_verifier_and_a_reused_code_are_refused(facade: Facade, http: httpx2.AsyncClient) -> None:
    flow = await Flow.registered(http, facade.url)
    answer = await flow.code()
    assert answer["iss"] == facade.url and answer["state"] == "client-state"
    wrong = await flow.redeem(answer["code"], code_verifier="x" * 50)
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    assert "PKCE" in wrong.json()["error_description"] and "access_token" not in wrong.json()
    # The code was used up by the refused attempt; and a good code works once only.
    assert (await flow.redeem(answer["code"])).json()["error"] == "invalid_grant"
    second = await flow.code()
    first_use = await flow.redeem(second["code"])
    assert first_use.status_code == 200 and first_use.json()["token_type"] == "Bearer"
    reused = await flow.redeem(second["code"])
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant" and "already used" in reused.text
    refused = [r for r in facade.audit_records() if r["event"] == "authserver_token" and r["outcome"] == "refused"]
    assert [r["reason"] for r in refused if r["client_id"] == flow.client_id] == ["invalid_grant"] * 3


async def test_denied_consent_issues_no_code_and_never_visits_the_upstream(
    facade: Facade, http: httpx2.AsyncClient
) -> None:
    flow = await Flow.registered(http, facade.url)
    before = _upstream_visits(facade)
    denied = await flow.decide(await flow.authorize(), "deny")
    assert denied.status_code == 303
    location = denied.headers["location"]
    assert location.startswith(flow.redirect_uri + "?")
    assert query(location) == {"error": "access_denied", "state": "client-state", "iss": facade.url}
    assert _upstream_visits(facade) == before
    records = [r for r in facade.audit_records() if r.get("client_id") == flow.client_id]
    assert [(r["event"], r["outcome"]) for r in records][-1] == ("authserver_consent", "denied")


async def test_a_consent_form_without_the_browsers_csrf_cookie_is_refused(
    facade: Facade, http: httpx2.AsyncClient
) -> None:
    flow = await Flow.registered(http, facade.url)
    page = await flow.authorize()
    async with httpx2.AsyncClient() as other_browser:  # the same form, posted without this browser's cookies
        replay = await Flow(other_browser, facade.url).decide(page)
    assert replay.status_code == 403 and "CSRF" in replay.text and "location" not in replay.headers
    http.cookies.clear()
    missing = await flow.decide(page, csrf="")
    assert missing.status_code == 403 and "CSRF" in missing.text and "location" not in missing.headers


async def test_consent_is_remembered_per_user_and_client_and_a_new_client_asks(
    facade: Facade, http: httpx2.AsyncClient
) -> None:
    flow = await Flow.registered(http, facade.url)
    await flow.code()
    again = await flow.authorize()  # same browser, same user, same client: straight to the upstream
    assert again.status_code == 303 and "/oauth2/v2.0/authorize?" in again.headers["location"]
    assert (await flow.authorize(prompt="consent")).status_code == 200  # the client asks for the page: shown
    # Someone else signs in at the upstream in this browser: the remembered approval is not theirs.
    other_user = await flow.sign_in_upstream(await flow.authorize(), user="44444444-4444-4444-8444-444444444444")
    assert other_user.status_code == 303 and query(other_user.headers["location"])["error"] == "access_denied"
    assert "code" not in query(other_user.headers["location"])
    other = Flow(http, facade.url)
    await other.register()
    asked = await other.authorize()
    assert asked.status_code == 200 and "Approve" in asked.text


async def _scopes(facade: Facade, http: httpx2.AsyncClient) -> list[str]:
    found = (await http.get(f"{facade.url}/.well-known/oauth-authorization-server")).json()["scopes_supported"]
    return [s for s in found if s != "offline_access"]


async def test_a_remembered_consent_covers_only_the_scopes_the_user_approved(
    facade: Facade, http: httpx2.AsyncClient
) -> None:
    flow = await Flow.registered(http, facade.url)
    scopes = await _scopes(facade, http)
    read = next(s for s in scopes if s.endswith("/notes.read"))
    first = await flow.authorize(scope=read)
    assert first.status_code == 200 and "(new)" not in first.text  # nothing approved before: nothing marked new
    assert "code" in query((await flow.sign_in_upstream(await flow.decide(first))).headers["location"])
    same = await flow.authorize(scope=read)
    assert same.status_code == 303 and "/oauth2/v2.0/authorize?" in same.headers["location"]
    everything = " ".join([*scopes, "offline_access"])
    more = await flow.authorize(scope=everything)  # every scope and a refresh token: asks again, naming what is new
    assert more.status_code == 200 and "Approve" in more.text
    # Each scope not approved before is marked (offline_access among them), the approved one is not.
    assert more.text.count("(new)") == len(scopes) and escape("'notes.read'") + "</li>" in more.text
    denied = await flow.decide(more, "deny")
    assert query(denied.headers["location"])["error"] == "access_denied"
    assert (await flow.authorize(scope=everything)).status_code == 200  # a denial is not remembered as approval
    again = await flow.authorize(scope=everything)
    assert "code" in query((await flow.sign_in_upstream(await flow.decide(again))).headers["location"])
    assert (await flow.authorize(scope=everything)).status_code == 303  # approved: now remembered, all of it


async def test_a_callback_opened_in_another_browser_is_refused_and_changes_nothing(
    facade: Facade, http: httpx2.AsyncClient
) -> None:
    attacker = Flow(http, facade.url)
    await attacker.register()
    callback = await attacker.upstream_callback(await attacker.decide(await attacker.authorize()))
    async with httpx2.AsyncClient(timeout=30) as victim_browser:
        lured = await victim_browser.get(callback)  # the victim opens the attacker's link
        assert lured.status_code == 400 and "started in another browser" in lured.text
        assert "location" not in lured.headers and "set-cookie" not in lured.headers
        victim = Flow(victim_browser, facade.url, client_id=attacker.client_id)
        assert (await victim.authorize()).status_code == 200  # the victim's own sign-in asks as before
    finished = await http.get(callback)  # the sign-in is still where it was, for the browser that started it
    assert finished.status_code == 303 and "code" in query(finished.headers["location"])
    refused = [r for r in facade.audit_records() if r.get("reason") == "browser"]
    assert [(r["event"], r["client_id"]) for r in refused] == [("authserver_code", attacker.client_id)]


async def test_the_upstream_state_is_single_use(facade: Facade, http: httpx2.AsyncClient) -> None:
    flow = await Flow.registered(http, facade.url)
    callback = await flow.upstream_callback(await flow.decide(await flow.authorize()))
    assert (await http.get(callback)).status_code == 303
    replayed = await http.get(callback)
    assert replayed.status_code == 400 and "unknown or expired sign-in" in replayed.text
    assert "location" not in replayed.headers


async def test_a_consent_form_with_another_transactions_csrf_pair_is_refused(
    facade: Facade, http: httpx2.AsyncClient
) -> None:
    flow = await Flow.registered(http, facade.url)
    first = await flow.authorize()
    second = await flow.authorize()  # this browser's CSRF cookie is now the second page's token
    form = ConsentForm()
    form.feed(second.text)
    crossed = await flow.decide(first, csrf=form.fields["csrf"])  # cookie and form agree; the transaction does not
    assert crossed.status_code == 400 and "expired or was answered" in crossed.text
    assert "location" not in crossed.headers


async def test_a_resource_other_than_this_server_is_refused_at_authorize(
    facade: Facade, http: httpx2.AsyncClient
) -> None:
    flow = await Flow.registered(http, facade.url)
    page = await flow.authorize(resource="https://other.example/mcp")
    assert page.status_code == 400 and "invalid_target" in page.text and "Approve" not in page.text
    assert (await flow.authorize(resource=facade.resource)).status_code == 200


async def test_plain_pkce_with_a_well_formed_challenge_is_refused(facade: Facade, http: httpx2.AsyncClient) -> None:
    flow = await Flow.registered(http, facade.url)
    page = await flow.authorize(code_challenge_method="plain")  # the S256 challenge's shape, with method plain
    assert page.status_code == 400 and "plain is refused" in page.text and "Approve" not in page.text


async def test_a_code_is_redeemed_only_by_its_client_and_with_its_redirect_uri(
    facade: Facade, http: httpx2.AsyncClient
) -> None:
    owner, other = Flow(http, facade.url), Flow(http, facade.url)
    await owner.register()
    await other.register()
    stolen = await owner.code()
    refused = await owner.redeem(stolen["code"], client_id=other.client_id)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    assert "another client" in refused.json()["error_description"] and "access_token" not in refused.json()
    elsewhere = await owner.redeem((await owner.code())["code"], redirect_uri="http://127.0.0.1:49153/elsewhere")
    assert elsewhere.status_code == 400 and "redirect_uri" in elsewhere.json()["error_description"]
    assert "access_token" not in elsewhere.json()


@pytest.mark.parametrize(
    ("name", "document", "why"),
    [
        ("other.json", {"client_id": "https://elsewhere.example/c.json", "redirect_uris": ["http://127.0.0.1/cb"]},
         "client_id is not the URL"),
        ("big.json", b'{"client_id": "x", "pad": "' + b"a" * 6000 + b'"}', "larger than 5120 bytes"),
    ],
)  # fmt: skip
async def test_a_bad_cimd_document_is_refused(
    facade: Facade, http: httpx2.AsyncClient, name: str, document: Any, why: str
) -> None:
    facade.documents[name] = document
    flow = Flow(http, facade.url, client_id=f"{facade.documents_url}/clients/{name}")
    page = await flow.authorize()
    assert page.status_code == 400 and why in page.text and "Approve" not in page.text


@pytest.mark.parametrize(
    "host",
    [
        "10.0.0.1", "169.254.169.254", "192.168.1.1", "[fd00::1]",
        # IPv6 forms that embed a private, loopback or link-local IPv4 address
        "[64:ff9b::a00:1]", "[64:ff9b:1::a00:1]", "[2002:a00:1::1]", "[::a00:1]", "[::ffff:0:a00:1]",
        "[::ffff:a9fe:a9fe]", "[64:ff9b::7f00:1]", "[2002:c0a8:101::1]",
    ],
)  # fmt: skip
async def test_a_cimd_url_on_a_private_address_is_refused(facade: Facade, http: httpx2.AsyncClient, host: str) -> None:
    flow = Flow(http, facade.url, client_id=f"https://{host}/client.json")
    page = await flow.authorize()
    assert page.status_code == 400 and "private, loopback or link-local" in page.text


async def test_a_cimd_url_must_be_https(facade: Facade, http: httpx2.AsyncClient) -> None:
    flow = Flow(http, facade.url, client_id="http://example.com/client.json")
    page = await flow.authorize()
    assert page.status_code == 400 and "must be https" in page.text


def test_production_refuses_the_facade_without_a_client_secret_and_it_is_off_by_default() -> None:
    production: dict[str, Any] = {
        "app_env": "production",
        "azuread": {"tenant_id": "t", "client_id": "c"},
        "mcp": {"resource_host": "https://mcp.example.com"},
        "tools": {"lock_mode": "warn"},
    }
    with pytest.raises(ValueError, match="AUTH_SERVER__ENABLED needs"):
        Settings(_env_file=None, auth_server={"enabled": True}, **production)
    assert AuthServerSettings().enabled is False


def test_development_refuses_the_facade_without_a_client_secret_in_one_line(tmp_path: Path) -> None:
    """Without a credential the dev issuer would refuse the facade after the consent page: refused at startup."""
    with pytest.raises(ValueError, match=r"AUTH_SERVER__ENABLED needs .*AZUREAD__CLIENT_SECRET"):
        Settings(_env_file=None, app_env="development", auth_server={"enabled": True})
    env = {**os.environ, "APP_ENV": "development", "AUTH_SERVER__ENABLED": "true", "PYTHONPATH": str(REPO)}
    env.pop("AZUREAD__CLIENT_SECRET", None)
    started = subprocess.run(
        [sys.executable, "-m", "app"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )
    assert started.returncode != 0 and "Traceback" not in started.stderr
    assert "AZUREAD__CLIENT_SECRET" in started.stderr.strip().splitlines()[-1]


async def test_the_facade_endpoints_spend_the_per_ip_unauthenticated_budget(tmp_path: Path) -> None:
    port = free_port()
    settings = Settings(
        _env_file=None,
        app_env="development",
        dev_issuer={"port": free_port(), "key_dir": tmp_path / "dev"},
        mcp={"resource_host": f"http://127.0.0.1:{port}"},
        azuread={"client_secret": FACADE_SECRET},
        auth_server={"enabled": True},
        rate_limit={"unauthenticated": "3/minute"},
    )
    with ServerThread(create_app(settings), port=port):
        async with httpx2.AsyncClient() as http:
            calls = [("GET", "/.well-known/oauth-authorization-server"), ("GET", "/oauth/authorize")]
            calls += [("POST", "/oauth/register"), ("POST", "/oauth/token")]
            answers = [
                (await http.request(method, settings.resource_host + path)).status_code for method, path in calls
            ]
    assert 429 not in answers[:3] and answers[3] == 429  # the fourth request from this address in a minute


_WRONG = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False),
    st.text(max_size=30),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
_DCR_FIELDS = (
    "redirect_uris",
    "client_name",
    "token_endpoint_auth_method",
    "grant_types",
    "response_types",
    "application_type",
    "scope",
    "client_uri",
    "logo_uri",
)
FORM = {"content-type": "application/x-www-form-urlencoded"}
_FORM_FIELDS = ("grant_type", "code", "code_verifier", "redirect_uri", "client_id", "refresh_token", "resource")
_QUERY_FIELDS = ("client_id", "redirect_uri", "response_type", "code_challenge", "code_challenge_method", "state")


def test_the_facade_endpoints_answer_hostile_input_with_a_clear_4xx(facade: Facade) -> None:
    """Hypothesis, as an attacker would: every DCR field with a value of every wrong JSON type (and non-JSON bodies),
    /token and /authorize with odd, repeated and oversized parameters, the consent form with junk. Never a 5xx, and
    every refusal is an OAuth JSON error or a page, never a traceback."""
    http = httpx2.Client(base_url=facade.url, timeout=20, follow_redirects=False)

    statuses: list[int] = []

    def clear(response: httpx2.Response) -> None:
        statuses.append(response.status_code)
        assert response.status_code < 500, (response.status_code, response.text[:300])
        assert "Traceback" not in response.text

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(field=st.sampled_from(_DCR_FIELDS), value=_WRONG, raw=st.sampled_from([None, b"[]", b"nul", b"{" * 50]))
    def register(field: str, value: Any, raw: bytes | None) -> None:
        body = {"redirect_uris": ["http://127.0.0.1:9/cb"], "client_name": "x", field: value}
        if raw is None:
            response = http.post("/oauth/register", json=body)
        else:
            response = http.post("/oauth/register", content=raw, headers={"content-type": "application/json"})
        clear(response)

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(pairs=st.lists(st.tuples(st.sampled_from(_FORM_FIELDS), st.text(max_size=300)), max_size=8))
    def token(pairs: list[tuple[str, str]]) -> None:
        clear(http.post("/oauth/token", content=urlencode(pairs), headers=FORM))  # repeated names on purpose

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(pairs=st.lists(st.tuples(st.sampled_from(_QUERY_FIELDS), st.text(max_size=300)), max_size=8))
    def authorize(pairs: list[tuple[str, str]]) -> None:
        clear(http.get("/oauth/authorize", params=tuple(pairs)))  # a tuple: httpx2 types a list's items invariantly

    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(pairs=st.lists(st.tuples(st.sampled_from(("csrf", "transaction", "decision")), st.text()), max_size=5))
    def consent(pairs: list[tuple[str, str]]) -> None:
        clear(http.post("/oauth/consent", content=urlencode(pairs), headers={**FORM, "origin": facade.url}))

    with http:
        for run in (register, token, authorize, consent):
            run()
    assert 429 not in statuses  # each input reached its handler, not the per-IP budget
    assert {400, 403} <= set(statuses)
