"""The dev issuer with two MCP servers (`SERVERS__B__*`), like an Entra tenant with two app registrations, over real
HTTP: a request is for one app, picked by its scopes' App ID URI or by RFC 8707 `resource`; its tokens carry that
app's audience and scopes only; scopes of two apps in one request are refused (AADSTS28000), and so is one app's
scope with the other's resource (AADSTS9010010); the facade signs in as each server's own app with its own secret.
`python -m app.devissuer token --server b` and `make token SERVER=b` mint for B."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import pytest

from app.authserver.options import CALLBACK_PATH
from app.catalog.discovery import discover
from app.compose.devissuer import dev_issuer_config
from app.devissuer.issuer import DevIssuer
from app.settings import Settings
from app.settings.servers import dev_client_id
from tests.support.dev_oauth import DevOAuth, error_of, redirect_query
from tests.support.servers import ServerThread, free_port
from tests.support.values import REPO, SUPPORT

B_TOOLS = SUPPORT / "servers_b_tools"
FIRST_SECRET = "dev-first-secret-0123456789"
B_SECRET = "dev-b-secret-0123456789abcdef"


def two_servers(key_dir: Path, **sections: dict[str, Any]) -> Settings:
    values: dict[str, Any] = {
        "app_env": "development",
        "dev_issuer": {"port": free_port(), "key_dir": key_dir},
        "mcp": {"resource_host": f"http://127.0.0.1:{free_port()}"},  # only named, never listened on
        "servers": {"b": {"path": "/b/mcp", "tools_dir": B_TOOLS, "client_secret": B_SECRET}},
        "rate_limit": {"unauthenticated": "1000/minute"},
    }
    for section, value in sections.items():
        values[section] = {**values.get(section, {}), **value}
    return Settings(_env_file=None, **values)


class TwoApps(DevOAuth):
    """`DevOAuth` with B's App ID URI at hand."""

    @property
    def a(self) -> str:
        return self.settings.app_id_uri

    @property
    def b(self) -> str:
        return self.settings.served()[1].app_id_uri


@pytest.fixture
async def oauth(tmp_path: Path) -> AsyncIterator[TwoApps]:
    settings = two_servers(tmp_path, azuread={"client_secret": FIRST_SECRET}, auth_server={"enabled": True})
    catalogs = [discover(one.tools_dir) for one in settings.served()]
    issuer = DevIssuer(dev_issuer_config(settings, catalogs))
    with ServerThread(issuer.asgi_app(), port=settings.dev_issuer.port) as server:
        client = TwoApps(settings, server.url)
        yield client
        await client.http.aclose()


def _claims(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def test_the_config_has_one_app_per_server_each_with_its_own_client_id_scopes_and_secret(tmp_path: Path) -> None:
    settings = two_servers(tmp_path, azuread={"client_secret": FIRST_SECRET}, auth_server={"enabled": True})
    config = dev_issuer_config(settings, [discover(one.tools_dir) for one in settings.served()])
    first, b = config.apps
    assert (first.key, b.key) == ("", "b") and config.app("b") is b and config.first is first
    assert first.audience == settings.client_id and b.audience == dev_client_id("b") != first.audience
    assert b.app_id_uri == b.resource == f"{settings.resource_host}/b/mcp" and b.server_name == "b"
    assert b.known_scopes == ("records.read", "records.write") and "records.read" not in first.known_scopes
    callback = settings.resource_host + CALLBACK_PATH
    assert first.facade_client == (settings.client_id, callback) and b.facade_client == (b.audience, callback)
    assert first.facade_secret is not None and first.facade_secret.get_secret_value() == FIRST_SECRET
    assert b.facade_secret is not None and b.facade_secret.get_secret_value() == B_SECRET
    with pytest.raises(LookupError, match="no server 'c'"):
        config.app("c")


async def test_a_sign_in_for_b_names_b_and_its_token_has_bs_audience_and_scopes_only(oauth: TwoApps) -> None:
    scope = f"{oauth.b}/records.read offline_access"
    page, fields = await oauth.page(scope=scope, resource=oauth.b)
    assert page.status_code == 200 and "Sign in to b" in page.text and oauth.b in page.text
    # B's scopes and roles are offered, none of the first server's.
    offered = {value for name, value in fields.options if name == "grant_scope"}
    assert offered == {"records.read", "records.write"}
    answer = await oauth.submit(fields)
    assert answer.status_code == 303, answer.text
    tokens = await oauth.exchange(redirect_query(answer)["code"], resource=oauth.b)
    assert tokens.status_code == 200, tokens.text
    body = tokens.json()
    claims = _claims(body["access_token"])
    assert claims["aud"] == dev_client_id("b") and claims["scp"] == "records.read"
    assert body["scope"].split() == [f"{oauth.b}/records.read", "offline_access"]
    renewed = await oauth.refresh(body["refresh_token"], resource=oauth.b)
    assert renewed.status_code == 200 and _claims(renewed.json()["access_token"])["aud"] == dev_client_id("b")
    # A refresh may not cross to the first server's app, by resource or by scope.
    wrong = await oauth.refresh(renewed.json()["refresh_token"], resource=oauth.a)
    assert error_of(wrong)[:2] == (400, "invalid_target")
    wider = await oauth.refresh(renewed.json()["refresh_token"], scope=f"{oauth.a}/mcp.read", resource=None)
    assert error_of(wider)[:2] == (400, "invalid_scope")


async def test_without_a_resource_the_scopes_pick_the_app(oauth: TwoApps) -> None:
    code = await oauth.code(scope=f"{oauth.b}/records.write", resource=None)
    body = (await oauth.exchange(code, resource=None)).json()
    assert _claims(body["access_token"])["aud"] == dev_client_id("b")
    first = await oauth.code(resource=None)  # the first server's scopes: its app, as before
    assert (
        _claims((await oauth.exchange(first, resource=None)).json()["access_token"])["aud"] == oauth.settings.client_id
    )


async def test_mixing_two_servers_scopes_is_refused_as_at_entra(oauth: TwoApps) -> None:
    for resource in (None, oauth.a, oauth.b):
        response, fields = await oauth.page(scope=f"{oauth.a}/mcp.read {oauth.b}/records.read", resource=resource)
        status, error, description = error_of(response)
        assert (status, error) == (400, "invalid_scope") and "AADSTS28000" in description and not fields.hidden


async def test_one_apps_scope_with_the_other_apps_resource_is_refused(oauth: TwoApps) -> None:
    for scope, resource, owner in (
        (f"{oauth.a}/mcp.read", oauth.b, oauth.a),
        (f"{oauth.b}/records.read", oauth.a, oauth.b),
    ):
        response, _ = await oauth.page(scope=scope, resource=resource)
        status, error, description = error_of(response)
        assert (status, error) == (400, "invalid_target") and "AADSTS9010010" in description and owner in description


async def test_a_resource_that_is_no_apps_app_id_uri_is_refused_naming_both(oauth: TwoApps) -> None:
    response, _ = await oauth.page(scope="openid offline_access", resource=f"{oauth.settings.resource_host}/c/mcp")
    status, error, description = error_of(response)
    assert (status, error) == (400, "invalid_target") and "AADSTS9010010" in description
    assert oauth.a in description and oauth.b in description
    named, _ = await oauth.page(scope="openid", resource=oauth.b)  # B named, but none of B's scopes asked
    assert error_of(named)[:2] == (400, "invalid_scope") and oauth.b in error_of(named)[2]


async def test_a_code_for_b_is_refused_with_the_first_servers_resource(oauth: TwoApps) -> None:
    code = await oauth.code(scope=f"{oauth.b}/records.read", resource=oauth.b)
    refused = await oauth.exchange(code, resource=oauth.a)
    assert error_of(refused)[:2] == (400, "invalid_target") and oauth.b in error_of(refused)[2]
    assert error_of(await oauth.exchange(code, resource=oauth.b))[:2] == (400, "invalid_grant")  # used up


async def test_the_facade_signs_in_as_each_servers_own_app_with_its_own_secret(oauth: TwoApps) -> None:
    b_client, callback = dev_client_id("b"), oauth.settings.resource_host + CALLBACK_PATH
    oauth.redirect_uri = callback
    as_b = {"client_id": b_client, "scope": f"{oauth.b}/records.read", "resource": None}
    # B's client id may sign in for B only: not for the first server (as Entra's AADSTS650057).
    other, _ = await oauth.page(client_id=b_client, resource=None)
    assert error_of(other)[:2] == (400, "invalid_client") and "AADSTS650057" in error_of(other)[2]
    first, _ = await oauth.page(client_id=oauth.settings.client_id, scope=as_b["scope"], resource=None)
    assert error_of(first)[:2] == (400, "invalid_client")
    code = await oauth.code(**as_b)
    wrong = await oauth.exchange(code, client_id=b_client, client_secret=FIRST_SECRET, resource=None)
    assert error_of(wrong)[:2] == (401, "invalid_client")  # the first server's secret is not B's
    code = await oauth.code(**as_b)
    good = await oauth.exchange(code, client_id=b_client, client_secret=B_SECRET, resource=None)
    assert good.status_code == 200, good.text
    assert _claims(good.json()["access_token"])["aud"] == b_client


def test_mint_picks_the_server_by_its_key(tmp_path: Path) -> None:
    issuer = DevIssuer(dev_issuer_config(two_servers(tmp_path)))
    assert _claims(issuer.mint("mcp.read"))["aud"] == issuer.config.first.audience
    assert _claims(issuer.mint("records.read", server="b"))["aud"] == dev_client_id("b")
    with pytest.raises(LookupError, match="no server 'nope'"):
        issuer.mint(server="nope")


def _token_command(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SERVERS__", "AZUREAD__", "MCP__"))}
    env |= {"APP_ENV": "development", "PYTHONPATH": str(REPO), "DEV_ISSUER__KEY_DIR": str(tmp_path / "dev")}
    env |= {"SERVERS__B__PATH": "/b/mcp", "SERVERS__B__TOOLS_DIR": str(B_TOOLS)}
    return subprocess.run(
        [sys.executable, "-m", "app.devissuer", "token", *args],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.mark.slow  # a subprocess or many generated examples: the whole suite (make test-all)
def test_the_token_command_mints_for_the_server_named(tmp_path: Path) -> None:
    b = _token_command(tmp_path, "--server", "b", "--scopes", "records.read")
    assert b.returncode == 0, b.stderr
    claims = _claims(b.stdout.strip())
    assert claims["aud"] == dev_client_id("b") and claims["scp"] == "records.read"
    first = _token_command(tmp_path)
    assert first.returncode == 0, first.stderr
    assert _claims(first.stdout.strip())["aud"] == two_servers(tmp_path).client_id  # the first server's app
    unknown = _token_command(tmp_path, "--server", "c")
    assert unknown.returncode == 2 and "no server 'c'" in unknown.stderr and "b" in unknown.stderr.splitlines()[-1]
    assert "Traceback" not in unknown.stderr


def test_make_token_passes_server_on() -> None:
    dry = subprocess.run(
        ["make", "-n", "-s", "token", "SERVER=b", "SCOPES=records.read"],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    line = next(line for line in dry.stdout.splitlines() if "secure-mcp-server token" in line)
    assert line.rstrip().endswith("--server b") and '--scopes "records.read"' in line
    plain = subprocess.run(["make", "-n", "-s", "token"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert "--server" not in plain.stdout
