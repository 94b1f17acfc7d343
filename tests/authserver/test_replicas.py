"""Two facade replicas sharing Redis (AUTH_SERVER__STATE_URI): a registration made on one is known to the other, an
authorization started on one finishes on the other, and a code redeemed on one is refused on the other (GETDEL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import httpx2
import pytest

from app.main import create_app
from app.settings import Settings
from tests.support.dev_oauth import FormFields
from tests.support.facade import Flow, query
from tests.support.redis import RedisServer
from tests.support.servers import ServerThread, free_port

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("auth_server")]


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    tmp: Path = tmp_path_factory.mktemp("facade-replicas")
    redis = RedisServer().start()
    issuer_port, ports = free_port(), (free_port(), free_port())
    public = f"http://127.0.0.1:{ports[0]}"  # the one issuer and resource clients see (a load balancer's address)

    def replica(embedded: bool) -> object:
        return create_app(
            Settings(
                _env_file=None,
                app_env="development",
                dev_issuer={"port": issuer_port, "key_dir": tmp / "dev", "embedded": embedded},
                mcp={"resource_host": public},
                azuread={"client_secret": "replica-secret-0123456789"},
                auth_server={"enabled": True, "state_uri": redis.uri},
                rate_limit={"unauthenticated": "1000/minute"},
            )
        )

    try:
        with ServerThread(replica(True), port=ports[0]), ServerThread(replica(False), port=ports[1]):
            yield public, f"http://127.0.0.1:{ports[1]}"
    finally:
        redis.close()


async def test_an_authorization_started_on_one_replica_finishes_on_the_other(replicas: tuple[str, str]) -> None:
    a, b = replicas
    async with httpx2.AsyncClient(timeout=30) as http:  # one browser: its cookies go to both replicas
        flow = Flow(http, b)
        assert (await flow.register()).status_code == 201  # registered on B
        flow.base = a
        page = await flow.authorize(scope="offline_access")  # started on A, for the client registered on B
        assert page.status_code == 200 and "Approve" in page.text
        flow.base = b
        upstream = await flow.decide(page)  # the consent form, posted to B
        assert upstream.status_code == 303, upstream.text
        location = upstream.headers["location"]
        fields = FormFields()
        fields.feed((await http.get(location)).text)
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(location))
        signed_in = await http.post(
            location.split("?")[0],
            content=urlencode([*fields.hidden, *fields.checked]),
            headers={"origin": origin, "content-type": "application/x-www-form-urlencoded"},
        )
        callback = urlsplit(signed_in.headers["location"])
        answer = await http.get(f"{b}{callback.path}?{callback.query}")  # the upstream's callback lands on B
        assert answer.status_code == 303, answer.text
        code = query(answer.headers["location"])["code"]

        flow.base = a
        redeemed = await flow.redeem(code)  # the code, redeemed on A
        assert redeemed.status_code == 200 and redeemed.json()["token_type"] == "Bearer"
        flow.base = b
        reused = await flow.redeem(code)  # and refused on B
        assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"

        refresh = redeemed.json()["refresh_token"]
        renewed = await flow.token(grant_type="refresh_token", refresh_token=refresh, client_id=flow.client_id)
        assert renewed.status_code == 200 and renewed.json()["refresh_token"] != refresh  # refreshed on B
        flow.base = a
        replayed = await flow.token(grant_type="refresh_token", refresh_token=refresh, client_id=flow.client_id)
        assert replayed.status_code == 400 and replayed.json()["error"] == "invalid_grant"  # rotated: used once
