"""Hostile input on /mcp: random bodies, headers and methods, with and without a valid token, never give a 500."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from app.observability.audit import verify
from tests.support.calls import modern_call
from tests.support.servers import ServerThread

# Tools that return at once whatever the arguments (no sleeps, no caller-sized results).
INTERNAL_ERROR = -32603
TOOLS = ["probe_read", "probe_whoami", "nested_echo", "probe_write", "probe_app_job"]
METHODS = [
    "initialize",
    "ping",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/read",
    "prompts/list",
    "prompts/get",
    "server/discover",
    "notifications/initialized",
    "logging/setLevel",
]
HEADER_NAMES = [
    "Content-Type",
    "Accept",
    "MCP-Protocol-Version",
    "Mcp-Session-Id",
    "Mcp-Method",
    "Mcp-Name",
    "Last-Event-ID",
    "Origin",
    "Transfer-Encoding-Hint",
]

header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60).map(str.strip)  # h11 rule
# JSON may escape a lone surrogate ("\\ud800"); json.dumps writes one for text that holds it.
lone_surrogates = st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=2)
text = st.text(max_size=30) | st.tuples(st.text(max_size=5), lone_surrogates).map("".join)
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), text)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
params = st.one_of(
    json_value,
    st.fixed_dictionaries(
        {"name": st.sampled_from(TOOLS) | st.text(max_size=20)},
        optional={
            "arguments": json_value,
            "uri": st.text(max_size=40),
            "_meta": st.dictionaries(st.sampled_from(["io.modelcontextprotocol/protocolVersion", "x"]), json_value),
        },
    ),
)
rpc = st.fixed_dictionaries(
    {"method": st.sampled_from(METHODS) | st.text(max_size=20)},
    optional={"jsonrpc": st.sampled_from(["2.0", "1.0"]) | json_leaf, "id": json_value, "params": params},
)
bodies = st.one_of(
    st.binary(max_size=512),
    rpc.map(lambda m: json.dumps(m).encode()),
    st.lists(rpc, max_size=3).map(lambda m: json.dumps(m).encode()),
    json_value.map(lambda v: json.dumps(v).encode()),
)
auth_kinds = st.sampled_from(["none", "valid", "valid", "valid", "garbage", "twice", "query"])


@st.composite
def modern_requests(draw: st.DrawFn) -> tuple[dict[str, str], bytes]:
    """Well-formed 2026-07-28 envelopes (matching headers and _meta) around random methods, names and arguments."""
    method = draw(st.sampled_from(METHODS))
    name = draw(st.sampled_from(TOOLS) | st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=20))
    headers, body = modern_call(name, draw(st.dictionaries(st.text(max_size=10), json_value, max_size=4)))
    headers = {**headers, "Mcp-Method": method, "Content-Type": "application/json"}
    request_id = draw(st.integers(0, 2**31) | st.text(max_size=8) | st.integers(0, 9) | json_value)
    body = {**body, "method": method, "id": request_id}
    if draw(st.integers(0, 3)) == 0:
        body["params"] = {
            **body["params"],
            **draw(st.dictionaries(st.sampled_from(["name", "uri", "_meta"]), json_value)),
        }
    return headers, json.dumps(body).encode()


def test_mcp_endpoint_never_answers_500(serve: Callable[..., ServerThread], token: Callable[..., str]) -> None:
    server = serve(
        rate_limit={"default": "100000/minute", "unauthenticated": "100000/minute"},
        security={"tool_timeout_seconds": 2, "max_body_bytes": 4096},
    )
    valid = token("mcp.read files.write")

    @settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        method=st.sampled_from(["POST"] * 6 + ["GET", "DELETE", "PUT"]),
        body=bodies,
        headers=st.dictionaries(st.sampled_from(HEADER_NAMES), header_text, max_size=5),
        accept_both=st.booleans(),
        auth=auth_kinds,
        modern=st.none() | modern_requests(),
        disturb=st.integers(0, 1),
    )
    def hostile(
        method: str,
        body: bytes,
        headers: dict[str, str],
        accept_both: bool,
        auth: str,
        modern: tuple[dict[str, str], bytes] | None,
        disturb: int,
    ) -> None:
        if modern is not None:  # a well-formed envelope, with at most one header disturbed
            method, body, headers = "POST", modern[1], {**modern[0], **dict(list(headers.items())[:disturb])}
            accept_both = True
        sent: list[tuple[str, str]] = list(headers.items())
        if accept_both:
            sent.append(("Accept", "application/json, text/event-stream"))
        url = "/mcp"
        if auth in {"valid", "twice", "query"}:
            sent.append(("Authorization", f"Bearer {valid}"))
        if auth == "twice":
            sent.append(("Authorization", f"Bearer {valid}"))
        if auth == "garbage":
            sent.append(("Authorization", "Bearer eyJhbGciOiJub25lIn0.e30."))
        if auth == "query":
            url += f"?access_token={valid}"
        with http.stream(method, url, content=body if method != "GET" else None, headers=sent) as response:
            assert response.status_code < 500, (response.status_code, response.read()[:500])
            event(f"HTTP {response.status_code}")  # shown by --hypothesis-show-statistics
            if response.headers.get("content-type", "").startswith("text/event-stream") and method == "GET":
                return  # the SDK's standalone SSE stream stays open by design; its status is what counts
            text = response.read().decode(errors="replace")
        assert "Traceback" not in text
        if response.status_code == 200 and response.headers.get("content-type", "").startswith("application/json"):
            _check_jsonrpc(json.loads(text))

    with httpx2.Client(base_url=server.url, timeout=10) as http:
        hostile()


def _check_jsonrpc(payload: Any) -> None:
    assert isinstance(payload, dict) and payload.get("jsonrpc") == "2.0"
    assert "result" in payload or "error" in payload
    error = payload.get("error")
    assert not (isinstance(error, dict) and error.get("code") == INTERNAL_ERROR), payload  # a 500 in a 200


async def test_a_lone_surrogate_is_a_parse_error_on_both_protocols_and_a_pair_is_text(
    serve: Callable[..., ServerThread], token: Callable[..., str], tmp_path: Path
) -> None:
    """json accepts "\\ud800" alone, and no UTF-8 log, audit line or downstream call can carry it."""
    audit = tmp_path / "audit.jsonl"
    server = serve(audit={"sink": f"file:{audit}"})
    auth = {"Authorization": f"Bearer {token()}", "Content-Type": "application/json"}
    legacy = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-11-25"}
    async with httpx2.AsyncClient(base_url=server.url, timeout=10) as http:
        answers = []
        for note in ["\ud800", "a\udfff", "\ud83d\ude00"]:  # two lone surrogates, then a valid pair (an emoji)
            headers, body = modern_call("probe_read", {"note": note})
            answers.append(await http.post("/mcp", content=json.dumps(body), headers={**headers, **auth}))
        call: dict[str, Any] = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "probe_read"}}
        call["params"]["arguments"] = {"note": "\ud800"}
        answers.append(await http.post("/mcp", content=json.dumps(call), headers={**legacy, **auth}))
    assert [a.status_code for a in answers] == [400, 400, 200, 400]
    for refused in answers[:2] + answers[3:]:
        assert refused.json()["error"] == {"code": -32700, "message": "Parse error: a string holds a lone surrogate"}
    assert answers[2].json()["result"]["isError"] is False
    assert verify(audit).ok and verify(audit).records == 4
    records = [json.loads(line) for line in audit.read_text(encoding="utf-8").splitlines()]
    assert [(r["event"], r.get("reason")) for r in records if r["event"] == "authz_denied"] == [
        ("authz_denied", "parse_error")
    ] * 3  # refused before dispatch, and audited; the emoji call is the fourth record


def test_get_with_last_event_id_is_a_4xx_not_a_500(
    serve: Callable[..., ServerThread], token: Callable[..., str]
) -> None:
    """Found by the fuzzer: the SDK returns without any response when asked to resume with no event store. Stateless,
    a GET can carry nothing and is 405 before the SDK; in a session, a resume with no event store, or naming no
    event of this session, is refused with 400."""
    headers = {"Authorization": f"Bearer {token()}", "Accept": "text/event-stream", "Last-Event-ID": "0"}
    with httpx2.Client(base_url=serve(mcp={"stateless": True}).url, timeout=10) as http:
        assert http.get("/mcp", headers=headers).status_code == 405
    for store in ("off", "memory"):
        with httpx2.Client(base_url=serve(mcp={"event_store": store}).url, timeout=10, headers=headers) as http:
            session = _session(http)
            response = http.get("/mcp", headers={**headers, **session, "MCP-Protocol-Version": "2025-11-25"})
        assert response.status_code == 400, store
        assert response.json()["error"]["message"] in {
            "request not supported by this server",
            "Last-Event-ID names no event of this session",
        }


# ---- Wrong JSON types in every field of every method, both protocol eras, stateless and stateful ----------
WRONG_TYPES = [{"a": 1}, [1, "x"], 7, 1.5, True, False, None, "text", ""]
VALID_PARAMS: dict[str, dict[str, Any]] = {
    "initialize": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "fuzz", "version": "0"},
    },
    "ping": {},
    "server/discover": {},
    "tools/list": {"cursor": "0"},
    "tools/call": {"name": "probe_read", "arguments": {"note": "x"}},
    "prompts/list": {},
    "prompts/get": {"name": "no_such_prompt", "arguments": {"a": "b"}},
    "resources/list": {},
    "resources/templates/list": {},
    "resources/read": {"uri": "probe://counter"},
    "resources/subscribe": {"uri": "probe://counter"},
    "resources/unsubscribe": {"uri": "probe://counter"},
    "logging/setLevel": {"level": "info"},
    "completion/complete": {"ref": {"type": "ref/prompt", "name": "x"}, "argument": {"name": "a", "value": ""}},
    "subscriptions/listen": {"notifications": {"resourceSubscriptions": ["probe://counter"]}},
    "notifications/initialized": {},
    "notifications/cancelled": {"requestId": 1, "reason": "x"},
    "notifications/progress": {"progressToken": 1, "progress": 1},
    "notifications/roots/list_changed": {},
}
FIELD_PATHS = [
    ("method",),
    ("id",),
    ("jsonrpc",),
    ("params",),
    ("params", "name"),
    ("params", "uri"),
    ("params", "arguments"),
    ("params", "ref"),
    ("params", "ref", "type"),
    ("params", "ref", "name"),
    ("params", "ref", "uri"),
    ("params", "argument"),
    ("params", "argument", "value"),
    ("params", "_meta"),
    ("params", "_meta", "io.modelcontextprotocol/protocolVersion"),
    ("params", "_meta", "progressToken"),
    ("params", "level"),
    ("params", "cursor"),
    ("params", "notifications"),
    ("params", "notifications", "resourceSubscriptions"),
    ("params", "protocolVersion"),
    ("params", "capabilities"),
    ("params", "clientInfo"),
    ("params", "requestId"),
    ("params", "progressToken"),
]


def _message(era: str, method: str) -> tuple[dict[str, str], dict[str, Any]]:
    params = json.loads(json.dumps(VALID_PARAMS[method]))
    body: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params}
    if not method.startswith("notifications/"):
        body["id"] = 1
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    if era == "legacy":
        return {**headers, "MCP-Protocol-Version": "2025-11-25"}, body
    modern_headers, modern = modern_call("probe_read")
    params["_meta"] = modern["params"]["_meta"]
    return {**headers, **modern_headers, "Mcp-Method": method}, body


def _set(body: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    """Put `value` at `path`, creating the objects on the way (replacing any that are not objects)."""
    node = body
    for key in path[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[path[-1]] = value


def _session(http: httpx2.Client) -> dict[str, str]:
    """A 2025-11-25 session (stateful mode): initialize, then `notifications/initialized`."""
    headers, body = _message("legacy", "initialize")
    opened = http.post("/mcp", json=body, headers=headers)
    assert opened.status_code == 200, opened.text
    session = {"Mcp-Session-Id": opened.headers["mcp-session-id"]}
    headers, body = _message("legacy", "notifications/initialized")
    assert http.post("/mcp", json=body, headers={**headers, **session}).status_code == 202
    return session


@pytest.mark.parametrize("stateless", [True, False], ids=["stateless", "stateful"])
def test_every_field_of_every_method_with_a_wrong_json_type_is_a_clear_error(
    serve: Callable[..., ServerThread], token: Callable[..., str], stateless: bool
) -> None:
    """`method`, `id`, `params`, `jsonrpc` and each params field, in both eras: a 4xx or a JSON-RPC error that is
    not an internal error, never a 500. The `method` field is tried with every wrong type for every method; the rest
    are drawn by hypothesis."""
    server = serve(
        mcp={"stateless": stateless},
        rate_limit={"default": "100000/minute"},  # the fuzzer is one caller; its budget is not under test
        security={"tool_timeout_seconds": 2},
    )
    auth = {"Authorization": f"Bearer {token('mcp.read files.write')}"}

    def send(http: httpx2.Client, era: str, method: str, path: tuple[str, ...], value: Any) -> None:
        headers, body = _message(era, method)
        _set(body, path, value)
        headers = {**headers, **(session if era == "legacy" and not stateless else {})}
        with http.stream("POST", "/mcp", content=json.dumps(body), headers=headers) as response:
            where = (era, method, ".".join(path), value, response.status_code)
            assert response.status_code < 500, where
            content_type = response.headers.get("content-type", "")
            if content_type.startswith("text/event-stream"):
                if method == "subscriptions/listen":
                    return  # a listen stream that opened stays open by design: its status is what counts
                lines = response.read().decode().splitlines()
                # Resumable streams open with a priming event: an id and empty data (2025-11-25 SSE polling).
                frames = [ln[5:] for ln in lines if ln.startswith("data:") and ln[5:].strip()]
                for frame in frames:
                    _check_jsonrpc(json.loads(frame))
            elif response.status_code == 200 and content_type.startswith("application/json"):
                _check_jsonrpc(json.loads(response.read()))
            else:
                assert "Traceback" not in response.read().decode(errors="replace"), where

    with httpx2.Client(base_url=server.url, timeout=30, headers=auth) as http:
        session = {} if stateless else _session(http)
        for era in ("legacy", "modern"):
            for method in VALID_PARAMS:
                for value in WRONG_TYPES:
                    send(http, era, method, ("method",), value)

        @settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
        @given(
            era=st.sampled_from(["legacy", "modern"]),
            method=st.sampled_from(sorted(VALID_PARAMS)),
            path=st.sampled_from(FIELD_PATHS[1:]),
            value=st.sampled_from(WRONG_TYPES),
        )
        def wrong_type(era: str, method: str, path: tuple[str, ...], value: Any) -> None:
            send(http, era, method, path, value)

        wrong_type()
