"""Hypothesis against the running connect page: any path id, query, form, cookie and callback answer (wrong types,
lengths, duplicates, encodings), for unknown links and for a real one mid sign-in, gets a page, never a 5xx."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.connect import ConnectApp, browser_client, connect_link

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_TEXT = st.text(max_size=300) | st.sampled_from(["", "a" * 32, "callback", "%00", "../x", "\u202e", "x" * 9000])
_COOKIE_VALUE = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=';,"\\'),
                        max_size=80)  # fmt: skip
_COOKIE_NAME = st.sampled_from(["mcp_connect_csrf", "mcp_connect_browser", "other"])
_PAIRS = st.lists(st.tuples(st.sampled_from(["code", "state", "error", "csrf", "x", "session_state"]), _TEXT),
                  max_size=6)  # fmt: skip


@pytest.fixture
async def mid_sign_in(connect_app: ConnectApp) -> dict[str, Any]:
    """A real link, and a sign-in started from it: its state, and the browser cookie bound to it."""
    url = await connect_link(connect_app)
    async with browser_client(connect_app.cert) as browser:
        csrf = _CSRF.search((await browser.get(url)).text)
        assert csrf is not None
        started = await browser.post(url, data={"csrf": csrf.group(1)})
        state = dict(p.split("=", 1) for p in urlsplit(started.headers["location"]).query.split("&"))["state"]
        cookie = browser.cookies.get("mcp_connect_browser")
    return {"link": urlsplit(url).path.rsplit("/", 1)[-1], "state": state, "browser": cookie}


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    target=st.sampled_from(["show", "start", "callback"]),
    link=_TEXT,
    real_link=st.booleans(),
    pairs=_PAIRS,
    real_state=st.booleans(),
    cookies=st.dictionaries(_COOKIE_NAME, _COOKIE_VALUE, max_size=3),
    real_cookie=st.booleans(),
    body=st.sampled_from(["form", "json", "bytes", "none"]),
)
async def test_no_input_gets_a_server_error(
    connect_app: ConnectApp,
    mid_sign_in: dict[str, Any],
    target: str,
    link: str,
    real_link: bool,
    pairs: list[tuple[str, str]],
    real_state: bool,
    cookies: dict[str, str],
    real_cookie: bool,
    body: str,
) -> None:
    link = mid_sign_in["link"] if real_link else link
    if real_state:
        pairs = [("state", mid_sign_in["state"]), *pairs]
    if real_cookie and mid_sign_in["browser"]:
        cookies = {**cookies, "mcp_connect_browser": mid_sign_in["browser"]}
    async with httpx2.AsyncClient(base_url=connect_app.url, cookies=cookies, timeout=30) as http:
        if target == "callback":
            answer = await http.get("/connect/callback?" + urlencode(pairs))
        elif target == "show":
            answer = await http.get(f"/connect/{quote(link, safe='')}?" + urlencode(pairs))
        else:
            form: dict[str, Any] = {"content-type": "application/x-www-form-urlencoded"}
            options: dict[str, dict[str, Any]] = {
                "form": {"content": urlencode(pairs), "headers": form},
                "json": {"json": dict(pairs)},
                "bytes": {"content": bytes(range(256)) * 40, "headers": form},
                "none": {},
            }
            answer = await http.post(f"/connect/{quote(link, safe='')}", **options[body])
    assert answer.status_code < 500, (target, answer.status_code, answer.text[:300])
    if answer.status_code != 404 or answer.headers.get("content-type", "").startswith("text/html"):
        assert "Traceback" not in answer.text
