"""The connect page under test: an app with CONNECT__ENABLED against the Entra stand-in (which wants consent for the
profile tool's downstream scope), and two ways through the page: headless Chromium, and a plain HTTP "browser"."""

from __future__ import annotations

import json
import re
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp.shared.exceptions import MCPError, UrlElicitationRequiredError
from mcp_types import ElicitResult

from app.settings import Settings
from tests.support.calls import mcp_client
from tests.support.entra import EntraStandIn
from tests.support.servers import ServerThread
from tests.support.values import CLIENT_ID, CLIENT_SECRET, REPO, TENANT, settings_for

DOWNSTREAM = "https://graph.microsoft.com/User.Read"  # tools/profile.py's default scope
ALICE = "aaaaaaaa-0000-4000-8000-000000000001"  # the stand-in's default signed-in user
BOB = "aaaaaaaa-0000-4000-8000-0000000000b0"
CLAIMS = '{"access_token":{"polids":{"essential":true,"values":["9ab03e19-ed42-4168-b6b7-7001fb3e933a"]}}}'
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def connect_settings(entra: EntraStandIn, port: int, **overrides: Any) -> Settings:
    """Production settings with the connect page on, the profile tool, and a client secret for on-behalf-of."""
    sections: dict[str, Any] = {"azuread": {"client_secret": CLIENT_SECRET}, "tools": {"dir": REPO / "tools"},
                                "connect": {"enabled": True}}  # fmt: skip
    for section, value in overrides.items():
        sections[section] = {**sections.get(section, {}), **value}
    return settings_for(entra, port, **sections)


@dataclass
class ConnectApp:
    """The app with the connect page on (tests/connect/conftest.py serves it), and the stand-ins around it."""

    entra: EntraStandIn
    cert: Path
    url: str
    api_seen: list[dict[str, str]]
    server: ServerThread
    audit: Path  # the audit log (AUDIT__SINK=file:...)

    def connect_events(self) -> list[tuple[str, str | None]]:
        """The connect page's audit records so far: (outcome, reason)."""
        records = [json.loads(line) for line in self.audit.read_text().splitlines() if line.strip()]
        return [(r["outcome"], r.get("reason")) for r in records if r["event"] == "connect"]

    def token(self, oid: str | None = None) -> str:
        """A user's token for the profile tool (the stand-in's default user unless `oid`)."""
        return self.entra.token(tenant=TENANT, audience=CLIENT_ID, scopes="profile.read", oid=oid or ALICE)

    def exchanges(self) -> int:
        """On-behalf-of exchanges the stand-in was asked for so far."""
        return sum(1 for r in self.entra.token_requests if r.get("requested_token_use") == "on_behalf_of")


def browser_client(cert: Path) -> httpx2.AsyncClient:
    """A plain HTTP "browser" (it keeps cookies) that trusts the stand-in's certificate."""
    return httpx2.AsyncClient(verify=ssl.create_default_context(cafile=str(cert)), timeout=30)


async def connect_link(app: ConnectApp) -> str:
    """A connect link, as a 2025-11-25 client is given it."""

    async def never(context: Any, params: Any) -> ElicitResult:
        raise AssertionError("not asked")

    async with mcp_client(app.url, app.token(), elicitation_callback=never) as client:
        with pytest.raises(MCPError) as refused:
            await client.call_tool("my_profile", {})
    return UrlElicitationRequiredError.from_error(refused.value.error).elicitations[0].url


@dataclass
class Visit:
    """What a plain-HTTP browser saw going through a connect link."""

    start: httpx2.Response  # the page at the link
    final: httpx2.Response  # the page the callback answered with
    authorize: str = ""  # the Entra authorize URL it was sent to


async def through_link(url: str, cert: Path, http: httpx2.AsyncClient | None = None) -> Visit:
    """Open `url`, press the button, let the (non-interactive) stand-in sign in, and follow back to the callback."""
    owned = http is None
    http = http or browser_client(cert)
    try:
        start = await http.get(url)
        found = _CSRF.search(start.text)
        assert start.status_code == 200 and found, start.text
        sent = await http.post(url, data={"csrf": found.group(1)})
        assert sent.status_code == 303, sent.text
        authorize = sent.headers["location"]
        at_entra = await http.get(authorize)
        assert at_entra.status_code == 302, at_entra.text
        final = await http.get(at_entra.headers["location"])
        return Visit(start, final, authorize)
    finally:
        if owned:
            await http.aclose()


async def in_chromium(context: Any, url: str) -> str:
    """Open `url` in the browser, continue to sign in, consent at the stand-in's page; the callback page's text."""
    page = await context.new_page()
    try:
        await page.goto(url)
        await page.get_by_role("button", name="Continue to sign in").click()
        async with page.expect_navigation(url="**/connect/callback?**"):
            await page.get_by_role("button", name="Consent").click()
        return str(await page.inner_text("body"))
    finally:
        await page.close()
