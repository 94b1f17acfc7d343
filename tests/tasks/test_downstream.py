"""A task that calls a downstream API as the user gets its on-behalf-of token in the process that runs it, after
the request that created the task has ended; the user's token is never written to the task store."""

from __future__ import annotations

from pathlib import Path

import httpx2
import pytest

from app.main import create_app
from tests.support.entra import EntraStandIn
from tests.support.servers import ServerThread, free_port
from tests.support.tasks import TasksClient
from tests.support.values import CLIENT_ID, CLIENT_SECRET, SUPPORT, TENANT, settings_for


async def test_a_task_calls_downstream_on_behalf_of_the_user_and_stores_no_token(
    entra_tls: tuple[EntraStandIn, Path],
    profile_api: tuple[str, list[dict[str, str]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    entra, cert = entra_tls
    api_url, api_seen = profile_api
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    monkeypatch.setenv("PROFILE_API__BASE_URL", api_url)
    port = free_port()
    tools = SUPPORT / "task_obo_tools"
    settings = settings_for(entra, port, azuread={"client_secret": CLIENT_SECRET}, tools={"dir": tools})
    inbound = entra.token(tenant=TENANT, audience=CLIENT_ID, scopes="profile.read")
    app = create_app(settings)
    with ServerThread(app, port=port) as server:
        async with httpx2.AsyncClient(base_url=server.url, timeout=10) as http:
            client = TasksClient(http, inbound)
            handle = await client.create("profile_later")
            assert entra.token_requests == []  # nothing exchanged while the creating request was answered
            task = await client.finished(handle["taskId"])
        (core,) = app.state.cores
        assert core.tasks is not None
        stored = core.tasks.store.records[handle["taskId"]]  # the memory store

    assert task["status"] == "completed", task
    assert task["result"]["structuredContent"] == {"displayName": "Alice Example", "mail": "alice@contoso.example"}
    (exchange,) = entra.token_requests
    assert exchange["requested_token_use"] == "on_behalf_of" and exchange["assertion"] == inbound
    (headers,) = api_seen
    assert headers["authorization"].startswith("Bearer downstream-") and inbound not in " ".join(headers.values())
    # What a store (Redis, for several replicas) would hold: the owner's key, never a token.
    assert inbound not in repr(stored) and "downstream-" not in repr(stored)
    assert stored["owner"].count("|") == 1
