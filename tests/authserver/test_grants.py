"""The facade's grants and registrations in production mode, with an Entra stand-in upstream that, like Entra, accepts
a refresh token again after use (so every refusal here is the facade's own): refresh-token families revoked on
reuse before any upstream request, a refresh that survives an upstream outage, registrations bounded per client IP
and in memory without touching existing clients, and two browsers interleaving every step under hypothesis.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from app.main import create_app
from tests.support.entra import EntraStandIn
from tests.support.facade import Flow, query
from tests.support.servers import ServerThread, free_port
from tests.support.values import settings_for

pytestmark = pytest.mark.xdist_group("auth_server")

SECRET = "facade-grants-secret-0123456789"
LONG_URI = "http://127.0.0.1/" + "p" * 1900


@dataclass
class EntraFacade:
    url: str
    audit: Path
    entra: EntraStandIn

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.audit.read_text().splitlines() if line.strip()]

    def upstream_refreshes(self) -> int:
        return sum(1 for r in self.entra.token_requests if r.get("grant_type") == "refresh_token")


@pytest.fixture
def serve_facade(entra: EntraStandIn, tmp_path: Path) -> Iterator[Callable[..., EntraFacade]]:
    """Start a facade in production mode in front of the Entra stand-in; `auth_server` overrides its settings."""
    with ExitStack() as stack:

        def start(**auth_server: Any) -> EntraFacade:
            port, audit = free_port(), tmp_path / f"audit-{free_port()}.jsonl"
            settings = settings_for(
                entra,
                port,
                azuread={"client_secret": SECRET},
                auth_server={"enabled": True} | auth_server,
                rate_limit={"unauthenticated": "1000/minute"},  # every request here comes from 127.0.0.1
                audit={"sink": f"file:{audit}"},
            )
            stack.enter_context(ServerThread(create_app(settings), port=port))
            return EntraFacade(f"http://127.0.0.1:{port}", audit, entra)

        yield start


async def _tokens(flow: Flow) -> dict[str, Any]:
    response = await flow.redeem((await flow.code())["code"])
    assert response.status_code == 200, response.text
    return dict(response.json())


async def _refresh(flow: Flow, refresh_token: str) -> httpx2.Response:
    return await flow.token(grant_type="refresh_token", refresh_token=refresh_token, client_id=flow.client_id)


async def test_a_used_refresh_token_is_refused_without_asking_the_upstream(
    serve_facade: Callable[..., EntraFacade],
) -> None:
    """The upstream here accepts its refresh tokens again after use: a replay refused is refused by the facade."""
    facade: EntraFacade = serve_facade()
    async with httpx2.AsyncClient(timeout=30) as http:
        flow = await Flow.registered(http, facade.url)
        used = (await _tokens(flow))["refresh_token"]
        assert (await _refresh(flow, used)).status_code == 200
        upstream_before = facade.upstream_refreshes()
        replay = await _refresh(flow, used)
        assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
        assert "access_token" not in replay.json() and facade.upstream_refreshes() == upstream_before


async def test_a_reused_refresh_token_revokes_its_family_before_any_upstream_request(
    serve_facade: Callable[..., EntraFacade], tmp_path: Path
) -> None:
    facade: EntraFacade = serve_facade()
    async with httpx2.AsyncClient(timeout=30) as http:
        flow = await Flow.registered(http, facade.url)
        first = (await _tokens(flow))["refresh_token"]
        rotated = await _refresh(flow, first)  # the thief (or the client) redeems first
        assert rotated.status_code == 200
        second = rotated.json()["refresh_token"]
        upstream_before = facade.upstream_refreshes()
        replay = await _refresh(flow, first)  # the used one comes back: a replay
        assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
        assert "already used" in replay.json()["error_description"] and "access_token" not in replay.json()
        after = await _refresh(flow, second)  # what rotation produced is revoked with it
        assert after.status_code == 400 and after.json()["error"] == "invalid_grant"
        assert facade.upstream_refreshes() == upstream_before  # refused here, not at the upstream (which would accept)
        fresh = await _tokens(flow)  # a new sign-in starts a new family
        assert (await _refresh(flow, fresh["refresh_token"])).status_code == 200
    revoked = [r for r in facade.records() if r["event"] == "authserver_token" and r["outcome"] == "revoked"]
    assert [(r["reason"], r["client_id"]) for r in revoked] == [("refresh_token_replay", flow.client_id)]
    assert revoked[0]["user"] == facade.entra.signed_in_oid
    assert first not in facade.audit.read_text() and second not in facade.audit.read_text()


async def test_another_clients_refresh_token_is_refused_and_revokes_the_family(
    serve_facade: Callable[..., EntraFacade],
) -> None:
    facade: EntraFacade = serve_facade()
    async with httpx2.AsyncClient(timeout=30) as http:
        owner, thief = Flow(http, facade.url), Flow(http, facade.url)
        await owner.register()
        await thief.register()
        handle = (await _tokens(owner))["refresh_token"]
        stolen = await _refresh(thief, handle)
        assert stolen.status_code == 400 and "another client" in stolen.json()["error_description"]
        assert (await _refresh(owner, handle)).status_code == 400


async def test_a_refresh_during_an_upstream_outage_can_be_retried(serve_facade: Callable[..., EntraFacade]) -> None:
    facade: EntraFacade = serve_facade()
    async with httpx2.AsyncClient(timeout=30) as http:
        flow = await Flow.registered(http, facade.url)
        handle = (await _tokens(flow))["refresh_token"]
        facade.entra.token_down = True
        try:
            outage = await _refresh(flow, handle)
        finally:
            facade.entra.token_down = False
        assert outage.status_code == 503 and outage.json()["error"] == "temporarily_unavailable"
        retried = await _refresh(flow, handle)  # not a replay: the token was never used
        assert retried.status_code == 200 and retried.json()["refresh_token"] != handle


async def test_registrations_are_limited_per_client_ip_and_existing_clients_still_sign_in(
    serve_facade: Callable[..., EntraFacade],
) -> None:
    facade: EntraFacade = serve_facade(registrations_per_ip="3/hour")
    async with httpx2.AsyncClient(timeout=30) as http:
        flows = [Flow(http, facade.url) for _ in range(4)]
        answers = [await flow.register() for flow in flows]
        assert [a.status_code for a in answers] == [201, 201, 201, 429]
        assert answers[3].json()["error"] == "temporarily_unavailable" and int(answers[3].headers["retry-after"]) > 0
        tokens = await _tokens(flows[0])  # an existing client signs in and refreshes as before
        assert (await _refresh(flows[0], tokens["refresh_token"])).status_code == 200
    refused = [r for r in facade.records() if r["event"] == "authserver_registration" and r["outcome"] == "refused"]
    assert [r["reason"] for r in refused] == ["temporarily_unavailable"]


async def test_registrations_fill_at_most_half_the_memory_bound_and_sign_ins_go_on(
    serve_facade: Callable[..., EntraFacade],
) -> None:
    facade: EntraFacade = serve_facade(memory_max_bytes=1024 * 1024, registrations_per_ip="10000/hour")
    async with httpx2.AsyncClient(timeout=30) as http:
        existing = Flow(http, facade.url)
        await existing.register()
        statuses: list[int] = []
        while 503 not in statuses and len(statuses) < 200:  # each ~8 KB: half a MiB is reached in about 65
            big = Flow(http, facade.url)
            statuses.append((await big.register(redirect_uris=[f"{LONG_URI}{i}" for i in range(4)])).status_code)
        assert statuses[-1] == 503 and set(statuses[:-1]) == {201} and 40 < len(statuses) < 100
        tokens = await _tokens(existing)  # the other half: sign-in and refresh still work
        assert (await _refresh(existing, tokens["refresh_token"])).status_code == 200
        full = await Flow(http, facade.url).register(redirect_uris=[f"{LONG_URI}{i}" for i in range(4)])
        assert full.status_code == 503 and "registrations" in full.json()["error_description"]


_STEPS = ("authorize", "consent", "consent_other", "callback", "callback_other", "redeem", "redeem_other",
          "refresh", "refresh_replay", "refresh_other")  # fmt: skip


def test_two_browsers_interleaving_every_step_never_get_a_5xx(entra: EntraStandIn, tmp_path: Path) -> None:
    """Hypothesis drives two browsers of one client through the facade in any order: each other's consent pages,
    callbacks, codes and refresh tokens, replays included. Every answer is a redirect or a clear 4xx."""
    port = free_port()
    app_settings = settings_for(
        entra,
        port,
        azuread={"client_secret": SECRET},
        auth_server={"enabled": True, "registrations_per_ip": "1000/minute"},
        rate_limit={"unauthenticated": "100000/minute"},
    )
    statuses: list[int] = []

    async def run(steps: list[tuple[str, int]], server: str, client_id: str) -> None:
        async with httpx2.AsyncClient(timeout=30) as a, httpx2.AsyncClient(timeout=30) as b:
            flows = [Flow(a, server, client_id=client_id), Flow(b, server, client_id=client_id)]
            held: list[dict[str, Any]] = [{}, {}]  # per browser: its last page, callback, code, refresh tokens

            async def answer(response: httpx2.Response) -> httpx2.Response:
                statuses.append(response.status_code)
                assert response.status_code < 500 and "Traceback" not in response.text, response.text[:300]
                return response

            for step, who in steps:
                me, other = flows[who], flows[1 - who]
                mine, theirs = held[who], held[1 - who]
                if step == "authorize":
                    mine["page"] = await answer(await me.authorize())
                elif step.startswith("consent") and (page := (theirs if "other" in step else mine).get("page")):
                    decided = await answer(await me.decide(page))
                    if decided.status_code == 303 and "/oauth2/v2.0/authorize" in decided.headers["location"]:
                        mine["callback"] = await me.upstream_callback(decided)
                elif step.startswith("callback") and (url := (theirs if "other" in step else mine).get("callback")):
                    done = await answer(await me.http.get(url))
                    if done.status_code == 303 and "code" in query(done.headers["location"]):
                        mine["code"] = query(done.headers["location"])["code"]
                elif step.startswith("redeem") and (code := (theirs if "other" in step else mine).get("code")):
                    redeemed = await answer(
                        await me.redeem(code, code_verifier=(other if "other" in step else me).verifier)
                    )
                    if redeemed.status_code == 200:
                        mine.setdefault("refresh", []).append(redeemed.json()["refresh_token"])
                elif step.startswith("refresh") and (handles := (theirs if "other" in step else mine).get("refresh")):
                    handle = handles[0] if step == "refresh_replay" else handles[-1]
                    refreshed = await answer(await _refresh(me, handle))
                    if refreshed.status_code == 200:
                        mine.setdefault("refresh", []).append(refreshed.json()["refresh_token"])

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(steps=st.lists(st.tuples(st.sampled_from(_STEPS), st.integers(0, 1)), min_size=1, max_size=14))
    @example(steps=[(step, 0) for step in ("authorize", "consent", "callback", "redeem", "refresh", "refresh_replay")])
    def interleave(steps: list[tuple[str, int]]) -> None:
        asyncio.run(run(steps, server.url, client_id))

    with ServerThread(create_app(app_settings), port=port) as server:
        registered = httpx2.post(
            f"{server.url}/oauth/register",
            json={"redirect_uris": ["http://127.0.0.1:49153/callback"], "token_endpoint_auth_method": "none"},
        )
        client_id = registered.json()["client_id"]
        interleave()
    assert {200, 303} <= set(statuses) and any(400 <= s < 500 for s in statuses)
