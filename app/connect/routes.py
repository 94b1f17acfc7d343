"""`/connect/{link}` and `/connect/callback`: the user opens the link an MCP client showed them, signs in to Entra as
this server's own app registration (incremental consent, or the claims Conditional Access asked for), and the
tokens go into the on-behalf-of cache only when the signed-in user is the one who was asked.

1. GET `/connect/{link}`: what is asked and why, and one button (a form post, CSRF-protected by a token both in the
   form and in a cookie set with the page).
2. POST `/connect/{link}`: to Entra's /authorize, through MSAL's auth code flow (PKCE, state, nonce) for the
   downstream scopes and any `claims`; the flow is kept server-side under its state, bound to this browser by a
   cookie (RFC 9700 section 4.7.1).
3. GET `/connect/callback`: only the browser that started may finish. MSAL redeems the code into a holding cache;
   the ID token's tenant and object id must be the asking principal's, else nothing is kept and the link stays
   usable by the right user. Done: the link is used up, and a waiting 2025-11-25 session is told.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route, request_response

from app.auth.downstream import DownstreamAuthError
from app.auth.oauth_errors import OAuthError, single_params
from app.authserver.pages import PAGE_HEADERS, form_page_headers
from app.authserver.protocol import fingerprint, read_form
from app.authserver.store import StateStoreError
from app.connect.links import CALLBACK_PATH, Links
from app.connect.pages import DONE, EXPIRED, OTHER_USER, render_outcome, render_start
from app.edge.limiter import RateCounter
from app.edge.ratelimit import ThrottleUnauthenticated

log = logging.getLogger("app.connect")
MAX_PARAM = 8192  # longer than any code or state Entra sends back
_NO_STORE = {"cache-control": "no-store", "referrer-policy": "no-referrer"}
_UNAVAILABLE = {"temporarily_unavailable", "server_credential", "no_client_credential"}


class Refused(Exception):
    def __init__(self, status: int, title: str, text: str) -> None:
        super().__init__(title)
        self.status, self.title, self.text = status, title, text


class ConnectPages:
    def __init__(self, links: Links) -> None:
        self.links = links
        secure = links.base.startswith("https://")
        self.secure = secure
        self.csrf_cookie = ("__Host-" if secure else "") + "mcp_connect_csrf"
        self.browser_cookie = ("__Host-" if secure else "") + "mcp_connect_browser"

    async def show(self, request: Request) -> Response:
        link_id = str(request.path_params["link"])
        record, served = await self._pending(link_id)
        csrf = secrets.token_urlsafe(24)
        html = render_start(served.name, list(record["scopes"]), record["reason"], csrf, f"/connect/{link_id}")
        response = HTMLResponse(html, headers=form_page_headers(served.authority))
        self._cookie(response, self.csrf_cookie, csrf)
        return response

    async def start(self, request: Request) -> Response:
        link_id = str(request.path_params["link"])
        form = await read_form(request, max_fields=5)
        csrf, cookie = form.get("csrf", ""), request.cookies.get(self.csrf_cookie, "")
        if not csrf or not cookie or not secrets.compare_digest(csrf.encode(), cookie.encode()):
            raise Refused(
                403, "Refused", "This form is not from this browser (CSRF check failed): open the link again."
            )
        record, served = await self._pending(link_id)
        scopes, claims = list(record["scopes"]), record.get("claims")
        flow = await anyio.to_thread.run_sync(
            served.obo.begin_consent, record["tenant"], scopes, claims, self.links.callback
        )
        browser = self._browser(request) or secrets.token_urlsafe(24)
        await self.links.start(flow["state"], {"flow": flow, "link": link_id, "browser": fingerprint(browser)})
        self.links.record("connect", "started", record)
        response = RedirectResponse(flow["auth_uri"], 303, _NO_STORE)
        self._cookie(response, self.browser_cookie, browser)
        return response

    async def callback(self, request: Request) -> Response:
        params = single_params(request.query_params.multi_items())
        if any(len(value) > MAX_PARAM for value in params.values()) or len(params) > 20:
            raise Refused(400, "Not a sign-in answer", "This address does not carry a sign-in answer from Microsoft.")
        state = params.get("state", "")
        started = await self.links.started(state)
        if started is None:
            raise Refused(400, *EXPIRED)
        if not secrets.compare_digest(str(started.get("browser", "")), fingerprint(self._browser(request))):
            # Another browser started this sign-in: refused, and left as it was for the one that did.
            raise Refused(403, "Refused", "This sign-in was started in another browser: open the link there.")
        started = await self.links.finish(state)
        record = await self.links.get(str(started["link"])) if started is not None else None
        served = self.links.servers.get(str(record["server"])) if record is not None else None
        if started is None or record is None or served is None:
            raise Refused(400, *EXPIRED)
        if "error" in params or "code" not in params:
            error = params.get("error", "no_code")
            reason = error[:40] if error.replace("_", "").isalnum() else "invalid_error"
            self.links.record("connect", "cancelled", record, reason=reason)
            raise Refused(400, "Sign-in not completed", f"Microsoft answered {reason}. Open the link again to retry.")
        outcome = await anyio.to_thread.run_sync(
            served.obo.finish_consent, record["tenant"], record["user"], started["flow"], params
        )
        if outcome == "other_user":
            self.links.record("connect", "refused", record, reason="other_user")
            raise Refused(403, *OTHER_USER)
        if outcome != "stored":  # the code was refused (a bad or replayed answer), or Entra is out of reach
            self.links.record("connect", "refused", record, reason=outcome)
            status = 503 if outcome in _UNAVAILABLE else 400
            raise Refused(status, "Sign-in not completed", f"The sign-in did not complete ({outcome}). Open the link "
                          "again from your MCP client to retry.")  # fmt: skip
        await self.links.complete(str(started["link"]), record)
        self.links.record("connect", "stored", record)
        return HTMLResponse(render_outcome(*DONE), headers=PAGE_HEADERS)

    async def _pending(self, link_id: str) -> tuple[dict[str, Any], Any]:
        record = await self.links.get(link_id)
        served = self.links.servers.get(str(record["server"])) if record is not None else None
        if record is None or served is None:
            raise Refused(404, *EXPIRED)
        return record, served

    def _browser(self, request: Request) -> str:
        value = request.cookies.get(self.browser_cookie, "")
        return value if len(value) == 32 and value.replace("-", "").replace("_", "").isalnum() else ""

    def _cookie(self, response: Response, name: str, value: str) -> None:
        response.set_cookie(
            name, value, max_age=self.links.pending_seconds, path="/", secure=self.secure, httponly=True,
            samesite="lax",
        )  # fmt: skip


def answering(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """Every outcome as a page with the right status; never a traceback."""

    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except Refused as exc:
            status, title, text = exc.status, exc.title, exc.text
        except OAuthError as exc:
            status, title, text = exc.status, "Not a valid request", exc.description
        except (StateStoreError, OSError):  # Redis unreachable or full: a clear 503
            log.warning("connect state unavailable")
            status, title, text = 503, "Unavailable", "This server cannot keep your sign-in right now: try again soon."
        except DownstreamAuthError:  # no credential to sign users in with
            log.warning("connect sign-in not possible: no client credential")
            status, title, text = 503, "Unavailable", "This server cannot sign you in: it is not configured for it."
        return HTMLResponse(render_outcome(title, text), status_code=status, headers=PAGE_HEADERS)

    return endpoint


def connect_routes(links: Links, limiter: RateCounter, rate: str) -> list[BaseRoute]:
    """The routes, each within the per-IP budget for unauthenticated traffic (`rate`)."""
    pages = ConnectPages(links)

    def limited(path: str, handler: Callable[[Request], Awaitable[Response]], method: str) -> Route:
        app = ThrottleUnauthenticated(request_response(answering(handler)), limiter, rate)
        return Route(path, app, methods=[method])

    return [
        limited(CALLBACK_PATH, pages.callback, "GET"),
        limited("/connect/{link}", pages.show, "GET"),
        limited("/connect/{link}", pages.start, "POST"),
    ]
