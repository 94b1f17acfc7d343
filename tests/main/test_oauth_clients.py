"""Real MCP clients sign in, for real: the Python SDK's `OAuthClientProvider` and the TypeScript SDK's client run their
whole flow (401, Protected Resource Metadata, authorization server metadata, the sign-in page in headless Chromium,
the token request) against `make run`'s server and dev issuer, then list and call tools. The Python client refreshes
once its access token has expired. With an `api://` App ID URI the server still starts in development, and a client
sending RFC 8707 `resource` is refused with the AADSTS9010010 explanation, as Entra would refuse it.

Needs Chromium (Debian's `chromium`) and Playwright; the TypeScript client also needs Node 22 and the SDK from npm
(`.ci/run` installs both). Missing, they are skipped with the reason, and under CI they fail.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from app.main import create_app
from app.settings import DEV_TENANT_ID, Settings
from app.settings.fields import DEV_PUBLIC_CLIENT_ID
from tests.support.oauth import (
    Callback,
    PythonClient,
    chromium,
    missing_ts_sdk,
    require_chromium,
    sign_in,
    ts_oauth_client,
)
from tests.support.servers import ServerThread, free_port, wait_ready
from tests.support.values import JWT_SHAPED, REPO

require_chromium()
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not (REPO / "Makefile").exists(), reason="needs the Makefile")]

TOKEN_SECONDS = 6  # DEV_ISSUER__TOKEN_SECONDS: short, so the refresh is seen; clock skew 0, so expiry is real


@dataclass
class DevServer:
    url: str
    issuer: str
    log: Path

    @property
    def resource(self) -> str:
        return f"{self.url}/mcp"

    def assert_log_free_of(self, secrets: list[str]) -> None:
        text = self.log.read_text()
        assert not JWT_SHAPED.search(text), "a token reached the server's output"
        assert not [s for s in secrets if s and s in text], "a code or refresh token reached the server's output"


@pytest.fixture(scope="module")
async def make_run(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[DevServer]:
    """`make run` as a newcomer runs it, with its port, the issuer's, and a short token lifetime."""
    port, issuer_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AZUREAD__", "MCP__", "APP_ENV", "TOOLS__", "DEV_ISSUER__", "RATE_LIMIT__"))
    }
    env |= {
        "PORT": str(port),
        "DEV_ISSUER__PORT": str(issuer_port),
        "DEV_ISSUER__TOKEN_SECONDS": str(TOKEN_SECONDS),
        "AZUREAD__CLOCK_SKEW_SECONDS": "0",
        "RATE_LIMIT__UNAUTHENTICATED": "600/minute",  # several sign-ins from one address in a minute
        "LOG_LEVEL": "DEBUG",  # so the check below sees everything the server could log
    }
    log = tmp_path_factory.mktemp("make-run") / "output.log"
    with log.open("w") as output:
        server = subprocess.Popen(
            ["make", "-s", "run"], cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        await wait_ready(url, server, timeout=120)  # type: ignore[arg-type]
        yield DevServer(url, f"http://127.0.0.1:{issuer_port}/{DEV_TENANT_ID}/v2.0", log)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


async def test_python_sdk_signs_in_through_the_browser_lists_and_calls_tools_and_refreshes(
    make_run: DevServer, tmp_path: Path
) -> None:
    url = make_run.url
    with Callback() as callback:
        async with chromium() as browser:
            person = PythonClient(
                make_run.resource,
                DEV_PUBLIC_CLIENT_ID,
                callback,
                browser,
                choices={"uncheck": ["notes.write"], "screenshot": tmp_path / "sign-in.png"},
            )
            provider, storage = person.provider()
            server_url = make_run.resource
            async with (
                httpx2.AsyncClient(auth=provider, timeout=30) as http,
                Client(streamable_http_client(server_url, http_client=http)) as client,
            ):
                names = {tool.name for tool in (await client.list_tools()).tools}
                who = await client.call_tool("whoami", {})
                assert len(person.sign_ins) == 1 and len(storage.issued) == 1
                first = storage.issued[0]

                await asyncio.sleep(TOKEN_SECONDS + 1)  # the access token expires; the server refuses it now
                async with httpx2.AsyncClient() as raw:
                    expired = await raw.post(
                        f"{url}/mcp", json={}, headers={"Authorization": f"Bearer {first.access_token}"}
                    )
                assert expired.status_code == 401
                again = await client.call_tool("whoami", {})  # the SDK refreshes first; no second sign-in

            assert again.structured_content is not None and again.structured_content["name"] == "Dev User"
            assert len(person.sign_ins) == 1 and len(storage.issued) == 2
            renewed = storage.issued[1]
            assert renewed.access_token != first.access_token
            assert renewed.refresh_token and renewed.refresh_token != first.refresh_token  # rotated

    # What the browser was sent to: RFC 8707 resource = PRM's resource, PKCE S256, the PRM scopes + offline_access.
    request = {k: v[0] for k, v in parse_qs(urlsplit(person.sign_ins[0]).query).items()}
    assert request["resource"] == make_run.resource and request["code_challenge_method"] == "S256"
    assert request["client_id"] == DEV_PUBLIC_CLIENT_ID
    async with httpx2.AsyncClient() as raw:
        prm = (await raw.get(f"{url}/.well-known/oauth-protected-resource")).json()
    assert request["scope"].split() == [*prm["scopes_supported"], "offline_access"]  # the SDK adds offline_access
    assert all(scope.startswith(f"{make_run.resource}/") for scope in prm["scopes_supported"])
    # What the person chose on the page: notes.write unchecked, so the list hides create_note.
    assert {"whoami", "search_notes"} <= names and "create_note" not in names
    assert first.scope is not None and f"{make_run.resource}/notes.write" not in first.scope.split()
    assert who.structured_content is not None and who.structured_content["name"] == "Dev User"
    assert who.structured_content["client_id"] == DEV_PUBLIC_CLIENT_ID  # azp: the client that signed in
    make_run.assert_log_free_of([r.get("code", "") for r in callback.seen] + [first.refresh_token or ""])


async def test_typescript_sdk_signs_in_through_the_browser_and_lists_and_calls_tools(make_run: DevServer) -> None:
    if (reason := missing_ts_sdk()) is not None:
        pytest.skip(reason)
    async with ts_oauth_client(make_run.resource, DEV_PUBLIC_CLIENT_ID) as run:
        assert run.authorize.startswith(make_run.issuer.removesuffix("/v2.0") + "/oauth2/v2.0/authorize?")
        async with chromium() as browser:
            page = await sign_in(browser, run.authorize, user="Second User")
            assert "Signed in" in await page.inner_text("body")  # the TS client's loopback listener answered
    result = run.result()
    assert {"whoami", "search_notes", "create_note"} <= set(result["tools"])  # every requested scope granted
    assert result["whoami"]["name"] == "Second User"
    query = {k: v[0] for k, v in parse_qs(urlsplit(run.authorize).query).items()}
    assert query["resource"] == make_run.resource and query["code_challenge_method"] == "S256"
    make_run.assert_log_free_of([])


async def test_with_an_api_app_id_uri_the_server_starts_and_a_client_sending_resource_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """AZUREAD__APP_ID_URI=api://{client_id} still starts in development; what breaks is shown where Entra shows it."""
    port = free_port()
    settings = Settings(
        _env_file=None,
        app_env="development",
        azuread={"app_id_uri": "api://{client_id}"},
        dev_issuer={"port": free_port(), "key_dir": tmp_path / "dev"},
        mcp={"resource_host": f"http://127.0.0.1:{port}"},
    )
    with caplog.at_level(logging.WARNING, logger="app"):
        app = create_app(settings)
    assert (
        "AADSTS9010010" in caplog.text and f"Application ID URI (Expose an API) to {settings.resource}" in caplog.text
    )
    seen: dict[str, object] = {}

    class RefusedInBrowser(PythonClient):
        async def _redirect(self, url: str) -> None:
            page = await self.browser.new_page()
            response = await page.goto(url)
            seen["status"], seen["body"] = response.status if response else 0, await page.inner_text("body")
            raise RuntimeError("the sign-in was refused")

    with ServerThread(app, port=port), Callback() as callback:
        async with httpx2.AsyncClient() as raw:
            prm = (await raw.get(f"http://127.0.0.1:{port}/.well-known/oauth-protected-resource/mcp")).json()
        assert all(s.startswith(f"api://{settings.client_id}/") for s in prm["scopes_supported"])
        async with chromium() as browser:
            provider, _ = RefusedInBrowser(settings.resource, DEV_PUBLIC_CLIENT_ID, callback, browser).provider()
            with pytest.raises(Exception):  # noqa: B017, PT011 - the SDK wraps it in its task group's exception group
                async with (
                    httpx2.AsyncClient(auth=provider, timeout=30) as http,
                    Client(streamable_http_client(settings.resource, http_client=http)) as client,
                ):
                    await client.list_tools()
    body = str(seen["body"])
    assert seen["status"] == 400 and "invalid_target" in body and "AADSTS9010010" in body
    assert callback.seen == []  # no code was ever issued
