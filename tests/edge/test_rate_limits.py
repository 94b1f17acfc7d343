"""Rate limits in one process (memory storage): the per-IP bucket for unauthenticated traffic, keyed through proxies."""

from __future__ import annotations

from collections.abc import Callable

import httpx2
import pytest
from pydantic import ValidationError

from app.main import create_app
from app.settings import Settings
from tests.support.calls import call
from tests.support.entra import EntraStandIn
from tests.support.keyvault import KeyVaultStandIn, TlsFiles, vault_section
from tests.support.otel import OtelMemory
from tests.support.servers import ServerThread, free_port
from tests.support.values import READER, settings_for


async def test_unauthenticated_traffic_is_limited_per_client_ip(
    serve: Callable[..., ServerThread], token: Callable[..., str]
) -> None:
    server = serve(rate_limit={"unauthenticated": "5/minute"})
    prm = "/.well-known/oauth-protected-resource/mcp"
    async with httpx2.AsyncClient(base_url=server.url) as http:
        valid = [await call(http, token(READER), "probe_read") for _ in range(6)]
        anonymous = [(await http.post("/mcp", json={})).status_code for _ in range(3)]
        bad_token = (await http.post("/mcp", json={}, headers={"Authorization": "Bearer not.a.token"})).status_code
        metadata = (await http.get(prm)).status_code
        flood = [await http.post("/mcp", json={}, headers={"Authorization": "Bearer guess"}) for _ in range(2)]
        prm_after = await http.get(prm)
        health = (await http.get("/healthz")).status_code
    assert all(r.status_code == 200 for r in valid)  # valid callers never spend this bucket
    assert anonymous == [401, 401, 401] and bad_token == 401 and metadata == 200
    for refused in (*flood, prm_after):
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.json()["error"]["data"]["scope"] == "client"
    assert health == 200


@pytest.mark.parametrize("trusted", [True, False])
async def test_client_bucket_follows_the_ip_resolved_through_trusted_proxies(
    entra: EntraStandIn, trusted: bool
) -> None:
    port = free_port()
    security = {"trusted_proxies": ["127.0.0.1/32"] if trusted else []}
    settings = settings_for(entra, port, rate_limit={"unauthenticated": "2/minute"}, security=security)
    # uvicorn's own proxy handling off, as in the image: only the app's ForwardedHeaders layer resolves the client.
    with ServerThread(create_app(settings), port=port, proxy_headers=False) as server:
        async with httpx2.AsyncClient(base_url=server.url) as http:

            async def anonymous(client_ip: str) -> int:
                response = await http.post("/mcp", json={}, headers={"X-Forwarded-For": client_ip})
                return response.status_code

            first = [await anonymous("203.0.113.7") for _ in range(3)]
            second = [await anonymous("198.51.100.9") for _ in range(2)]
    assert first == [401, 401, 429]
    if trusted:
        assert second == [401, 401]  # another client behind the same proxy has its own bucket
    else:
        assert second == [429, 429]  # an untrusted X-Forwarded-For is ignored: one peer, one bucket


def test_a_redis_uri_with_a_password_comes_from_key_vault_as_a_secret(
    keyvault: KeyVaultStandIn, vault_tls: TlsFiles
) -> None:
    uri = "redis://:s3cret-pass@127.0.0.1:6390/0"
    keyvault.set("rate-limit--storage-uri", uri)
    settings = Settings(app_env="development", _env_file=None, keyvault=vault_section(keyvault, vault_tls))
    assert settings.rate_limit.storage_uri is not None
    assert settings.rate_limit.storage_uri.get_secret_value() == uri
    assert "s3cret-pass" not in repr(settings) and "s3cret-pass" not in str(settings.model_dump())


def test_bad_rate_limit_settings_are_refused() -> None:
    with pytest.raises(ValidationError, match="is not a rate limit"):
        Settings(app_env="development", rate_limit={"default": "lots"})
    with pytest.raises(ValidationError, match="RATE_LIMIT__STORAGE_URI must be"):
        Settings(app_env="development", rate_limit={"storage_uri": "http://cache:6379"})


@pytest.mark.parametrize("strategy", ["moving-window", "sliding-window-counter", "fixed-window"])
async def test_each_strategy_limits_a_principal_in_process_memory(
    serve: Callable[..., ServerThread], token: Callable[..., str], strategy: str
) -> None:
    server = serve(rate_limit={"default": "3/minute", "strategy": strategy})
    caller = token(READER)
    async with httpx2.AsyncClient(base_url=server.url) as http:
        responses = [await call(http, caller, "probe_read", request_id=i) for i in range(5)]
        other = await call(http, token(READER, oid="aaaaaaaa-0000-4000-8000-00000000beef"), "probe_read")
    assert [r.status_code for r in responses] == [200, 200, 200, 429, 429]
    assert [r.json()["id"] for r in responses[3:]] == [3, 4]
    assert 1 <= int(responses[3].headers["retry-after"]) <= 60
    assert other.status_code == 200


async def test_outcomes_reach_the_mcp_span_and_rejections_are_counted(
    otel: OtelMemory, serve: Callable[..., ServerThread], token: Callable[..., str]
) -> None:
    rejections = "mcp.server.rate_limit.rejections"
    before = otel.total(rejections, **{"rate_limit.policy": "per-principal"})
    server = serve(rate_limit={"default": "1/minute"})
    caller = token(READER, oid="aaaaaaaa-0000-4000-8000-0000000007e1")
    async with httpx2.AsyncClient(base_url=server.url) as http:
        allowed = await call(http, caller, "probe_read", request_id=1)
        refused = await call(http, caller, "probe_read", request_id=2)
    assert (allowed.status_code, refused.status_code) == (200, 429)
    (span,) = [s for s in otel.spans.get_finished_spans() if s.name == "tools/call probe_read"]
    assert (span.attributes or {})["rate_limit.outcome"] == "allowed"
    assert otel.total(rejections, **{"rate_limit.policy": "per-principal"}) - before == 1
