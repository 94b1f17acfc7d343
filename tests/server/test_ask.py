"""`ask` (app/server/ask.py): one way for a tool to ask the client, in both protocol eras and both modes.

Driven with the official Python SDK client, with real sampling and elicitation callbacks, against tools/drafting.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx2
import pytest
from mcp_types import (
    CreateMessageRequestParams,
    CreateMessageResult,
    ElicitRequestParams,
    ElicitResult,
    ErrorData,
    TextContent,
)

from tests.support.calls import MODERN_HEADERS, mcp_client, rpc
from tests.support.servers import ServerThread
from tests.support.values import REPO

REPO_TOOLS = REPO / "tools"
SCOPES = "notes.read"


class FakeUser:
    """The client side: a user who picks a style (or declines) and a model that writes what it was asked."""

    def __init__(self, action: str = "accept") -> None:
        self.action = action
        self.asked: list[str] = []
        self.prompts: list[str] = []

    async def elicit(self, context: Any, params: ElicitRequestParams) -> ElicitResult | ErrorData:
        self.asked.append(params.message)
        content = {"tone": "formal", "bullets": True} if self.action == "accept" else None
        return ElicitResult(action=self.action, content=content)

    async def sample(self, context: Any, params: CreateMessageRequestParams) -> CreateMessageResult | ErrorData:
        (message,) = params.messages
        assert isinstance(message.content, TextContent)
        self.prompts.append(message.content.text)
        return CreateMessageResult(
            role="assistant", model="fake", content=TextContent(type="text", text=f"DRAFT<{message.content.text}>")
        )

    def callbacks(self) -> dict[str, Any]:
        return {"elicitation_callback": self.elicit, "sampling_callback": self.sample}


def _serve(serve: Callable[..., ServerThread], **mcp: Any) -> ServerThread:
    return serve(tools={"dir": REPO_TOOLS}, mcp=mcp)


@pytest.mark.parametrize(
    ("mode", "stateless"),
    [("legacy", False), ("2026-07-28", True), ("2026-07-28", False)],
    ids=["2025-11-25-stateful-push", "2026-07-28-stateless-input-required", "2026-07-28-stateful-input-required"],
)
async def test_a_tool_asks_the_user_then_the_model(
    serve: Callable[..., ServerThread], token: Callable[..., str], mode: str, stateless: bool
) -> None:
    server = _serve(serve, stateless=stateless)
    user = FakeUser()
    async with mcp_client(server.url, token(SCOPES), mode=mode, **user.callbacks()) as client:
        result = await client.call_tool("draft_note", {"topic": "the release"})
    assert not result.is_error, result.content
    expected_prompt = "Write a formal note about 'the release', as bullet points."
    assert result.structured_content == {"result": f"DRAFT<{expected_prompt}>"}
    # Each question reached the client exactly once, whichever way it travelled.
    assert user.asked == ["How should the note about 'the release' be written?"]
    assert user.prompts == [expected_prompt]


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_a_declined_question_is_the_tools_to_handle(
    serve: Callable[..., ServerThread], token: Callable[..., str], mode: str
) -> None:
    server = _serve(serve, stateless=mode != "legacy")
    user = FakeUser(action="decline")
    async with mcp_client(server.url, token(SCOPES), mode=mode, **user.callbacks()) as client:
        result = await client.call_tool("draft_note", {"topic": "x"})
    assert result.is_error
    assert "did not choose a style" in str(result.content[0])
    assert user.prompts == []  # the model was never asked


async def test_a_stateless_handshake_era_call_gets_a_clear_tool_error(
    serve: Callable[..., ServerThread], token: Callable[..., str]
) -> None:
    server = _serve(serve, stateless=True)
    user = FakeUser()
    async with mcp_client(server.url, token(SCOPES), mode="legacy", **user.callbacks()) as client:
        result = await client.call_tool("draft_note", {"topic": "x"})
    assert result.is_error
    text = str(result.content[0])
    assert "cannot ask the client" in text and "2026-07-28" in text
    assert user.asked == []


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_a_client_without_the_capability_gets_a_clear_tool_error(
    serve: Callable[..., ServerThread], token: Callable[..., str], mode: str
) -> None:
    server = _serve(serve, stateless=mode != "legacy")
    async with mcp_client(server.url, token(SCOPES), mode=mode) as client:  # no callbacks: nothing declared
        result = await client.call_tool("draft_note", {"topic": "x"})
    assert result.is_error
    assert "did not declare the elicitation capability" in str(result.content[0])


def _modern_draft(params_extra: dict[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
    meta = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "raw-test", "version": "0"},
        "io.modelcontextprotocol/clientCapabilities": {"elicitation": {"form": {}}, "sampling": {}},
    }
    params = {"name": "draft_note", "arguments": {"topic": "x"}, "_meta": meta, **params_extra}
    headers = {**MODERN_HEADERS, "Mcp-Method": "tools/call", "Mcp-Name": "draft_note"}
    return headers, rpc("tools/call", params)


async def test_an_answer_without_the_sealed_state_is_not_taken_and_the_state_is_sealed(
    serve: Callable[..., ServerThread], token: Callable[..., str]
) -> None:
    server = _serve(serve, stateless=True)
    answer = {"action": "accept", "content": {"tone": "brief", "bullets": False}}
    auth = {"Authorization": f"Bearer {token(SCOPES)}"}
    async with httpx2.AsyncClient(timeout=10) as http:
        headers, body = _modern_draft({})
        first = (await http.post(f"{server.url}/mcp", json=body, headers={**headers, **auth})).json()["result"]
        assert first["resultType"] == "input_required"
        assert list(first["inputRequests"]) == ["ask-0"]
        assert "app.ask" not in first["requestState"]  # sealed by the SDK's boundary, not plaintext
        # An answer sent with no state is not taken: the question is asked again.
        headers, body = _modern_draft({"inputResponses": {"ask-0": answer}})
        again = (await http.post(f"{server.url}/mcp", json=body, headers={**headers, **auth})).json()["result"]
        assert again["resultType"] == "input_required" and list(again["inputRequests"]) == ["ask-0"]
        # With the sealed state, the answer is taken and the next question (the model) is asked.
        headers, body = _modern_draft({"inputResponses": {"ask-0": answer}, "requestState": first["requestState"]})
        second = (await http.post(f"{server.url}/mcp", json=body, headers={**headers, **auth})).json()["result"]
        assert second["resultType"] == "input_required"
        (request,) = second["inputRequests"].values()
        assert request["method"] == "sampling/createMessage"
        # The state is bound to the arguments: replayed on another call, it is refused.
        tampered = _modern_draft({"inputResponses": {"ask-0": answer}, "requestState": first["requestState"]})
        tampered[1]["params"]["arguments"] = {"topic": "y"}
        refused = (await http.post(f"{server.url}/mcp", json=tampered[1], headers={**tampered[0], **auth})).json()
    assert refused["error"]["data"] == {"reason": "invalid_request_state"}


def _question(text: str) -> Any:
    from mcp_types import ElicitRequest, ElicitRequestFormParams

    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}}
    return ElicitRequest(params=ElicitRequestFormParams(message=text, requested_schema=schema))


def test_an_answer_counts_only_for_the_question_as_worded_when_asked() -> None:
    import json

    from app.server.ask import _NeedInput, _Round

    with pytest.raises(_NeedInput) as first:
        _Round({}).answer(_question("Delete it?"))
    state = first.value.state
    answer = {"action": "accept", "content": {"ok": True}}
    # Answered, and asked again in the same words: taken, and recorded for later rounds.
    resumed = _Round({"requestState": state, "inputResponses": {"ask-0": answer}})
    assert resumed.answer(_question("Delete it?")) == answer
    # The tool changed its question meanwhile (a redeploy): the answer is not taken, the new question is asked.
    with pytest.raises(_NeedInput):
        _Round({"requestState": state, "inputResponses": {"ask-0": answer}}).answer(_question("Delete everything?"))
    # A recorded answer is reused on later rounds, for the same question only.
    resumed.pending = {}
    with pytest.raises(_NeedInput) as second:
        resumed.answer(_question("Really?"))
    later = json.loads(second.value.state)["app.ask"]
    assert later["answers"]["ask-0"]["a"] == answer and list(later["pending"]) == ["ask-1"]
    assert _Round({"requestState": second.value.state}).answer(_question("Delete it?")) == answer
    with pytest.raises(_NeedInput):
        _Round({"requestState": second.value.state}).answer(_question("Delete all?"))


def test_unreadable_state_asks_again_rather_than_failing() -> None:
    from app.server.ask import _NeedInput, _Round

    for state in ("not json", "[1, 2]", '{"app.ask": "x"}'):
        with pytest.raises(_NeedInput):
            _Round({"requestState": state, "inputResponses": {"ask-0": {"action": "accept"}}}).answer(_question("Q?"))
