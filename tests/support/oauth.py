"""Real OAuth clients against the dev issuer: a loopback redirect receiver, headless Chromium (Debian's `chromium`)
driven by Playwright, and the Python SDK's `OAuthClientProvider` with in-memory storage.

Playwright cannot download its own browsers here, so it drives the system Chromium (`CHROMIUM`, else `chromium` on
PATH). Without one the tests that need it are skipped, saying why; under CI (`CI` set) that is a failure instead.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from mcp.client.auth import OAuthClientProvider
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from pydantic import AnyUrl
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from tests.support.servers import ServerThread

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


# Node 22 and the TypeScript SDK from npm, where .ci/run installs them (MCP_TS_SDK / MCP_NODE say otherwise).
NODE_DIR = Path(__file__).resolve().parents[2] / ".ci" / ".node" / "node_modules"
TS_SDK = os.environ.get("MCP_TS_SDK") or str(NODE_DIR / "@modelcontextprotocol" / "sdk")
NODE = os.environ.get("MCP_NODE") or str(NODE_DIR / ".bin" / "node")
TS_CLIENT = Path(__file__).resolve().parent / "ts_oauth_client.mjs"


def missing_ts_sdk() -> str | None:
    """Why the TypeScript SDK client cannot run (None when it can); under CI a reason is a failure."""
    if os.path.isfile(os.path.join(TS_SDK, "package.json")) and os.access(NODE, os.X_OK):
        return None
    reason = (
        f"Node 22 and @modelcontextprotocol/sdk are not installed at {NODE} and {TS_SDK}: `bash .ci/run` installs them"
    )
    if os.environ.get("CI"):
        pytest.fail(reason, pytrace=False)
    return reason


@dataclass
class TsClientRun:
    """One run of the TypeScript SDK's OAuth client: the authorization URL it printed, then what it reported."""

    authorize: str
    process: asyncio.subprocess.Process
    out: str = ""
    err: str = ""

    def result(self) -> dict[str, Any]:
        """The JSON line the client prints last (its tools and whoami)."""
        assert self.process.returncode == 0, self.err
        return json.loads(self.out.strip().splitlines()[-1])  # type: ignore[no-any-return]


@asynccontextmanager
async def ts_oauth_client(resource: str, client_id: str) -> AsyncIterator[TsClientRun]:
    """Runs tests/support/ts_oauth_client.mjs for `resource` (`client_id` "register": DCR). Yields once it printed
    the authorization URL (the browser step is the caller's), then waits for it to finish; killed on failure."""
    process = await asyncio.create_subprocess_exec(
        NODE,
        str(TS_CLIENT),
        resource,
        client_id,
        env={**os.environ, "MCP_TS_SDK": TS_SDK},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 60)
        assert line, (await process.communicate())[1].decode()
        run = TsClientRun(json.loads(line)["authorize"], process)
        yield run
        out, err = await asyncio.wait_for(process.communicate(), 60)
        run.out, run.err = out.decode(), err.decode()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def require_chromium() -> None:
    """Skip (fail under CI) unless Playwright and a system Chromium are both there."""
    missing = []
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        missing.append("the playwright package (`uv sync` installs the dev group)")
    if not os.access(CHROMIUM, os.X_OK):
        missing.append(f"Chromium at {CHROMIUM} (`apt-get install chromium`; .ci/test-packages installs it)")
    if not missing:
        return
    if os.environ.get("CI"):
        pytest.fail(f"missing: {'; '.join(missing)}", pytrace=False)
    pytest.skip(f"missing: {'; '.join(missing)}", allow_module_level=True)


class Callback:
    """A loopback redirect URI (RFC 8252) on a free port: records each authorization response it receives."""

    def __init__(self) -> None:
        self.responses: queue.Queue[dict[str, str]] = queue.Queue()
        self.seen: list[dict[str, str]] = []  # every response, kept (e.g. to look for codes in logs)

        async def callback(request: Request) -> HTMLResponse:
            self.seen.append(dict(request.query_params))
            self.responses.put(dict(request.query_params))
            return HTMLResponse("<!doctype html><title>Signed in</title><p>Signed in; you can close this window.</p>")

        self.server = ServerThread(Starlette(routes=[Route("/callback", callback)]))
        self.uri = f"{self.server.url}/callback"

    async def wait(self, timeout: float = 60) -> dict[str, str]:
        return await asyncio.to_thread(self.responses.get, True, timeout)

    def __enter__(self) -> Callback:
        self.server.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.stop()


@asynccontextmanager
async def chromium(ignore_https_errors: bool = False) -> AsyncIterator[Any]:
    """A headless Chromium with a fresh profile, as a Playwright browser context; `ignore_https_errors` for stand-ins
    serving a throwaway certificate (the Entra stand-in MSAL needs on https)."""
    from playwright.async_api import async_playwright

    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        async with async_playwright() as playwright:
            context = await playwright.chromium.launch_persistent_context(
                profile,
                executable_path=CHROMIUM,
                args=CHROMIUM_ARGS,
                headless=True,
                ignore_https_errors=ignore_https_errors,
            )
            try:
                yield context
            finally:
                await context.close()


async def sign_in(
    context: Any,
    url: str,
    *,
    user: str | None = None,
    uncheck: Iterable[str] = (),
    check: Iterable[str] = (),
    screenshot: Path | None = None,
) -> Any:
    """Open the sign-in page at `url`, adjust the choices, submit once; returns the page after the redirect."""
    page = await context.new_page()
    await page.goto(url)
    if screenshot is not None:
        await page.screenshot(path=str(screenshot), full_page=True)
    if user is not None:
        await page.get_by_label(user).check()
    for name in uncheck:
        await page.locator(f'input[name="grant_scope"][value="{name}"]').uncheck()
    for name in check:
        await page.locator(f'input[value="{name}"]').check()
    async with page.expect_navigation(url="**/callback?**"):
        await page.get_by_role("button", name="Sign in").click()
    return page


@dataclass
class MemoryStorage:
    """The SDK's TokenStorage, in memory: the pre-registered client, and every token response it was given."""

    client: OAuthClientInformationFull
    issued: list[OAuthToken] = field(default_factory=list)

    async def get_tokens(self) -> OAuthToken | None:
        return self.issued[-1] if self.issued else None

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.issued.append(tokens)

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


def pre_registered_provider(
    server_url: str,
    client_id: str,
    redirect_uri: str,
    open_sign_in: Callable[[str], Awaitable[None]],
    wait_for_code: Callable[[], Awaitable[AuthorizationCodeResult]],
) -> tuple[OAuthClientProvider, MemoryStorage]:
    """`OAuthClientProvider` for a public client registered ahead of time (Entra has no dynamic registration): the
    storage already holds the client, so the SDK never tries to register one."""
    redirect = [AnyUrl(redirect_uri)]
    registered = OAuthClientInformationFull(
        client_id=client_id, redirect_uris=redirect, token_endpoint_auth_method="none"
    )
    storage = MemoryStorage(registered)
    metadata = OAuthClientMetadata(redirect_uris=redirect, token_endpoint_auth_method="none", client_name="my-client")
    provider = OAuthClientProvider(
        server_url, metadata, storage, redirect_handler=open_sign_in, callback_handler=wait_for_code
    )
    return provider, storage


@dataclass
class PythonClient:
    """`OAuthClientProvider` for a pre-registered public client, signing in through Chromium."""

    server_url: str
    client_id: str
    callback: Callback
    browser: Any
    sign_ins: list[str] = field(default_factory=list)  # the authorization URLs the browser was sent to
    choices: dict[str, Any] = field(default_factory=dict)  # passed on to sign_in()

    def provider(self) -> tuple[OAuthClientProvider, MemoryStorage]:
        return pre_registered_provider(
            self.server_url, self.client_id, self.callback.uri, self._redirect, self._callback
        )

    async def _redirect(self, url: str) -> None:
        self.sign_ins.append(url)
        page = await sign_in(self.browser, url, **self.choices)
        await page.close()

    async def _callback(self) -> AuthorizationCodeResult:
        answer = await self.callback.wait()
        assert "code" in answer, answer
        return AuthorizationCodeResult(code=answer["code"], state=answer.get("state"), iss=answer.get("iss"))
