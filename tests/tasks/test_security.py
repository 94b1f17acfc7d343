"""Who may see a task, and what a task leaves behind: another caller (or the same user through another client app)
cannot tell a task from one that never existed; a token that lost the tool's scope gets a step-up; task ids are
unguessable; the per-caller and overall caps answer in HTTP; audit records carry digests, and no log carries a task
id, a token or an argument.

Production settings, a real uvicorn, Entra stand-in tokens; the tools are tests/support/task_tools/jobs.py.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.support.servers import ServerThread
from tests.support.tasks import ELICITATION, NOT_FOUND, TasksClient, audit_records, message_of, task_settings, wait_for
from tests.support.values import oid

READ, ADMIN = "notes.read", "notes.admin"
ALICE = oid(1)
METHODS = ("tasks/get", "tasks/update", "tasks/cancel")
TASK_ID = re.compile(r"^([A-Za-z0-9_-]{32})\.([a-z_]+)$")


def _params(method: str, task_id: str) -> dict[str, Any]:
    answers = {"inputResponses": {"input-0": {"action": "accept", "content": {}}}} if method == "tasks/update" else {}
    return {"taskId": task_id, **answers}


async def _answer(client: TasksClient, method: str, task_id: str, **headers: str) -> tuple[int, int, str]:
    """HTTP status, JSON-RPC error code and message of `method` on `task_id`."""
    response = await client.send(method, _params(method, task_id), task_id, **headers)
    error = message_of(response).get("error", {})
    return response.status_code, error.get("code"), error.get("message")


def _unknown(tool: str = "long_job") -> str:
    """A well-formed id of a task that never existed."""
    return f"{secrets.token_urlsafe(24)}.{tool}"


@pytest.mark.parametrize(
    "other",
    [{"oid": oid(2)}, {"oid": ALICE, "app_id": "cccccccc-0000-4000-8000-000000000002"}],
    ids=["another-user", "same-user-another-client-app"],
)
async def test_someone_elses_task_reads_exactly_as_a_task_that_never_existed(
    serve: Callable[..., ServerThread], token: Callable[..., str], other: dict[str, str]
) -> None:
    server = serve(**task_settings())
    async with httpx2.AsyncClient(base_url=server.url, timeout=30) as http:
        owner = TasksClient(http, token(READ, oid=ALICE))
        stranger = TasksClient(http, token(READ, **other))
        task_id = (await owner.create("long_job", {"seconds": 60}))["taskId"]
        for method in METHODS:
            on_real = await _answer(stranger, method, task_id)
            assert on_real == await _answer(stranger, method, _unknown()), method
            assert on_real == (400, *NOT_FOUND), method
        # The id's tool part edited: still nothing, even for the owner.
        random_part = task_id.split(".")[0]
        assert await _answer(owner, "tasks/get", f"{random_part}.failing_job") == (400, *NOT_FOUND)
        # The stranger's cancel did nothing; the owner still has the task.
        assert (await owner.get(task_id))["status"] == "working"
        await owner.cancel(task_id)


async def test_a_token_that_lost_the_tools_scope_gets_a_step_up_on_its_own_task(
    serve: Callable[..., ServerThread], token: Callable[..., str]
) -> None:
    server = serve(**task_settings())
    async with httpx2.AsyncClient(base_url=server.url, timeout=30) as http:
        task_id = (await TasksClient(http, token(READ)).create("long_job", {"seconds": 0.05}))["taskId"]
        narrower = TasksClient(http, token("mcp.read"))  # the same user and app, without notes.read
        for method in METHODS:
            response = await narrower.send(method, _params(method, task_id), task_id)
            assert response.status_code == 403, (method, response.text)
            assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
            assert task_id not in response.text


async def test_an_admin_task_is_read_only_with_notes_admin(
    serve: Callable[..., ServerThread], token: Callable[..., str]
) -> None:
    server = serve(**task_settings())
    async with httpx2.AsyncClient(base_url=server.url, timeout=30) as http:
        admin = TasksClient(http, token(f"{READ} {ADMIN}"))
        task_id = (await admin.create("admin_job", {"seconds": 0.05}))["taskId"]
        assert (await admin.finished(task_id))["result"]["structuredContent"] == {"result": "admin done"}
        reader = TasksClient(http, token(READ))
        response = await reader.send("tasks/get", {"taskId": task_id}, task_id)
    assert response.status_code == 403
    challenge = response.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge and ADMIN in challenge
    assert "admin done" not in response.text


async def test_an_mcp_name_header_naming_another_task_is_refused(
    serve: Callable[..., ServerThread], token: Callable[..., str]
) -> None:
    server = serve(**task_settings())
    async with httpx2.AsyncClient(base_url=server.url, timeout=30) as http:
        client = TasksClient(http, token(READ))
        task_id = (await client.create("long_job", {"seconds": 60}))["taskId"]
        for method in METHODS:
            status, code, _ = await _answer(client, method, task_id, **{"Mcp-Name": _unknown()})
            assert code == -32020, method  # HEADER_MISMATCH
            assert status >= 400
        assert (await client.get(task_id))["status"] == "working"  # the refused cancel did nothing
        await client.cancel(task_id)


async def test_a_tasks_request_without_the_mcp_name_header_is_refused(
    serve: Callable[..., ServerThread], token: Callable[..., str]
) -> None:
    """The extension's text: the client MUST send `Mcp-Name: <taskId>` (replicas are routed by it). The SDK refuses
    a tools/call without its Mcp-Name (-32020); tasks/* must not be laxer."""
    server = serve(**task_settings())
    async with httpx2.AsyncClient(base_url=server.url, timeout=30) as http:
        client = TasksClient(http, token(READ))
        task_id = (await client.create("long_job", {"seconds": 60}))["taskId"]
        try:
            for method in METHODS:
                response = await client.send(method, _params(method, task_id), name=None)
                assert message_of(response).get("error", {}).get("code") == -32020, (method, response.text)
        finally:
            await client.cancel(task_id)


async def test_task_ids_are_unique_and_carry_192_random_bits(
    serve: Callable[..., ServerThread], token: Callable[..., str]
) -> None:
    server = serve(**task_settings())
    async with httpx2.AsyncClient(base_url=server.url, timeout=30) as http:
        client = TasksClient(http, token(READ))
        ids = [(await client.create("long_job", {"seconds": 0}))["taskId"] for _ in range(8)]
    parsed = [TASK_ID.match(task_id) for task_id in ids]
    assert all(parsed), ids  # 32 base64url characters (6 bits each: 192 bits), a dot, the tool
    randoms = [match.group(1) for match in parsed if match]
    assert {match.group(2) for match in parsed if match} == {"long_job"}
    assert len(set(randoms)) == len(ids)
    # Not hex or a counter in disguise: a base64url alphabet in use, and no shared prefix.
    assert len(set("".join(randoms))) > 16
    assert len({r[:4] for r in randoms}) == len(ids)


async def _create(client: TasksClient) -> httpx2.Response:
    return await client.send("tools/call", {"name": "long_job", "arguments": {"seconds": 60}}, "long_job")


async def test_a_caller_over_its_task_cap_gets_429_and_others_are_still_admitted(
    serve: Callable[..., ServerThread], token: Callable[..., str]
) -> None:
    server = serve(**task_settings(max_per_principal=2))
    async with httpx2.AsyncClient(base_url=server.url, timeout=30) as http:
        alice, bob = TasksClient(http, token(READ, oid=ALICE)), TasksClient(http, token(READ, oid=oid(2)))
        first, second = [message_of(await _create(alice))["result"]["taskId"] for _ in range(2)]
        third = await _create(alice)
        assert third.status_code == 429, third.text
        assert int(third.headers["retry-after"]) >= 1
        assert "result" not in message_of(third)
        assert message_of(await _create(bob))["result"]["resultType"] == "task"
        # A finished task frees its slot.
        await alice.cancel(first)
        assert (await alice.finished(first))["status"] == "cancelled"
        again = await _create(alice)
        assert again.status_code == 200 and message_of(again)["result"]["resultType"] == "task"
        for task_id in (second, message_of(again)["result"]["taskId"]):
            await alice.cancel(task_id)


async def test_a_server_at_its_overall_task_cap_answers_503(
    serve: Callable[..., ServerThread], token: Callable[..., str]
) -> None:
    server = serve(**task_settings(max_active=2))
    async with httpx2.AsyncClient(base_url=server.url, timeout=30) as http:
        callers = [TasksClient(http, token(READ, oid=oid(n))) for n in (1, 2, 3)]
        running = [message_of(await _create(c))["result"]["taskId"] for c in callers[:2]]
        refused = await _create(callers[2])
        assert refused.status_code == 503, refused.text
        assert int(refused.headers["retry-after"]) >= 1
        await callers[0].cancel(running[0])
        await callers[0].finished(running[0])
        assert (await _create(callers[2])).status_code == 200


def _digest(task_id: str) -> str:
    return "sha256:" + hashlib.sha256(task_id.encode()).hexdigest()[:32]


async def test_audit_records_follow_each_task_by_digest_never_by_id(
    serve: Callable[..., ServerThread], token: Callable[..., str], tmp_path: Path
) -> None:
    server = serve(**task_settings(tmp_path))
    async with httpx2.AsyncClient(base_url=server.url, timeout=30) as http:
        client = TasksClient(http, token(READ), capabilities=ELICITATION)
        asking = (await client.create("asking_report", {"topic": "audit"}))["taskId"]
        await client.status(asking, "input_required")
        await client.update(asking, {"input-0": {"action": "accept", "content": {"archived": False}}})
        await client.finished(asking)
        long = (await client.create("long_job", {"seconds": 60}))["taskId"]
        await client.cancel(long)
        await client.finished(long)

    def actions(task_id: str) -> list[str]:
        return [r["action"] for r in audit_records(tmp_path) if r["task"] == _digest(task_id)]

    await wait_for(lambda: actions(asking)[-1:] == ["completed"] and actions(long)[-1:] == ["cancelled"])
    assert actions(asking) == ["created", "input_requested", "updated", "completed"]
    assert actions(long) == ["created", "cancel_requested", "cancelled"]
    records = audit_records(tmp_path)
    assert all(re.fullmatch(r"sha256:[0-9a-f]{32}", r["task"]) for r in records)
    assert {r["target"] for r in records} == {"asking_report", "long_job"}
    assert {r["principal"]["oid"] for r in records} == {"aaaaaaaa-0000-4000-8000-000000000001"}
    text = (tmp_path / "audit.jsonl").read_text()
    assert asking not in text and long not in text
    assert asking.split(".")[0] not in text and long.split(".")[0] not in text


async def test_no_task_id_token_or_argument_reaches_the_server_logs(
    serve: Callable[..., ServerThread], token: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = serve(**task_settings())
    topic, bearer = "zebra-topic-5521", token(READ)
    async with httpx2.AsyncClient(base_url=server.url, timeout=30) as http:
        client = TasksClient(http, bearer, capabilities=ELICITATION)
        ids = [(await client.create("asking_report", {"topic": topic}))["taskId"]]
        await client.status(ids[0], "input_required")
        await client.update(ids[0], {"input-0": {"action": "accept", "content": {"archived": True}}})
        await client.finished(ids[0])
        ids.append((await client.create("failing_job"))["taskId"])
        await client.finished(ids[1])
        ids.append((await client.create("long_job", {"seconds": 60}))["taskId"])
        await client.cancel(ids[2])
        await client.finished(ids[2])
        await _answer(client, "tasks/get", ids[0], **{"Mcp-Name": _unknown()})  # a refused request, too
    logged = "\n".join(r.getMessage() + repr(r.__dict__) for r in caplog.records)
    assert {r.name.split(".")[0] for r in caplog.records} >= {"app", "mcp"}  # the server's records were heard
    for secret in (*ids, *(i.split(".")[0] for i in ids), bearer, topic):
        assert secret not in logged, secret[:12]
