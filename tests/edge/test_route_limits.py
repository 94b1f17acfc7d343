"""slowapi on FastAPI routes: `@limiter.limit(...)`, configured per app from RATE_LIMIT__*, keyed by caller or IP.

In-process: configuration, the key, the 429 / 503 answers and the storage-outage policy (an app built here with a
stand-in auth dependency, served through httpx's ASGI transport). Then the real thing: the routes of
tests/support/limited_routes with real tokens on a real uvicorn, and the acceptance test, two `uvicorn app.main:app`
processes sharing one real redis-server.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Annotated, Any

import httpx2
import pytest
from fastapi import APIRouter, Depends, FastAPI, Header, Request
from limits.storage import MemoryStorage, RedisStorage
from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter, SlidingWindowCounterRateLimiter
from slowapi import Limiter as SlowapiLimiter
from slowapi.errors import RateLimitExceeded

from app import limiter
from app.auth.principal import Principal
from app.edge.limiter import STORAGE_RETRY_SECONDS
from app.edge.route_checks import RouteLimits, route_key
from app.edge.route_limits import RouteLimiter, configure_route_limits
from app.settings import Settings
from tests.support.entra import EntraStandIn
from tests.support.redis import RedisServer
from tests.support.replicas import Replica
from tests.support.servers import ServerThread, free_port
from tests.support.values import CLIENT_ID, REPO, TENANT

pytestmark = (
    pytest.mark.slow
)  # two processes share one Redis: the module runs on one worker (ONE_WORKER_MODULES in the top-level conftest.py)

LIMITED_ROUTES = REPO / "tests" / "support" / "limited_routes"
OUTAGE = "rate-limit storage unavailable for routes"


def principal(oid: str = "aaaaaaaa-0000-4000-8000-000000000001") -> Principal:
    return Principal(
        tid=TENANT,
        sub=f"sub-{oid}",
        oid=oid,
        client_id=CLIENT_ID,
        scopes=frozenset({"mcp.read"}),
        roles=frozenset(),
        issuer="https://issuer.example/",
        token_version="2.0",
        token_id="jti",
    )


async def stand_in_caller(request: Request, x_who: Annotated[str, Header()]) -> Principal:
    """Stands in for `app.Caller` here: sets `request.state.principal` as the real dependency does."""
    caller = request.state.principal = principal(x_who)
    return caller


StandInCaller = Annotated[Principal, Depends(stand_in_caller)]

# Decorated at import, before any app is configured: as a route module is.
router = APIRouter()
ran: list[str] = []


@router.get("/caller")
@limiter.limit("3/minute")
async def per_caller(request: Request, caller: StandInCaller) -> dict[str, str]:
    ran.append("caller")
    return {"key": route_key(request)}


@router.get("/public")
@limiter.limit("2/minute")
async def per_ip(request: Request) -> dict[str, str]:
    return {"key": route_key(request)}


@router.get("/sync")
@limiter.limit("2/minute")
def sync_route(request: Request, caller: StandInCaller) -> dict[str, str]:
    return {"key": route_key(request)}


@router.get("/stacked")
@limiter.limit("5/minute")
@limiter.limit("2/minute")
async def stacked(request: Request, caller: StandInCaller) -> dict[str, str]:
    return {"ok": "yes"}


@router.get("/guarded", dependencies=[Depends(stand_in_caller)])  # auth as a route dependency, not a parameter
@limiter.limit("1/minute")
async def guarded(request: Request) -> dict[str, str]:
    return {"key": route_key(request)}


@router.get("/broken")
@limiter.limit("100/minute")
async def broken(request: Request, caller: StandInCaller) -> dict[str, str]:
    raise OSError("the route's own error")


@router.get("/custom")
@limiter.limit("1/minute", error_message="one a minute, please")
async def custom(request: Request, caller: StandInCaller) -> dict[str, str]:
    return {}


def settings(**rate_limit: Any) -> Settings:
    return Settings(_env_file=None, app_env="development", rate_limit=rate_limit)


def build(**rate_limit: Any) -> FastAPI:
    app = FastAPI()
    configure_route_limits(app, settings(**rate_limit).rate_limit, "secure-mcp-server")
    app.include_router(router)
    return app


def client(app: FastAPI, ip: str = "127.0.0.1", raise_app_exceptions: bool = True) -> httpx2.AsyncClient:
    transport = httpx2.ASGITransport(app, client=(ip, 40000), raise_app_exceptions=raise_app_exceptions)
    return httpx2.AsyncClient(transport=transport, base_url="http://test")


def as_(who: str) -> dict[str, str]:
    return {"x-who": who}


def assert_limited(response: httpx2.Response, description: str = "", period: int = 60) -> None:
    assert response.status_code == 429, response.text
    assert 1 <= int(response.headers["retry-after"]) <= period
    body = response.json()
    assert set(body) == {"error", "error_description"} and body["error"] == "rate_limited"
    assert description in body["error_description"]
    assert response.headers["cache-control"] == "no-store"


def closed_redis() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there: every call fails, fast


# ---- configuration --------------------------------------------------------------------------------------------------
def test_importing_app_reads_no_settings() -> None:
    # Production without the Entra settings is refused by Settings(): importing `app` (and `limiter`) must not build it.
    env = {"PATH": os.environ.get("PATH", ""), "APP_ENV": "production", "RATE_LIMIT__STORAGE_URI": "bogus"}
    code = "import app; from app import limiter; from app.edge.route_limits import RouteLimiter; "
    code += "assert isinstance(limiter, RouteLimiter); print('ok')"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
    assert isinstance(limiter, RouteLimiter)


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ("moving-window", MovingWindowRateLimiter),
        ("sliding-window-counter", SlidingWindowCounterRateLimiter),
        ("fixed-window", FixedWindowRateLimiter),
    ],
)
def test_the_strategy_is_rate_limit_strategy(strategy: str, expected: type) -> None:
    app = build(strategy=strategy)
    limits = app.state.limiter
    assert isinstance(limits, RouteLimits)
    assert type(limits.primary.limiter) is expected


def test_the_default_is_a_moving_window_in_memory_with_no_fallback() -> None:
    limits = build().state.limiter
    assert type(limits.primary.limiter) is MovingWindowRateLimiter
    assert isinstance(limits.primary.limiter.storage, MemoryStorage)
    assert limits.fallback is None and not limits.shared


@pytest.mark.parametrize("uri", ["redis://127.0.0.1:6390/2", "async+redis://127.0.0.1:6390/2"])
def test_redis_storage_and_the_outage_policy(uri: str) -> None:
    opened = build(storage_uri=uri, strategy="fixed-window").state.limiter
    assert isinstance(opened.primary.limiter.storage, RedisStorage) and opened.shared
    assert opened.fallback is not None  # fail_open (the default): counted in memory while Redis is down
    assert isinstance(opened.fallback.limiter.storage, MemoryStorage)
    assert type(opened.fallback.limiter) is FixedWindowRateLimiter
    closed = build(storage_uri=uri, on_storage_error="fail_closed").state.limiter
    assert closed.fallback is None and not closed.fail_open


def test_configure_sets_the_state_and_the_answer() -> None:
    from app.edge.route_checks import RouteLimitError

    app = FastAPI()
    limits = configure_route_limits(app, settings().rate_limit, "secure-mcp-server")
    assert app.state.limiter is limits
    assert RouteLimitError in app.exception_handlers


def test_a_malformed_limit_fails_at_import_not_at_the_first_request() -> None:
    with pytest.raises(ValueError, match="minit"):
        limiter.limit("10/minit")


def test_a_route_without_a_request_parameter_fails_at_import() -> None:
    with pytest.raises(TypeError, match="request: Request"):

        @limiter.limit("1/minute")
        async def no_request(caller: StandInCaller) -> None:
            return None


def test_fastapi_sees_the_route_functions_own_signature() -> None:
    # The auth dependency and the parameters are FastAPI's to resolve, through the decorator (functools.wraps).
    route = next(r for r in router.routes if getattr(r, "path", "") == "/caller")
    assert [d.call for d in route.dependant.dependencies] == [stand_in_caller]  # type: ignore[attr-defined]
    assert route.dependant.request_param_name == "request"  # type: ignore[attr-defined]


# ---- the key --------------------------------------------------------------------------------------------------------
def _request(state: dict[str, Any], client: tuple[str, int] | None = ("203.0.113.9", 1)) -> Request:
    return Request({"type": "http", "method": "GET", "path": "/", "headers": [], "client": client, "state": state})


def test_the_key_is_the_principal_else_the_client_ip() -> None:
    user = principal("aaaaaaaa-0000-4000-8000-00000000beef")
    assert route_key(_request({"principal": user})) == f"principal:{TENANT}:aaaaaaaa-0000-4000-8000-00000000beef"
    assert route_key(_request({})) == "ip:203.0.113.9"
    assert route_key(_request({}, client=None)) == "ip:unknown"
    assert route_key(_request({"principal": "not a principal"})) == "ip:203.0.113.9"


# ---- slowapi behaviour this module relies on (one test per assumption) -----------------------------------------------
async def test_slowapi_records_the_refused_limit_and_its_key_on_request_state() -> None:
    # Retry-After is read from the refused window: RouteLimits finds it on request.state.view_rate_limit.
    slow = SlowapiLimiter(key_func=lambda: "k", storage_uri="memory://", key_prefix="p", key_style="endpoint")

    async def endpoint(request: Request) -> str:
        return "ran"

    wrapped = slow.limit("1/minute")(endpoint)
    first, second = _request({}), _request({})
    assert await wrapped(request=first) == "ran"
    with pytest.raises(RateLimitExceeded) as refused:
        await wrapped(request=second)
    item, parts = second.state.view_rate_limit
    assert item == refused.value.limit.limit  # type: ignore[union-attr]
    assert parts == ["p", "k", f"{endpoint.__module__}.{endpoint.__name__}"]
    assert slow.limiter.get_window_stats(item, *parts).remaining == 0


async def test_slowapi_raises_storage_errors_from_the_check_when_not_told_to_swallow_them() -> None:
    slow = SlowapiLimiter(
        key_func=lambda: "k",
        storage_uri=closed_redis(),
        storage_options={"wrap_exceptions": True},  # type: ignore[dict-item]
        swallow_errors=False,
    )
    ran_here: list[bool] = []

    async def endpoint(request: Request) -> None:
        ran_here.append(True)

    from limits.errors import StorageError

    with pytest.raises(StorageError):
        await slow.limit("1/minute")(endpoint)(request=_request({}))
    assert not ran_here


# ---- answers --------------------------------------------------------------------------------------------------------
async def test_n_successes_then_429_per_caller_each_with_their_own_count() -> None:
    ran.clear()
    async with client(build()) as http:
        first = [await http.get("/caller", headers=as_("aaaaaaaa-0000-4000-8000-000000000001")) for _ in range(4)]
        other = await http.get("/caller", headers=as_("aaaaaaaa-0000-4000-8000-000000000002"))
    assert [r.status_code for r in first] == [200, 200, 200, 429]
    # FastAPI resolved the auth dependency before slowapi's check: the key is the principal, not the (shared) IP.
    assert first[0].json()["key"] == f"principal:{TENANT}:aaaaaaaa-0000-4000-8000-000000000001"
    assert_limited(first[3], "3 per 1 minute")
    assert other.status_code == 200
    assert ran == ["caller"] * 4  # the refused request never reached the route


async def test_the_auth_dependency_in_the_route_dependencies_is_resolved_first_too() -> None:
    async with client(build()) as http:
        one = await http.get("/guarded", headers=as_("aaaaaaaa-0000-4000-8000-000000000001"))
        two = await http.get("/guarded", headers=as_("aaaaaaaa-0000-4000-8000-000000000002"))
    assert one.json()["key"].startswith("principal:") and two.status_code == 200


async def test_a_public_route_is_counted_per_client_ip() -> None:
    app = build()
    async with client(app, ip="198.51.100.1") as one, client(app, ip="198.51.100.2") as two:
        mine = [await one.get("/public") for _ in range(3)]
        theirs = await two.get("/public")
    assert [r.status_code for r in mine] == [200, 200, 429]
    assert mine[0].json() == {"key": "ip:198.51.100.1"}
    assert_limited(mine[2], "2 per 1 minute")
    assert theirs.status_code == 200


async def test_a_sync_route_is_limited_too() -> None:
    async with client(build()) as http:
        statuses = [(await http.get("/sync", headers=as_("a"))).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


async def test_stacked_limits_both_apply() -> None:
    async with client(build()) as http:
        responses = [await http.get("/stacked", headers=as_("a")) for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert_limited(responses[2], "2 per 1 minute")


async def test_an_error_message_is_the_description() -> None:
    async with client(build()) as http:
        responses = [await http.get("/custom", headers=as_("a")) for _ in range(2)]
    assert responses[1].json() == {"error": "rate_limited", "error_description": "one a minute, please"}


async def test_apps_with_different_settings_count_apart_in_one_process() -> None:
    moving, fixed = build(), build(strategy="fixed-window")
    async with client(moving) as one, client(fixed) as two:
        assert [(await one.get("/caller", headers=as_("a"))).status_code for _ in range(4)][-1] == 429
        assert (await two.get("/caller", headers=as_("a"))).status_code == 200
    assert type(fixed.state.limiter.primary.limiter) is FixedWindowRateLimiter


async def test_an_app_without_configure_is_a_clear_error() -> None:
    app = FastAPI()
    app.include_router(router)
    async with client(app) as http:
        with pytest.raises(RuntimeError, match="configure_route_limits"):
            await http.get("/public")


async def test_the_routes_own_storage_like_error_is_not_a_storage_outage() -> None:
    app = build(on_storage_error="fail_closed")
    async with client(app) as http:
        with pytest.raises(OSError, match="the route's own error"):
            await http.get("/broken", headers=as_("a"))
    assert not app.state.limiter.down


# ---- storage outage: RATE_LIMIT__ON_STORAGE_ERROR --------------------------------------------------------------------
async def test_fail_closed_answers_503_with_retry_after_never_500(caplog: pytest.LogCaptureFixture) -> None:
    ran.clear()
    app = build(storage_uri=closed_redis(), on_storage_error="fail_closed")
    with caplog.at_level(logging.ERROR, logger="app.ratelimit"):
        async with client(app, raise_app_exceptions=False) as http:
            responses = [await http.get("/caller", headers=as_("a")) for _ in range(3)]
    for response in responses:
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "5"
        assert response.json() == {
            "error": "rate_limited",
            "error_description": "rate limiting is unavailable; retry later",
        }
    assert ran == []
    assert [r.getMessage() for r in caplog.records].count(
        f"{OUTAGE} (ConnectionError); answering with 503 (fail_closed) until it recovers"
    ) == 1  # once per outage, not per request


async def test_fail_open_counts_in_memory_while_storage_is_down() -> None:
    app = build(storage_uri=closed_redis())  # fail_open is the default
    async with client(app, raise_app_exceptions=False) as http:
        responses = [await http.get("/caller", headers=as_("a")) for _ in range(4)]
        other = await http.get("/caller", headers=as_("b"))
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    assert_limited(responses[3], "3 per 1 minute")
    assert other.status_code == 200
    assert app.state.limiter.down


async def test_storage_is_tried_again_after_a_second_and_recovery_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    redis = _redis_server()
    try:
        app = build(storage_uri=redis.uri, on_storage_error="fail_closed")
        limits: RouteLimits = app.state.limiter
        async with client(app, raise_app_exceptions=False) as http:
            assert (await http.get("/caller", headers=as_("a"))).status_code == 200
            redis.stop()
            assert (await http.get("/caller", headers=as_("a"))).status_code == 503
            redis.start()  # back, on the same port
            assert (await http.get("/caller", headers=as_("a"))).status_code == 503  # not tried again yet
            await asyncio.sleep(STORAGE_RETRY_SECONDS + 0.1)
            with caplog.at_level(logging.WARNING, logger="app.ratelimit"):
                assert (await http.get("/caller", headers=as_("a"))).status_code == 200
                # Counts are Redis's again (it restarted empty): 3/minute, so two more then a refusal.
                assert [(await http.get("/caller", headers=as_("a"))).status_code for _ in range(3)] == [200, 200, 429]
        assert not limits.down
        assert any("reachable again" in r.getMessage() for r in caplog.records)
    finally:
        redis.close()


# ---- the real thing: create_app, real tokens, real uvicorn ----------------------------------------------------------
async def test_real_tokens_on_the_served_routes(serve: Callable[..., ServerThread], token: Callable[..., str]) -> None:
    server = serve(routes={"dir": LIMITED_ROUTES})
    first = token("mcp.read", oid="aaaaaaaa-0000-4000-8000-000000000301")
    second = token("mcp.read", oid="aaaaaaaa-0000-4000-8000-000000000302")
    async with httpx2.AsyncClient(base_url=server.url) as http:
        mine = [await http.get("/api/limited/caller", headers={"Authorization": f"Bearer {first}"}) for _ in range(6)]
        theirs = await http.get("/api/limited/caller", headers={"Authorization": f"Bearer {second}"})
        anonymous = await http.get("/api/limited/caller")
        public = [await http.get("/api/limited/public") for _ in range(4)]
    assert [r.status_code for r in mine] == [200] * 5 + [429]
    assert mine[0].json() == {"caller": f"{TENANT}:aaaaaaaa-0000-4000-8000-000000000301"}
    assert_limited(mine[5], "5 per 1 minute")
    assert theirs.status_code == 200
    assert anonymous.status_code == 401  # no token: authentication answers before any count
    assert [r.status_code for r in public] == [200] * 3 + [429]
    assert_limited(public[3], "3 per 1 minute")


# ---- acceptance: two processes, one Redis ---------------------------------------------------------------------------


def _redis_server() -> RedisServer:
    if shutil.which("redis-server") is None:
        if os.environ.get("CI"):  # CI installs it (.ci/test-packages): missing there is a failure, not a skip
            raise RuntimeError("redis-server is not installed")
        pytest.skip("redis-server is not installed (make test installs it when run as root)")
    return RedisServer().start()


@pytest.fixture(scope="module")
def replicas(entra: EntraStandIn, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Replica]]:
    redis = _redis_server()
    logs = tmp_path_factory.mktemp("route-limit-replicas")
    started = [Replica(entra, redis, logs / f"replica-{i}.log", ROUTES__DIR=str(LIMITED_ROUTES)) for i in range(2)]
    try:
        for replica in started:
            replica.wait_ready()
        yield started
    finally:
        for replica in started:
            replica.stop()
        redis.close()


async def _alternating(replicas: list[Replica], path: str, count: int, token: str | None) -> list[httpx2.Response]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx2.AsyncClient(timeout=30) as http:
        return list(
            await asyncio.gather(*(http.get(f"{replicas[i % 2].url}{path}", headers=headers) for i in range(count)))
        )


async def test_a_route_limit_is_counted_across_two_processes_sharing_redis(
    replicas: list[Replica], token: Callable[..., str]
) -> None:
    caller = token("mcp.read", oid="aaaaaaaa-0000-4000-8000-000000000401")
    responses = await _alternating(replicas, "/api/limited/caller", 10, caller)
    statuses = sorted(r.status_code for r in responses)
    # 5/minute in all: each process saw 5 of the 10, so unshared counts would have let all 10 through.
    assert statuses == [200] * 5 + [429] * 5, statuses
    for refused in (r for r in responses if r.status_code == 429):
        assert_limited(refused, "5 per 1 minute")
    # Another caller has their own count, on either process.
    other = token("mcp.read", oid="aaaaaaaa-0000-4000-8000-000000000402")
    assert [r.status_code for r in await _alternating(replicas, "/api/limited/caller", 2, other)] == [200, 200]


async def test_a_public_route_limit_per_ip_is_counted_across_two_processes(replicas: list[Replica]) -> None:
    responses = await _alternating(replicas, "/api/limited/public", 6, None)
    assert sorted(r.status_code for r in responses) == [200] * 3 + [429] * 3
    for refused in (r for r in responses if r.status_code == 429):
        assert_limited(refused, "3 per 1 minute")
