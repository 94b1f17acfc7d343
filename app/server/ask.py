"""`ask`: one way for a tool to ask the client mid-call, whatever the protocol era and deployment mode.

`await ask.elicit("Delete it?", Confirm)` asks the user, `await ask.sample("Summarise: ...", max_tokens=200)` the
client's model. How the question travels is decided per request:

- 2026-07-28: the input-required style. The call ends with an `InputRequiredResult` naming the question; the client
  answers and retries; the tool body runs again from the top and this time `ask` returns the answer. Answers ride
  `requestState`, which the SDK's boundary seals and binds to the caller, the tool and its arguments, so a client
  can neither forge nor replay them elsewhere. Code before an `ask` may therefore run more than once.
- Handshake era (2025-06-18, 2025-11-25) with a back-channel (a session): pushed mid-call, as `ctx.elicit` and
  `ctx.session.create_message` do.
- Neither (a stateless handshake-era request): a clear tool error, never a hang or a 500.
- In a task (app/tasks/): the question becomes one of the task's `inputRequests`; the body waits, without running
  again, until the client answers with `tasks/update`.

On-behalf-of that needs the user (`ConsentRequired`, app/auth/downstream.py) is asked the same way, as a URL-mode
elicitation of the connect page (app/connect/): at 2026-07-28 an input-required round whose sealed `requestState`
names the pending link; in the handshake era the 2025-11-25 `-32042` error, and `notifications/elicitation/complete`
on the session once the user is done. A client that declared no URL mode gets a tool error without the link.

Written here rather than with the SDK's `Resolve(...)` markers so the question is asked where its answer is used,
in the tool body; the wire shapes (rendered schema, digests, results) are the SDK's own.
"""

from __future__ import annotations

import base64
import hashlib
import json
from contextvars import ContextVar
from typing import Any, TypeVar

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.elicitation import (
    AcceptedElicitation,
    CancelledElicitation,
    DeclinedElicitation,
    ElicitationResult,
    elicit_with_validation,
    render_elicitation_schema,
)
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.request_state import compact_json
from mcp.shared.exceptions import MCPError, NoBackChannelError
from mcp.shared.message import ServerMessageMetadata
from mcp_types import (
    INTERNAL_ERROR,
    ClientCapabilities,
    CreateMessageRequest,
    CreateMessageRequestParams,
    CreateMessageResult,
    ElicitationCapability,
    ElicitRequest,
    ElicitRequestFormParams,
    ElicitResult,
    InputRequiredResult,
    SamplingCapability,
    SamplingMessage,
    TextContent,
)
from mcp_types.version import is_version_at_least
from pydantic import BaseModel, ValidationError

from app.auth.downstream import ConsentRequired
from app.core.binding import bind
from app.server.consent import CONNECT, ask_to_connect
from app.tasks.run import current_run

M = TypeVar("M", bound=BaseModel)
_INPUT_REQUIRED_FROM = "2026-07-28"  # first revision that asks through InputRequiredResult
_STATE_KEY = "app.ask"  # our part of the plaintext requestState (a JSON object)
_REQUEST: ContextVar[ServerRequestContext[Any, Any] | None] = ContextVar("ask_request", default=None)
_ROUND: ContextVar[_Round | None] = ContextVar("ask_round", default=None)


class _NeedInput(MCPError):
    """Raised by `ask` when the answer must come in a later round; an MCPError so the SDK's tool runner passes it
    through untouched (it wraps every other exception) to `AskClient`, which turns it into the InputRequiredResult."""

    def __init__(self, key: str, request: ElicitRequest | CreateMessageRequest, state: str) -> None:
        super().__init__(code=INTERNAL_ERROR, message="input required")
        self.key, self.request, self.state = key, request, state


class _Round:
    """One 2026-07-28 round of a call: the answers recorded in earlier rounds and the one the client just sent."""

    def __init__(self, params: Any) -> None:
        params = params if isinstance(params, dict) else {}
        self.recorded: dict[str, dict[str, Any]] = {}
        self.pending: dict[str, str] = {}
        self.connect: str | None = None  # the connect link asked for in the last round
        raw = params.get("requestState")
        if isinstance(raw, str):  # plaintext here: the SDK's boundary unsealed and verified it
            try:
                decoded = json.loads(raw).get(_STATE_KEY, {})
                self.recorded = dict(decoded.get("answers", {}))
                self.pending = dict(decoded.get("pending", {}))
                self.connect = decoded.get("connect") if isinstance(decoded.get("connect"), str) else None
            except (ValueError, AttributeError, TypeError):
                self.recorded, self.pending, self.connect = {}, {}, None
        responses = params.get("inputResponses")
        self.responses: dict[str, Any] = responses if isinstance(responses, dict) else {}
        self.asked = 0

    def answer(self, request: ElicitRequest | CreateMessageRequest) -> dict[str, Any]:
        """The wire answer to the next question of this body, or `_NeedInput` to ask it."""
        key, digest = f"ask-{self.asked}", _digest(request)
        self.asked += 1
        kept = self.recorded.get(key)
        if kept is not None and kept.get("q") == digest:
            return dict(kept["a"])
        sent = self.responses.get(key)
        # An answer counts only for the exact question the client was shown (the tool may have changed since).
        if isinstance(sent, dict) and self.pending.get(key) == digest:
            self.recorded[key] = {"q": digest, "a": sent}
            return sent
        state = {_STATE_KEY: {"answers": self.recorded, "pending": {key: digest}}}
        raise _NeedInput(key, request, compact_json(state))

    def declined_connect(self) -> bool:
        """The user declined (or dismissed) opening the connect link of the last round."""
        answer = self.responses.get(CONNECT) if self.connect else None
        return isinstance(answer, dict) and answer.get("action") in ("decline", "cancel")

    def connect_state(self, link_id: str) -> str:
        """This round's answers, and the connect link asked for (the server's state rides `requestState`)."""
        return compact_json({_STATE_KEY: {"answers": self.recorded, "pending": {}, "connect": link_id}})


class Ask:
    """Ask the client during a tool call (async tools only): `ask.elicit(...)` the user, `ask.sample(...)` its model.

    Use the `ask` instance from `app`. The framework picks how the question travels (a request over the session, or
    an input-required round at protocol 2026-07-28, when the tool runs again from the top: ask first, then act).
    See docs/tools.md#asking-the-client.

    Example:
        answer = await ask.elicit("How should the note be written?", Style)
        if answer.action == "accept":
            text = await ask.sample(f"Write a {answer.data.tone} note", max_tokens=300)
    """

    async def elicit(self, message: str, schema: type[M]) -> ElicitationResult[M]:
        """Ask the user to fill in `schema` (a pydantic model of primitive fields), showing `message`.

        Returns the outcome: `answer.action` is "accept" (then `answer.data` is a `schema` instance), "decline" or
        "cancel". Raises ToolError when the client cannot be asked or declared no form elicitation.
        """
        ctx = _current("elicit")
        _require(ctx, ClientCapabilities(elicitation=ElicitationCapability()), "elicitation")
        run, round_ = current_run(), _ROUND.get()
        if run is None and round_ is None:
            try:
                return await elicit_with_validation(ctx.session, message, schema, related_request_id=ctx.request_id)
            except NoBackChannelError:
                raise ToolError(_NO_CHANNEL) from None
            except ValueError as exc:  # accepted without content, or content not matching the schema
                raise ToolError(f"the client's answer was not usable: {exc}") from None
        requested = render_elicitation_schema(schema)
        request = ElicitRequest(params=ElicitRequestFormParams(message=message, requested_schema=requested))
        wire = await _answer(request)
        try:
            result = ElicitResult.model_validate(wire)
            if result.action == "accept":
                return AcceptedElicitation(data=schema.model_validate(result.content or {}))
        except ValidationError:
            raise ToolError("the client's answer does not match the requested schema") from None
        return DeclinedElicitation() if result.action == "decline" else CancelledElicitation()

    async def sample(
        self,
        prompt: str | list[SamplingMessage],
        *,
        max_tokens: int,
        system_prompt: str | None = None,
        temperature: float | None = None,
    ) -> str:
        """Ask the client's model to complete `prompt` (text, or the SDK's `SamplingMessage` list); its text reply.

        Raises ToolError when the client cannot be asked, declared no sampling, or replied with something else than
        text.
        """
        ctx = _current("sample")
        _require(ctx, ClientCapabilities(sampling=SamplingCapability()), "sampling")
        messages = (
            [SamplingMessage(role="user", content=TextContent(type="text", text=prompt))]
            if isinstance(prompt, str)
            else prompt
        )
        params = CreateMessageRequestParams(
            messages=messages, max_tokens=max_tokens, system_prompt=system_prompt, temperature=temperature
        )
        if current_run() is None and _ROUND.get() is None:
            try:  # what session.create_message sends, without its 2026-07-28 deprecation warning
                result = await ctx.session.send_request(
                    CreateMessageRequest(params=params),
                    CreateMessageResult,
                    metadata=ServerMessageMetadata(related_request_id=ctx.request_id),
                )
            except NoBackChannelError:
                raise ToolError(_NO_CHANNEL) from None
        else:
            try:
                result = CreateMessageResult.model_validate(await _answer(CreateMessageRequest(params=params)))
            except ValidationError:
                raise ToolError("the client's answer is not a sampling result") from None
        content = result.content
        if isinstance(content, TextContent):
            return content.text
        raise ToolError("the client's model replied with something other than text")


ask = Ask()
_NO_CHANNEL = (
    "this call cannot ask the client: a 2025-11-25 (or older) request without a session has no channel for "
    "server requests; connect with a session (stateful mode) or at protocol 2026-07-28"
)


def _current(what: str) -> ServerRequestContext[Any, Any]:
    ctx = _REQUEST.get()
    if ctx is None:
        raise ToolError(f"ask.{what}() works only inside a tool call")
    return ctx


async def _answer(request: ElicitRequest | CreateMessageRequest) -> dict[str, Any]:
    """The answer to `request`: from the task's `tasks/update` (in a task), or this input-required round's."""
    run = current_run()
    if run is not None:
        return await run.ask(request.model_dump(mode="json", by_alias=True, exclude_none=True))
    round_ = _ROUND.get()
    assert round_ is not None
    return round_.answer(request)


def _require(ctx: ServerRequestContext[Any, Any], capability: ClientCapabilities, name: str) -> None:
    if _ROUND.get() is None and current_run() is None and not ctx.session.can_send_request:
        raise ToolError(_NO_CHANNEL)  # first: a request without a session has no declared capabilities either
    if not ctx.session.check_client_capability(capability):
        raise ToolError(f"the client did not declare the {name} capability, so it cannot be asked")


def _digest(request: ElicitRequest | CreateMessageRequest) -> str:
    rendered = compact_json(request.params.model_dump(mode="json", by_alias=True, exclude_none=True))
    return base64.urlsafe_b64encode(hashlib.sha256(rendered.encode()).digest()[:16]).decode().rstrip("=")


class AskClient:
    """SDK middleware (innermost): makes `ask` work in the tool body, and ends a 2026-07-28 round that needs an
    answer with the InputRequiredResult asking for it (the SDK's boundary then seals its requestState)."""

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method != "tools/call":
            return await call_next(ctx)
        modern = ctx.protocol_version is not None and is_version_at_least(ctx.protocol_version, _INPUT_REQUIRED_FROM)
        modern = modern and current_run() is None  # a task asks through its inputRequests and waits (app/tasks/)
        with bind(_REQUEST, ctx), bind(_ROUND, _Round(ctx.params) if modern else None):
            try:
                return await call_next(ctx)
            except _NeedInput as need:
                result = InputRequiredResult(input_requests={need.key: need.request}, request_state=need.state)
                return result.model_dump(mode="json", by_alias=True, exclude_none=True)
            except ConsentRequired as consent:
                answer: HandlerResult = await ask_to_connect(ctx, consent, _ROUND.get())
                return answer
