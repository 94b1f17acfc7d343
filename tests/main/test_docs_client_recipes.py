"""docs/clients.md's code, run as a reader runs it. Its Python and TypeScript SDK programs are taken from the page,
saved to files and run (Python with this environment's SDK, Node 22 with the TypeScript SDK `.ci/run` installs)
against a real server with the embedded dev issuer and against the authorization-server facade, the sign-in pages
driven in headless Chromium. At the facade, which sends RFC 9207 `iss` and says so, the Python program with its
`iss` dropped fails, and the TypeScript program refuses a response whose `iss` was taken out on the way.

"VS Code against the dev issuer": its `.vscode/mcp.json` names the server `make run` serves, and a sign-in as VS Code
makes it (the client id the page says to enter, both redirect URIs VS Code names, no secret) reaches the sign-in page,
completes in Chromium, and gives a token the server accepts. The sign-in's redirect is taken from the form's answer,
not followed: nothing listens on VS Code's port 33418, and vscode.dev is not reached.

Needs Chromium and Playwright, and for the TypeScript program Node 22 and the SDK: missing, these tests are skipped
with the reason, and under CI (`CI` set) they fail.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx2
import pytest

from app.main import create_app
from app.settings import Settings
from app.settings.fields import DEV_PUBLIC_CLIENT_ID
from tests.support.doc_recipes import (
    DOC,
    code_blocks,
    doc_block,
    node_recipe,
    query,
    run_python,
    sections,
    sign_in_through,
)
from tests.support.facade import Flow
from tests.support.oauth import NODE, TS_SDK, chromium, missing_ts_sdk, require_chromium
from tests.support.servers import ServerThread, free_port

require_chromium()
pytestmark = pytest.mark.slow

FACADE_CLIENT = "docs-recipe"  # AUTH_SERVER__CLIENTS: a loopback redirect URI, which matches on any port
FACADE_SECRET = "facade-test-secret-0123456789"
VSCODE_REDIRECTS = ("http://127.0.0.1:33418/", "https://vscode.dev/redirect")  # what VS Code names when it asks


@dataclass
class Served:
    url: str

    @property
    def resource(self) -> str:
        return f"{self.url}/mcp"


def _serve(tmp: Path, **more: Any) -> Iterator[Served]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = Settings(
        _env_file=None,
        app_env="development",
        dev_issuer={"port": free_port(), "key_dir": tmp / "dev"},
        mcp={"resource_host": url},
        rate_limit={"unauthenticated": "1000/minute"},  # several sign-ins from one address in a minute
        **more,
    )
    with ServerThread(create_app(settings), port=port):
        yield Served(url)


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A server with the embedded dev issuer, as `make run` starts it."""
    yield from _serve(tmp_path_factory.mktemp("dev"))


@pytest.fixture(scope="module")
def facade(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The same with the authorization-server facade in front of the dev issuer, and the recipes' client registered."""
    client = {"client_id": FACADE_CLIENT, "client_name": "Docs recipe", "redirect_uris": ["http://127.0.0.1/callback"]}
    yield from _serve(
        tmp_path_factory.mktemp("facade"),
        azuread={"client_secret": FACADE_SECRET},
        auth_server={"enabled": True, "clients": [client]},
    )


def test_the_pages_python_and_javascript_are_the_two_programs_run_here_and_real_text() -> None:
    text = DOC.read_text()
    languages = ("python", "javascript")
    found = [
        (title, lang) for title, body in sections(text).items() for lang in languages for _ in code_blocks(body, lang)
    ]
    assert found == [("Python SDK", "python"), ("TypeScript SDK", "javascript")]
    assert sum(len(code_blocks(text, lang)) for lang in languages) == 2  # none before the first section either
    assert "--8<--" not in text  # no include: the page holds the code
    make_run_resource = Settings(app_env="development", _env_file=None).resource  # where `make run` serves by default
    for source in (doc_block("Python SDK", "python"), doc_block("TypeScript SDK", "javascript")):
        # As copied, it runs against `make run` with the dev issuer's client (the environment names others).
        assert f'"{make_run_resource}"' in source and f'"{DEV_PUBLIC_CLIENT_ID}"' in source
    compile(doc_block("Python SDK", "python"), "client.py", "exec")


async def test_the_python_program_signs_in_at_the_dev_issuer(dev: Served, tmp_path: Path) -> None:
    run = await run_python(doc_block("Python SDK", "python"), tmp_path, dev.resource, DEV_PUBLIC_CLIENT_ID)
    tools, whoami = run.result()
    assert {"whoami", "search_notes", "create_note"} <= set(tools)
    assert whoami["name"] == "Dev User" and whoami["client_id"] == DEV_PUBLIC_CLIENT_ID
    (browser,) = run.browser  # one sign-in, at the dev issuer's page, which sends no iss (as Entra sends none)
    assert query(browser["authorize"])["resource"] == dev.resource and browser["iss"] is None
    assert browser["returned"] == ["code", "state"] and "Sign in to" in browser["pages"][0]


async def test_the_python_program_passes_iss_on_and_the_facade_requires_it(facade: Served, tmp_path: Path) -> None:
    source = doc_block("Python SDK", "python")
    run = await run_python(source, tmp_path, facade.resource, FACADE_CLIENT)
    tools, whoami = run.result()
    assert "whoami" in tools and whoami["name"] == "Dev User"
    (browser,) = run.browser  # the facade's consent page, then the dev issuer's sign-in
    assert "Allow Docs recipe" in browser["pages"][0] and "Sign in to" in browser["pages"][1]
    assert browser["iss"] == facade.url and "iss" in browser["returned"]
    # The same program with a callback that returns code and state only: the SDK refuses the response.
    dropped = source.replace(', iss=answer.get("iss")', "")
    assert dropped.count("iss=") == source.count("iss=") - 1
    (tmp_path / "without-iss").mkdir()
    refused = await run_python(dropped, tmp_path / "without-iss", facade.resource, FACADE_CLIENT)
    assert refused.returncode != 0 and "Authorization response missing iss parameter" in refused.err
    assert "whoami:" not in refused.out and refused.browser[0]["iss"] == facade.url


@pytest.mark.parametrize("at", ["dev", "facade"])
async def test_the_typescript_program_signs_in(at: str, dev: Served, facade: Served, tmp_path: Path) -> None:
    if (reason := missing_ts_sdk()) is not None:
        pytest.skip(reason)
    server, client_id = (dev, DEV_PUBLIC_CLIENT_ID) if at == "dev" else (facade, FACADE_CLIENT)
    source = doc_block("TypeScript SDK", "javascript")
    async with node_recipe(source, tmp_path, server.resource, client_id, NODE, TS_SDK) as run, chromium() as browser:
        _, answer = await sign_in_through(browser, run.authorize)
    assert answer.get("iss") == (facade.url if at == "facade" else None)
    tools, whoami = run.result()
    assert "whoami" in tools and whoami["name"] == "Dev User"


async def test_the_typescript_program_refuses_the_facades_answer_without_iss(facade: Served, tmp_path: Path) -> None:
    """The browser here is an HTTP client with a cookie jar (tests/support/facade.py), which takes `iss` out of the
    facade's redirect before it reaches the program: the program, not the SDK, refuses it."""
    if (reason := missing_ts_sdk()) is not None:
        pytest.skip(reason)
    source = doc_block("TypeScript SDK", "javascript")
    async with (
        node_recipe(source, tmp_path, facade.resource, FACADE_CLIENT, NODE, TS_SDK) as run,
        httpx2.AsyncClient(timeout=30) as http,
    ):
        browser = Flow(http, facade.url)
        consent = await http.get(run.authorize)
        redirected = await browser.sign_in_upstream(await browser.decide(consent))
        location = redirected.headers["location"]
        answer = query(location)
        assert answer.pop("iss") == facade.url and location.startswith(query(run.authorize)["redirect_uri"] + "?")
        assert (await http.get(f"{location.split('?')[0]}?{urlencode(answer)}")).status_code == 200
    assert run.returncode != 0 and f"iss (undefined) is not {facade.url}" in run.err, run.err[-2000:]
    assert "whoami:" not in run.out


def test_the_vscode_mcp_json_names_the_server_make_run_serves() -> None:
    (server,) = json.loads(doc_block("VS Code", "json"))["servers"].values()
    development = Settings(_env_file=None, app_env="development")
    assert server == {"type": "http", "url": development.resource}
    section = sections(DOC.read_text())["VS Code"]
    assert f"`{DEV_PUBLIC_CLIENT_ID}`" in section and all(f"`{uri}`" in section for uri in VSCODE_REDIRECTS)


async def test_vscode_signs_in_at_the_dev_issuer_as_the_page_says(dev: Served) -> None:
    async with httpx2.AsyncClient(timeout=30) as http:
        prm = (await http.get(f"{dev.url}/.well-known/oauth-protected-resource/mcp")).json()
        issuer = prm["authorization_servers"][0]
        origin, path = issuer.split("/", 3)[:3], issuer.split("/", 3)[3]
        metadata = (await http.get(f"{'/'.join(origin)}/.well-known/oauth-authorization-server/{path}")).json()
        assert "registration_endpoint" not in metadata  # so VS Code asks for a client id
        for redirect_uri in (*VSCODE_REDIRECTS, "https://insiders.vscode.dev/redirect"):
            verifier = secrets.token_hex(32)  # VS Code's: 64 hex characters
            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            # VS Code's state: 16 random bytes in base64 on loopback, its own app URI through vscode.dev.
            state = "ey/lnTwSm9FUcQN/Qds+Cg==" if redirect_uri.startswith("http:") else "vscode://dynamicauthprovider/x"
            request = {
                "client_id": DEV_PUBLIC_CLIENT_ID,
                "response_type": "code",
                "code_challenge": challenge,
                "code_challenge_method": "S256",
                "scope": " ".join(prm["scopes_supported"]),
                "resource": prm["resource"],
                "redirect_uri": redirect_uri,
                "state": state,
            }
            url = f"{metadata['authorization_endpoint']}?{urlencode(request)}"
            page = await http.get(url)
            assert page.status_code == 200 and "Sign in to" in page.text, (redirect_uri, page.text[:300])
            if "insiders" in redirect_uri:
                continue  # accepted like vscode.dev's; one sign-in through each of the two VS Code names is enough
            location = await _sign_in_for_vscode(url, metadata["authorization_endpoint"])
            assert location.startswith(f"{redirect_uri}?"), location
            answer = query(location)
            assert answer["state"] == state
            token = await http.post(
                metadata["token_endpoint"],
                data={  # what VS Code sends: no secret, no resource
                    "client_id": DEV_PUBLIC_CLIENT_ID,
                    "grant_type": "authorization_code",
                    "code": answer["code"],
                    "redirect_uri": redirect_uri,
                    "code_verifier": verifier,
                },
            )
            assert token.status_code == 200, token.text
            assert await _initialize(http, dev.resource, token.json()["access_token"]) == 200


async def _sign_in_for_vscode(url: str, endpoint: str) -> str:
    """Sign in at `url` in Chromium, with what the page pre-selects; the redirect the sign-in answers with is VS
    Code's to receive, so the browser does not follow it (nothing listens on 33418, vscode.dev is not reached)."""
    locations: list[str] = []

    async def answer(route: Any) -> None:
        if route.request.method != "POST":
            await route.continue_()
            return
        response = await route.fetch(max_redirects=0)  # the form post, as the browser sent it
        locations.append(response.headers.get("location", f"{response.status}: {await response.text()}"))
        await route.fulfill(status=200, content_type="text/plain", body="VS Code has the response")

    async with chromium() as browser:
        page = await browser.new_page()
        await page.route(endpoint, answer)
        await page.goto(url)
        async with page.expect_navigation():
            await page.get_by_role("button", name="Sign in").click()
    (location,) = locations
    return location


async def _initialize(http: httpx2.AsyncClient, url: str, token: str) -> int:
    """The status of one `initialize` POST with `token` as the bearer token."""
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "vscode", "version": "1"},
        },
    }
    headers = {"authorization": f"Bearer {token}", "accept": "application/json, text/event-stream"}
    return (await http.post(url, json=body, headers=headers)).status_code
