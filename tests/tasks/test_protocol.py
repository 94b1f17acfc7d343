"""The Tasks extension (`io.modelcontextprotocol/tasks`) on the wire, as a client written from the extension's text
sees it (tests/support/tasks.py): discovery, create -> poll -> input_required -> tasks/update -> completed, cancel,
terminal states, failures, and that no task ever reaches a client that did not declare the extension.

Production settings, a real uvicorn, Entra stand-in tokens; the tools are tests/support/task_tools/jobs.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp.shared.exceptions import MCPError

from tests.support.calls import mcp_client
from tests.support.servers import ServerThread
from tests.support.tasks import (
    ELICITATION,
    EXTENSION,
    TasksClient,
    call_result,
    handshake_request,
    is_ack,
    task_settings,
    wait_for,
)

READ = "notes.read"
ANSWER = {"action": "accept", "content": {"archived": True}}


@pytest.fixture
def server(serve: Callable[..., ServerThread]) -> ServerThread:
    return serve(**task_settings())


@pytest.fixture
async def http(server: ServerThread) -> Any:
    async with httpx2.AsyncClient(base_url=server.url, timeout=30) as client:
        yield client


@pytest.fixture
def client(http: httpx2.AsyncClient, token: Callable[..., str]) -> TasksClient:
    """A client that declares the extension (and elicitation, for the asking tool)."""
    return TasksClient(http, token(READ), capabilities=ELICITATION)


@pytest.fixture
def plain(http: httpx2.AsyncClient, token: Callable[..., str]) -> TasksClient:
    """The same user and app, without the extension in its requests."""
    return TasksClient(http, token(READ), declare=False, capabilities=ELICITATION)


async def test_server_discover_advertises_the_tasks_extension(client: TasksClient) -> None:
    discovered = await client.discover()
    assert discovered["capabilities"]["extensions"][EXTENSION] == {}
    assert "2026-07-28" in discovered["supportedVersions"]


async def test_an_asking_task_waits_for_its_answer_and_ends_with_the_synchronous_calls_result(
    client: TasksClient, plain: TasksClient
) -> None:
    handle = await client.create("asking_report", {"topic": "budget"})
    assert handle["status"] == "working"
    assert {"taskId", "createdAt", "lastUpdatedAt", "ttlMs", "pollIntervalMs"} <= handle.keys()
    task_id = handle["taskId"]

    asked = await client.status(task_id, "input_required")
    assert asked["status"] == "input_required", asked
    (key,) = asked["inputRequests"]
    request = asked["inputRequests"][key]
    assert request["method"] == "elicitation/create"
    assert "budget" in request["params"]["message"]
    assert is_ack(await client.update(task_id, {key: ANSWER}))

    done = await client.finished(task_id)
    assert done["status"] == "completed", done
    assert "inputRequests" not in done
    # The same tool, called synchronously at 2026-07-28: input_required, then the retry with the same answer.
    first = await plain.call("asking_report", {"topic": "budget"})
    assert first["resultType"] == "input_required"
    (sync_key,) = first["inputRequests"]
    assert first["inputRequests"][sync_key]["params"] == request["params"]  # the very same question
    again = await plain.call(
        "asking_report",
        {"topic": "budget"},
        inputResponses={sync_key: ANSWER},
        requestState=first["requestState"],
    )
    assert again.get("resultType", "complete") == "complete", again
    assert call_result(done["result"]) == call_result(again)
    assert done["result"]["structuredContent"] == {"result": "report on budget: archived=True"}


async def test_a_cancelled_task_is_cancelled_and_its_tool_saw_the_cancellation(
    serve: Callable[..., ServerThread], token: Callable[..., str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASK_TOOL_MARKS", str(tmp_path))  # read by the tool, in this process's server
    server = serve(**task_settings())
    async with httpx2.AsyncClient(base_url=server.url, timeout=30) as http:
        client = TasksClient(http, token(READ))
        task_id = (await client.create("long_job", {"seconds": 60, "run": "cancel-me"}))["taskId"]
        await wait_for((tmp_path / "cancel-me.started").exists)
        assert is_ack(await client.cancel(task_id))
        ended = await client.finished(task_id)
    assert ended["status"] == "cancelled", ended
    assert "result" not in ended
    await wait_for((tmp_path / "cancel-me.cancelled").exists)
    assert not (tmp_path / "cancel-me.finished").exists()


async def test_a_terminal_state_never_changes(client: TasksClient) -> None:
    task_id = (await client.create("long_job", {"seconds": 0.05}))["taskId"]
    done = await client.finished(task_id)
    assert done["status"] == "completed"
    assert is_ack(await client.cancel(task_id))  # acknowledged, and nothing happens
    assert is_ack(await client.update(task_id, {"input-0": ANSWER}))
    after = await client.get(task_id)
    assert after["status"] == "completed"
    assert after["result"] == done["result"] and after["lastUpdatedAt"] == done["lastUpdatedAt"]


async def test_a_tool_error_completes_the_task_with_an_error_result(client: TasksClient) -> None:
    task_id = (await client.create("failing_job"))["taskId"]
    done = await client.finished(task_id)
    assert done["status"] == "completed", done  # a tool error is a result, not a JSON-RPC failure
    assert done["result"]["isError"] is True
    assert "the report could not be built" in done["result"]["content"][0]["text"]
    assert "error" not in done


async def test_a_plain_def_tool_runs_as_a_task_with_the_synchronous_calls_result(
    client: TasksClient, plain: TasksClient
) -> None:
    task_id = (await client.create("blocking_job", {"seconds": 0.05}))["taskId"]
    done = await client.finished(task_id)
    assert done["status"] == "completed", done
    sync = await plain.call("blocking_job", {"seconds": 0.05})
    assert sync.get("resultType", "complete") == "complete"
    assert call_result(done["result"]) == call_result(sync)
    assert done["result"]["structuredContent"] == {"result": "blocking done"}


async def test_progress_shows_as_the_status_message_while_working(client: TasksClient) -> None:
    task_id = (await client.create("long_job", {"seconds": 60}))["taskId"]
    working = await client.poll(task_id, lambda t: str(t.get("statusMessage", "")).startswith("step "))
    assert working["status"] == "working"
    assert working["statusMessage"].endswith(" of 1200")
    assert is_ack(await client.cancel(task_id))
    assert (await client.finished(task_id))["status"] == "cancelled"


async def test_answers_to_questions_not_outstanding_are_acknowledged_and_ignored(client: TasksClient) -> None:
    task_id = (await client.create("asking_report", {"topic": "keys"}))["taskId"]
    asked = await client.status(task_id, "input_required")
    assert list(asked["inputRequests"]) == ["input-0"]
    assert is_ack(await client.update(task_id, {"input-7": ANSWER, "never-asked": ANSWER}))
    still = await client.get(task_id)
    assert still["status"] == "input_required"
    assert still["inputRequests"] == asked["inputRequests"]
    # The real answer is still taken; answering it twice changes nothing more.
    assert is_ack(await client.update(task_id, {"input-0": ANSWER}))
    assert is_ack(await client.update(task_id, {"input-0": {"action": "decline"}}))
    done = await client.finished(task_id)
    assert done["result"]["structuredContent"] == {"result": "report on keys: archived=True"}


async def test_without_the_declaration_a_task_tool_answers_with_a_plain_result(plain: TasksClient) -> None:
    result = await plain.call("long_job", {"seconds": 0.05})
    assert result.get("resultType", "complete") == "complete"
    assert "taskId" not in result
    assert result["structuredContent"] == {"result": "done after 0.05 s"}


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_the_official_sdk_client_gets_plain_results_and_never_a_task(
    server: ServerThread, token: Callable[..., str], mode: str
) -> None:
    async with mcp_client(server.url, token(READ), mode=mode) as sdk:
        result = await sdk.call_tool("long_job", {"seconds": 0.05})
        assert not result.is_error
        assert result.structured_content == {"result": "done after 0.05 s"}
        with pytest.raises(MCPError) as refused:
            await sdk.call_tool("only_as_task", {"n": 2})
    assert refused.value.error.code == -32021


async def test_a_task_only_tool_without_the_declaration_names_the_missing_capability(
    client: TasksClient, plain: TasksClient
) -> None:
    refused = await plain.rpc("tools/call", {"name": "only_as_task", "arguments": {"n": 2}}, "only_as_task")
    assert refused["error"]["code"] == -32021
    assert EXTENSION in refused["error"]["data"]["requiredCapabilities"]["extensions"]
    task_id = (await client.create("only_as_task", {"n": 2}))["taskId"]
    assert (await client.finished(task_id))["result"]["structuredContent"] == {"result": 4}


async def test_a_tool_that_never_runs_as_a_task_answers_a_declaring_client_plainly(client: TasksClient) -> None:
    result = await client.call("plain_tool", {"n": 1})
    assert result.get("resultType", "complete") == "complete" and "taskId" not in result
    assert result["structuredContent"] == {"result": 2}


async def test_tasks_methods_do_not_exist_in_the_handshake_era(
    server: ServerThread, client: TasksClient, http: httpx2.AsyncClient, token: Callable[..., str]
) -> None:
    task_id = (await client.create("long_job", {"seconds": 0.05}))["taskId"]
    await client.finished(task_id)
    for method in ("tasks/get", "tasks/cancel"):
        answer = await handshake_request(http, token(READ), method, {"taskId": task_id})
        assert answer["error"]["code"] == -32601, answer  # METHOD_NOT_FOUND
        assert "result" not in answer


async def test_a_task_past_its_run_deadline_ends_with_the_timeout_tool_error_and_its_tool_is_cancelled(
    serve: Callable[..., ServerThread], token: Callable[..., str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASK_TOOL_MARKS", str(tmp_path))
    server = serve(**task_settings(max_run_seconds=1, ttl_seconds=60))
    async with httpx2.AsyncClient(base_url=server.url, timeout=30) as http:
        client = TasksClient(http, token(READ))
        task_id = (await client.create("long_job", {"seconds": 60, "run": "overdue"}))["taskId"]
        done = await client.finished(task_id)
    assert done["status"] == "completed", done  # the timed-out call's tool error, as a result
    assert done["result"]["isError"] is True
    assert "did not finish within 1 s" in done["result"]["content"][0]["text"]
    await wait_for((tmp_path / "overdue.cancelled").exists)
    assert not (tmp_path / "overdue.finished").exists()


async def test_a_task_cancelled_while_waiting_for_input_takes_no_later_answer(client: TasksClient) -> None:
    task_id = (await client.create("asking_report", {"topic": "late"}))["taskId"]
    await client.status(task_id, "input_required")
    assert is_ack(await client.cancel(task_id))
    cancelled = await client.finished(task_id)
    assert cancelled["status"] == "cancelled" and "inputRequests" not in cancelled
    assert is_ack(await client.update(task_id, {"input-0": ANSWER}))
    assert (await client.get(task_id))["status"] == "cancelled"


async def test_tasks_methods_refuse_a_request_that_does_not_declare_the_extension(
    client: TasksClient, plain: TasksClient
) -> None:
    """The extension's text: servers MUST return Missing Required Client Capability for non-declaring clients
    issuing tasks/get, tasks/update and tasks/cancel (the code is the 2026-07-28 one, as for tools/call)."""
    task_id = (await client.create("long_job", {"seconds": 60}))["taskId"]
    try:
        for method in ("tasks/get", "tasks/update", "tasks/cancel"):
            extra: dict[str, object] = {"inputResponses": {}} if method == "tasks/update" else {}
            refused = await plain.rpc(method, {"taskId": task_id, **extra}, task_id)
            assert "result" not in refused, (method, refused)
            assert refused["error"]["code"] == -32021
            assert EXTENSION in refused["error"]["data"]["requiredCapabilities"]["extensions"]
    finally:
        await client.cancel(task_id)


@pytest.mark.parametrize("arguments", ["not-an-object", [1], 5], ids=["string", "array", "number"])
async def test_malformed_arguments_get_the_error_the_synchronous_call_gets(
    client: TasksClient, plain: TasksClient, arguments: Any
) -> None:
    """The extension's text: a task's outcome is exactly what the request would have returned (a JSON-RPC error:
    `failed` with that error). Refusing the request at once is as good; an internal error is not."""
    sync = (await plain.rpc("tools/call", {"name": "long_job", "arguments": arguments}, "long_job"))["error"]
    assert sync["code"] == -32602
    answer = await client.rpc("tools/call", {"name": "long_job", "arguments": arguments}, "long_job")
    if "error" in answer:
        assert answer["error"]["code"] == sync["code"]
        return
    failed = await client.finished(answer["result"]["taskId"])
    assert failed["status"] == "failed"
    assert (failed["error"]["code"], failed["error"]["message"]) == (sync["code"], sync["message"])


async def test_a_listen_for_task_notifications_needs_the_declaration_and_acknowledges_no_task(
    client: TasksClient, plain: TasksClient
) -> None:
    """No `notifications/tasks` are sent (clients poll): a declaring client's listen is acknowledged without task
    ids; a non-declaring client asking for them is refused, as the extension says it MUST be."""
    task_id = (await client.create("long_job", {"seconds": 0}))["taskId"]
    listen = {"notifications": {"taskIds": [task_id]}}
    refused = await plain.rpc("subscriptions/listen", listen)
    assert refused["error"]["code"] == -32021, refused
    assert EXTENSION in refused["error"]["data"]["requiredCapabilities"]["extensions"]
    async with client.http.stream("POST", client.path, **_listen_request(client, listen)) as stream:
        assert stream.status_code == 200
        async for line in stream.aiter_lines():
            if line.startswith("data:"):
                acknowledged = json.loads(line[5:])
                break
    assert acknowledged["method"] == "notifications/subscriptions/acknowledged", acknowledged
    assert not acknowledged["params"]["notifications"].get("taskIds")


def _listen_request(client: TasksClient, params: dict[str, Any]) -> dict[str, Any]:
    headers, body = client.request("subscriptions/listen", params, None)
    return {"json": body, "headers": headers}
