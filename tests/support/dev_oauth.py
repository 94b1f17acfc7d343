"""Drive the dev issuer's sign-in over plain HTTP (no browser): authorization requests, the form, the token endpoint."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx2

from app.settings import Settings


class FormFields(HTMLParser):
    """The sign-in form's inputs: hidden ones as they are, and which checkboxes and radios are pre-selected."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden: list[tuple[str, str]] = []
        self.checked: list[tuple[str, str]] = []
        self.options: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if tag != "input":
            return
        pair = (found.get("name", ""), found.get("value", ""))
        if found.get("type") == "hidden":
            self.hidden.append(pair)
        else:
            self.options.append(pair)
            if "checked" in found:
                self.checked.append(pair)


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


@dataclass
class DevOAuth:
    """One dev issuer (at `base`) for `settings`, and a loopback redirect URI nobody needs to listen on."""

    settings: Settings
    base: str
    redirect_uri: str = "http://127.0.0.1:49152/callback"
    verifier: str = ""
    challenge: str = ""
    http: httpx2.AsyncClient = field(default_factory=lambda: httpx2.AsyncClient(timeout=10))

    def __post_init__(self) -> None:
        self.verifier, self.challenge = pkce()

    @property
    def authorize_url(self) -> str:
        return f"{self.base}/{self.settings.tenant_id}/oauth2/v2.0/authorize"

    @property
    def token_url(self) -> str:
        return f"{self.base}/{self.settings.tenant_id}/oauth2/v2.0/token"

    def scope(self, *names: str, offline: bool = True) -> str:
        return " ".join([*(self.settings.scope_uri(n) for n in names), *(["offline_access"] if offline else [])])

    def params(self, **overrides: str | None) -> dict[str, str]:
        values: dict[str, str | None] = {
            "client_id": self.settings.dev_issuer.client_id,
            "redirect_uri": self.redirect_uri,
            "response_type": "code",
            "scope": self.scope("mcp.read", "notes.read"),
            "state": "state-123",
            "code_challenge": self.challenge,
            "code_challenge_method": "S256",
            "resource": self.settings.resource,
        }
        values |= overrides
        return {k: v for k, v in values.items() if v is not None}

    async def page(self, **overrides: str | None) -> tuple[httpx2.Response, FormFields]:
        response = await self.http.get(self.authorize_url, params=self.params(**overrides))
        fields = FormFields()
        fields.feed(response.text)
        return response, fields

    async def submit(
        self,
        fields: FormFields,
        *,
        extra: list[tuple[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx2.Response:
        """Post the form back with its pre-selected choices (and `extra`), as the browser would; `headers` override."""
        origin = f"{urlsplit(self.base).scheme}://{urlsplit(self.base).netloc}"
        form = [*fields.hidden, *fields.checked, *(extra or [])]
        sent = {"origin": origin, "content-type": "application/x-www-form-urlencoded", **(headers or {})}
        return await self.http.post(self.authorize_url, content=urlencode(form), headers=sent, follow_redirects=False)

    async def code(self, **overrides: str | None) -> str:
        """A complete sign-in (pre-selected choices): the code from the redirect."""
        response, fields = await self.page(**overrides)
        assert response.status_code == 200, response.text
        answer = await self.submit(fields)
        assert answer.status_code == 303, answer.text
        return redirect_query(answer)["code"]

    async def token(self, **form: str | None) -> httpx2.Response:
        data = {k: v for k, v in form.items() if v is not None}
        return await self.http.post(self.token_url, data=data)

    async def exchange(self, code: str, **overrides: str | None) -> httpx2.Response:
        form: dict[str, str | None] = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "client_id": self.settings.dev_issuer.client_id,
            "code_verifier": self.verifier,
            "resource": self.settings.resource,
        }
        return await self.token(**(form | overrides))

    async def refresh(self, refresh_token: str, **overrides: str | None) -> httpx2.Response:
        form: dict[str, str | None] = {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": self.settings.dev_issuer.client_id,
            "resource": self.settings.resource,
        }
        return await self.token(**(form | overrides))


def redirect_query(response: httpx2.Response) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(response.headers["location"]).query).items()}


def error_of(response: httpx2.Response) -> tuple[int, str, str]:
    body: dict[str, Any] = response.json()
    return response.status_code, body["error"], body["error_description"]
