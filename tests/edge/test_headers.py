"""The network edge in one process: settings, Host / Origin allow-lists, forwarded headers, headers, readiness."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from typing import Any

import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from app.edge.headers import ForwardedHeaders, HostOriginGuard, SecurityHeaders
from app.observability.readiness import Readiness, drain_on_sigterm
from app.settings import Settings
from tests.support.calls import modern_call
from tests.support.entra import EntraStandIn
from tests.support.keyvault import KeyVaultStandIn, TlsFiles, vault_section
from tests.support.servers import ServerThread, app_state
from tests.support.values import settings_for

PRM = "/.well-known/oauth-protected-resource/mcp"
ALIAS = "alias.example.test"


def production(**sections: Any) -> Settings:
    return settings_for(EntraStandIn(base="https://login.microsoftonline.com/"), 443, **sections)


# ---- settings -------------------------------------------------------------------------------------------------


def test_allowed_hosts_and_origins_derive_from_the_resource_host() -> None:
    public = production(mcp={"resource_host": "https://MCP.contoso.com"})
    assert public.allowed_hosts == ["mcp.contoso.com", "mcp.contoso.com:443"]
    assert public.allowed_origins == ["https://mcp.contoso.com"]
    dev = production(app_env="development", mcp={"resource_host": "http://127.0.0.1:8000"})
    assert dev.allowed_hosts == ["127.0.0.1:8000", "127.0.0.1:*", "localhost:*", "[::1]:*"]
    assert "http://localhost:*" in dev.allowed_origins
    explicit = production(security={"allowed_hosts": "MCP.contoso.com, internal.contoso.com:*"})
    assert explicit.allowed_hosts == ["mcp.contoso.com", "internal.contoso.com:*"]  # replaces the default


def test_trusted_proxies_parse_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECURITY__TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.5 fd00::/8")
    monkeypatch.setenv("APP_ENV", "development")
    assert Settings(_env_file=None).security.trusted_proxies == ["10.0.0.0/8", "192.168.1.5/32", "fd00::/8"]
    monkeypatch.delenv("SECURITY__TRUSTED_PROXIES")
    assert Settings(_env_file=None).security.trusted_proxies == []  # trust none


def test_empty_allow_lists_mean_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """`.env.example` ships them empty: that must not turn into "refuse every Host"."""
    monkeypatch.setenv("APP_ENV", "development")
    monkeypatch.setenv("SECURITY__ALLOWED_HOSTS", "")
    monkeypatch.setenv("SECURITY__ALLOWED_ORIGINS", "")
    loaded = Settings(_env_file=None)
    assert loaded.allowed_hosts[0] == "127.0.0.1:8000"
    assert loaded.allowed_origins[0] == "http://127.0.0.1:8000"


@pytest.mark.parametrize(
    ("section", "value", "message"),
    [
        ("trusted_proxies", "*", "SECURITY__TRUSTED_PROXIES"),
        ("trusted_proxies", "10.0.0.1/8", "host bits zero"),
        ("trusted_proxies", "proxy.internal", "SECURITY__TRUSTED_PROXIES"),
        ("allowed_hosts", "https://mcp.contoso.com", "SECURITY__ALLOWED_HOSTS"),
        ("allowed_hosts", "*", "SECURITY__ALLOWED_HOSTS"),
        ("allowed_origins", "mcp.contoso.com", "SECURITY__ALLOWED_ORIGINS"),
        ("allowed_origins", "https://mcp.contoso.com/path", "SECURITY__ALLOWED_ORIGINS"),
    ],
)
def test_bad_edge_settings_are_refused(section: str, value: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        production(security={section: value})


def test_short_request_state_keys_are_refused() -> None:
    with pytest.raises(ValidationError, match="MCP__REQUEST_STATE_KEYS"):
        production(mcp={"request_state_keys": "too-short"})


# ---- over real uvicorn ----------------------------------------------------------------------------------------


@pytest.fixture
def aliased(serve: Callable[..., ServerThread]) -> ServerThread:
    """Public host = its own loopback URL, plus an alias; 127.0.0.1 is a trusted proxy."""
    probe = serve()
    public = probe.settings.resource_host.split("://", 1)[1]  # type: ignore[attr-defined]
    return serve(security={"allowed_hosts": [public, ALIAS], "trusted_proxies": ["127.0.0.1"]})


async def test_prm_urls_ignore_spoofed_host_and_forwarded_host(aliased: ServerThread) -> None:
    resource = aliased.settings.resource  # type: ignore[attr-defined]
    metadata_url = aliased.settings.resource_metadata_url  # type: ignore[attr-defined]
    async with httpx2.AsyncClient(base_url=aliased.url) as http:
        for headers in ({"Host": ALIAS}, {"X-Forwarded-Host": ALIAS, "X-Forwarded-Proto": "https"}):
            doc = await http.get(PRM, headers=headers)
            challenge = await http.post("/mcp", headers=headers, json={})
            assert doc.json()["resource"] == resource
            assert f'resource_metadata="{metadata_url}"' in challenge.headers["www-authenticate"]


async def test_sdk_transport_security_accepts_what_the_allow_list_accepts(
    aliased: ServerThread, token: Callable[..., str]
) -> None:
    """The SDK's own Host check is configured from the same list: an allowed alias reaches the tool."""
    headers, body = modern_call("probe_read")
    headers["Authorization"] = f"Bearer {token()}"
    async with httpx2.AsyncClient(base_url=aliased.url) as http:
        via_alias = await http.post("/mcp", headers={**headers, "Host": ALIAS}, json=body)
        via_proxy = await http.post("/mcp", headers={**headers, "X-Forwarded-Host": ALIAS}, json=body)
        shouting = await http.post("/mcp", headers={**headers, "Host": ALIAS.upper()}, json=body)
    assert (via_alias.status_code, via_proxy.status_code, shouting.status_code) == (200, 200, 200)
    assert via_alias.json()["result"]["content"][0]["text"] == "read ok"


async def test_unknown_host_gets_421_on_every_route_but_probes(app_server: ServerThread) -> None:
    bad = {"Host": "evil.example"}
    async with httpx2.AsyncClient(base_url=app_server.url) as http:
        refused = [
            await http.post("/mcp", headers=bad, json={}),
            await http.get(PRM, headers=bad),
            await http.get("/no-such-route", headers=bad),
            await http.get(PRM, headers={"Host": ""}),
        ]
        probes = [await http.get("/healthz", headers=bad), await http.get("/readyz", headers=bad)]
    assert [r.status_code for r in refused] == [421, 421, 421, 421]
    assert all(r.json()["error"] == "misdirected_request" for r in refused)
    assert [r.status_code for r in probes] == [200, 200]  # orchestrators probe by pod IP
    twice = await _raw(app_server.port, f"GET {PRM} HTTP/1.1\r\nHost: 127.0.0.1:{app_server.port}\r\nHost: a\r\n\r\n")
    assert twice.startswith(b"HTTP/1.1 400"), twice[:40]
    assert all(r.headers["x-content-type-options"] == "nosniff" for r in refused + probes)


async def _raw(port: int, request: str) -> bytes:
    """One hand-written HTTP/1.1 request (clients won't send two Host headers)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request.encode())
    await writer.drain()
    answer = await reader.read(65536)
    writer.close()
    return answer


async def test_present_but_disallowed_origin_gets_403(app_server: ServerThread, token: Callable[..., str]) -> None:
    headers, body = modern_call("probe_read")
    headers["Authorization"] = f"Bearer {token()}"
    async with httpx2.AsyncClient(base_url=app_server.url) as http:
        statuses = {
            origin: (await http.post("/mcp", headers={**headers, "Origin": origin}, json=body)).status_code
            for origin in ("https://evil.example", "null", f"{app_server.url}.evil.example", app_server.url)
        }
        prm = await http.get(PRM, headers={"Origin": "https://evil.example"})
    assert statuses == {
        "https://evil.example": 403,
        "null": 403,
        f"{app_server.url}.evil.example": 403,
        app_server.url: 200,
    }
    assert prm.status_code == 403


async def test_response_headers(app_server: ServerThread, token: Callable[..., str]) -> None:
    headers, body = modern_call("probe_read")
    headers["Accept"] = "text/event-stream, application/json"
    async with httpx2.AsyncClient(base_url=app_server.url) as http:
        unauthenticated = await http.post("/mcp", json={})
        answer = await http.post("/mcp", headers={**headers, "Authorization": f"Bearer {token()}"}, json=body)
        health = await http.get("/healthz")
    assert answer.status_code == 200
    for response in (unauthenticated, answer, health):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "no-store" in response.headers["cache-control"]
    assert len(answer.headers.get_list("cache-control")) == 1  # the SDK's `no-cache` was replaced, not kept


async def test_sse_responses_get_no_store_and_no_proxy_buffering() -> None:
    async def sdk_like(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache, no-transform")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await SecurityHeaders(sdk_like)({"type": "http"}, None, send)  # type: ignore[arg-type]
    assert dict(sent[0]["headers"]) == {
        b"content-type": b"text/event-stream",
        b"cache-control": b"no-store, no-transform",
        b"x-content-type-options": b"nosniff",
        b"x-accel-buffering": b"no",
    }


async def test_readyz_reports_registered_checks_without_naming_them(
    serve: Callable[..., ServerThread],
) -> None:
    server = serve()
    readiness: Readiness = app_state(server).readiness
    healthy = True

    async def redis() -> bool:
        return healthy

    readiness.add("redis", redis)
    readiness.cache_seconds = 0
    async with httpx2.AsyncClient(base_url=server.url) as http:
        ready = await http.get("/readyz")
        healthy = False
        not_ready = await http.get("/readyz")
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
    assert (not_ready.status_code, not_ready.json()) == (503, {"status": "not ready"})


async def test_readyz_follows_key_vault_reachability(
    serve: Callable[..., ServerThread], keyvault: KeyVaultStandIn, vault_tls: TlsFiles
) -> None:
    """Key Vault's check costs no vault traffic: it reports whether the last background re-read got through."""
    server = serve(keyvault=vault_section(keyvault, vault_tls, refresh_seconds=0.3))
    app_state(server).readiness.cache_seconds = 0
    async with httpx2.AsyncClient(base_url=server.url) as http:
        assert (await http.get("/readyz")).status_code == 200
        keyvault.down = True
        assert await _readyz_becomes(http, 503)
        keyvault.down = False
        assert await _readyz_becomes(http, 200)


async def _readyz_becomes(http: httpx2.AsyncClient, status: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while (await http.get("/readyz")).status_code != status:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


# ---- readiness, in process ------------------------------------------------------------------------------------


async def test_readiness_fails_closed_and_caches() -> None:
    calls: list[str] = []

    async def ok() -> bool:
        calls.append("ok")
        return True

    async def hangs() -> bool:
        await asyncio.sleep(30)
        return True

    async def raises() -> bool:
        raise ConnectionError("redis://10.0.0.5:6379 refused")

    async def truthy() -> bool:
        return "yes"  # type: ignore[return-value]  # only True counts

    readiness = Readiness(timeout=0.2, cache_seconds=30)
    for name, check in {"ok": ok, "hangs": hangs, "raises": raises, "truthy": truthy}.items():
        readiness.add(name, check)
    assert await readiness.failing() == ("hangs", "raises", "truthy")
    assert await readiness.failing() == ("hangs", "raises", "truthy")
    assert calls == ["ok"]  # second probe answered from the cache
    readiness.drain()
    assert await readiness.failing() == ("shutdown",)


async def test_sigterm_turns_readiness_false_before_the_server_handler_runs() -> None:
    handed_over: list[int] = []
    original = signal.signal(signal.SIGTERM, lambda sig, _frame: handed_over.append(sig))
    readiness = Readiness()
    try:
        with drain_on_sigterm(readiness, delay=0.3):
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.sleep(0.05)
            assert readiness.draining
            assert handed_over == []  # still serving during the drain delay
            await asyncio.sleep(0.5)
            assert handed_over == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, original)


# ---- hostile headers ------------------------------------------------------------------------------------------

header_bytes = st.binary(max_size=80) | st.sampled_from([b"mcp.contoso.com", b"MCP.CONTOSO.COM", b"mcp.contoso.com:*"])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(host=header_bytes, forwarded_host=st.none() | header_bytes, origin=st.none() | header_bytes)
async def test_hostile_host_origin_and_forwarded_host(
    host: bytes, forwarded_host: bytes | None, origin: bytes | None
) -> None:
    reached: list[bytes] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        reached.append(dict(scope["headers"])[b"host"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    guard = HostOriginGuard(inner, ["mcp.contoso.com", "internal:*"], ["https://mcp.contoso.com"])
    app = ForwardedHeaders(guard, ["127.0.0.1/32"])
    headers = [(b"host", host)]
    if forwarded_host is not None:
        headers.append((b"x-forwarded-host", forwarded_host))
    if origin is not None:
        headers.append((b"origin", origin))
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "path": "/mcp", "headers": headers, "client": ("127.0.0.1", 5000), "scheme": "http"}
    await app(scope, None, send)  # type: ignore[arg-type]
    status = sent[0]["status"]
    assert status in {200, 403, 421}
    if status == 200:
        seen = reached[0].decode("latin-1").lower()
        assert seen == "mcp.contoso.com" or (seen.startswith("internal:") and seen[9:].isdigit())
        assert origin is None or origin.lower() == b"https://mcp.contoso.com"
