"""Drive the authorization-server facade over plain HTTP (no browser): register, consent, the dev issuer's sign-in,
the callback, and the token endpoint. The browser's cookie jar is the httpx client's."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx2
from mcp.client.auth import OAuthClientProvider
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientMetadata
from pydantic import AnyUrl

from tests.support.dev_oauth import FormFields, pkce
from tests.support.oauth import Callback, MemoryStorage


class ConsentForm(HTMLParser):
    """The consent page's hidden inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if tag == "input" and found.get("type") == "hidden":
            self.fields[found.get("name", "")] = found.get("value", "")


def query(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


@dataclass
class Flow:
    """One client at the facade at `base`; `http` plays the browser (its cookies), `redirect_uri` nobody listens on."""

    http: httpx2.AsyncClient
    base: str
    redirect_uri: str = "http://127.0.0.1:49153/callback"
    client_id: str = ""
    verifier: str = ""
    challenge: str = ""
    visited: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.verifier, self.challenge = pkce()

    @classmethod
    async def registered(cls, http: httpx2.AsyncClient, base: str) -> Flow:
        """A client registered through DCR, ready to authorize."""
        flow = cls(http, base)
        answer = await flow.register()
        assert answer.status_code == 201, answer.text
        return flow

    async def register(self, **metadata: object) -> httpx2.Response:
        body = {"redirect_uris": [self.redirect_uri], "token_endpoint_auth_method": "none", "client_name": "Flow"}
        response = await self.http.post(f"{self.base}/oauth/register", json=body | metadata)
        if response.status_code == 201:
            self.client_id = response.json()["client_id"]
        return response

    def params(self, **overrides: str | None) -> dict[str, str]:
        values: dict[str, str | None] = {
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "response_type": "code",
            "state": "client-state",
            "code_challenge": self.challenge,
            "code_challenge_method": "S256",
        }
        return {k: v for k, v in (values | overrides).items() if v is not None}

    async def authorize(self, **overrides: str | None) -> httpx2.Response:
        return await self.http.get(f"{self.base}/oauth/authorize", params=self.params(**overrides))

    async def decide(self, page: httpx2.Response, decision: str = "approve", **form: str) -> httpx2.Response:
        found = ConsentForm()
        found.feed(page.text)
        data = found.fields | {"decision": decision} | form
        headers = {"content-type": "application/x-www-form-urlencoded", "origin": self.base}
        return await self.http.post(f"{self.base}/oauth/consent", content=urlencode(data), headers=headers)

    async def sign_in_upstream(self, upstream: httpx2.Response, user: str | None = None) -> httpx2.Response:
        """The dev issuer's page, submitted with its pre-selected choices (or as test user `user`, an oid); returns the
        facade callback's answer."""
        return await self.http.get(await self.upstream_callback(upstream, user))

    async def upstream_callback(self, upstream: httpx2.Response, user: str | None = None) -> str:
        """Sign in at the upstream (the dev issuer's page, or an Entra stand-in that answers at once); the URL of the
        facade's callback the upstream sends the browser to, not yet opened."""
        location = upstream.headers["location"]
        self.visited.append(location)
        page = await self.http.get(location)
        if page.status_code == 302:  # an Entra stand-in: signed in at once, no page
            return str(page.headers["location"])
        fields = FormFields()
        fields.feed(page.text)
        parts = urlsplit(location)
        origin = f"{parts.scheme}://{parts.netloc}"
        chosen = [(k, v) for k, v in fields.checked if k != "user" or user is None] + ([("user", user)] if user else [])
        form = urlencode([*fields.hidden, *chosen])
        headers = {"origin": origin, "content-type": "application/x-www-form-urlencoded"}
        signed_in = await self.http.post(location.split("?")[0], content=form, headers=headers)
        assert signed_in.status_code == 303, signed_in.text
        return str(signed_in.headers["location"])

    async def code(self) -> dict[str, str]:
        """A whole authorization: consent approved, signed in; the client's authorization response."""
        page = await self.authorize()
        assert page.status_code in (200, 303), page.text  # 303: consent remembered for this browser's user
        answer = await self.sign_in_upstream(await self.decide(page) if page.status_code == 200 else page)
        assert answer.status_code == 303, answer.text
        return query(answer.headers["location"])

    async def token(self, **form: str) -> httpx2.Response:
        return await self.http.post(f"{self.base}/oauth/token", data=form)

    async def redeem(self, code: str, **overrides: str) -> httpx2.Response:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "code_verifier": self.verifier,
        }
        return await self.token(**(form | overrides))


class BrowserClient:
    """The SDK's `OAuthClientProvider` for `resource` whose browser step is headless Chromium: Approve on the
    facade's consent page, then Sign in on the dev issuer's page. Counts the sign-ins and keeps what each page said."""

    def __init__(
        self,
        resource: str,
        callback: Callback,
        browser: Any,
        client_metadata_url: str | None = None,
        client_name: str = "Facade Test Client",
    ) -> None:
        self.callback, self.browser, self.sign_ins = callback, browser, 0
        metadata = OAuthClientMetadata(
            redirect_uris=[AnyUrl(callback.uri)], token_endpoint_auth_method="none", client_name=client_name
        )
        self.storage = MemoryStorage(None)  # type: ignore[arg-type]  # no client yet: the SDK registers one (DCR)
        self.provider = OAuthClientProvider(
            resource, metadata, self.storage, self._redirect, self._callback, client_metadata_url
        )
        self.authorize_url = self.consent_text = self.sign_in_text = ""

    async def _redirect(self, url: str) -> None:
        self.sign_ins += 1
        self.authorize_url = url
        page = await self.browser.new_page()
        await page.goto(url)
        self.consent_text = await page.inner_text("body")
        await page.get_by_role("button", name="Approve").click()
        await page.get_by_role("button", name="Sign in").wait_for()
        self.sign_in_text = await page.inner_text("body")
        async with page.expect_navigation(url=f"{self.callback.uri}?**"):
            await page.get_by_role("button", name="Sign in").click()
        await page.close()

    async def _callback(self) -> AuthorizationCodeResult:
        answer = await self.callback.wait()
        assert "code" in answer, answer
        return AuthorizationCodeResult(code=answer["code"], state=answer.get("state"), iss=answer.get("iss"))
