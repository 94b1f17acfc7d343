"""Tools, a resource and a prompt whose parameters the framework injects: the caller, a tool secret, a downstream
token. String annotations (`from __future__ import annotations`) on purpose: injection must see through them."""

from __future__ import annotations

import hashlib
import threading
from typing import Annotated, Any

from mcp.server.mcpserver import Context
from pydantic import SecretStr

from app import (
    Caller,
    Downstream,
    Principal,
    Secret,
    current_principal,
    downstream_token,
    prompt,
    resource,
    secret,
    tool,
)

API_KEY = "inject--api-key"
GRAPH = ["https://graph.microsoft.com/User.Read"]


def fingerprint(value: str) -> str:
    """Results never carry a secret or token (the server scrubs them): the tests compare fingerprints."""
    return hashlib.sha256(value.encode()).hexdigest()[:16]


@tool(scopes=["mcp.read"])
def sync_caller(caller: Principal, note: str = "") -> dict[str, Any]:
    """A sync tool (run on a worker thread) that receives the caller."""
    return {
        "oid": caller.oid,
        "is_principal": isinstance(caller, Principal),
        "same_as_accessor": caller == current_principal(),
        "note": note,
        "worker_thread": threading.current_thread() is not threading.main_thread(),
    }


@tool(scopes=["mcp.read"])
async def async_caller(note: str, caller: Annotated[Principal, object()], ctx: Context) -> dict[str, Any]:
    """An async tool whose caller parameter is `Annotated[Principal, <anything>]`, beside the SDK's `Context`."""
    return {
        "oid": caller.oid,
        "same_as_accessor": caller == current_principal(),
        "note": note,
        "has_context": isinstance(ctx, Context),
    }


@tool(scopes=["mcp.read"])
def caller_alias(caller: Caller) -> dict[str, Any]:
    """The public `Caller` alias, as routes spell it."""
    return {"oid": caller.oid, "kind": caller.public_view()["kind"]}


@tool(scopes=["mcp.read"])
def sync_secret(city: str, api_key: Annotated[str, Secret(API_KEY)]) -> dict[str, Any]:
    """A sync tool that receives a tool secret as `str`."""
    return {
        "city": city,
        "type": type(api_key).__name__,
        "fingerprint": fingerprint(api_key),
        "same_as_accessor": api_key == secret(API_KEY).get_secret_value(),
    }


@tool(scopes=["mcp.read"])
async def async_secret(key: Annotated[SecretStr, Secret(API_KEY)], caller: Principal) -> dict[str, Any]:
    """An async tool that receives a tool secret as `SecretStr`, and the caller."""
    return {
        "type": type(key).__name__,
        "fingerprint": fingerprint(key.get_secret_value()),
        "same_as_accessor": key == secret(API_KEY),
        "oid": caller.oid,
    }


@tool(scopes=["mcp.read"], roles=["mcp.read.all"])
async def async_token(token: Annotated[str, Downstream(scopes=GRAPH)]) -> dict[str, Any]:
    """An async tool that receives an on-behalf-of token."""
    return {"fingerprint": fingerprint(token), "same_as_accessor": token == await downstream_token(GRAPH)}


@tool(scopes=["mcp.read"])
def sync_token(token: Annotated[str, Downstream(scopes=GRAPH)]) -> dict[str, Any]:
    """A sync tool that receives an on-behalf-of token (obtained on the event loop, before the thread runs)."""
    return {"fingerprint": fingerprint(token), "stand_in_issued": token.startswith("downstream-")}


@resource("inject://caller", scopes=["mcp.read"])
def caller_resource(caller: Principal) -> str:
    """A static resource that receives the caller."""
    return f"oid={caller.oid}"


@resource("inject://notes/{topic}", scopes=["mcp.read"])
async def caller_template(topic: str, caller: Caller) -> str:
    """A resource template: `topic` from the URI, the caller injected."""
    return f"{topic} for oid={caller.oid}"


@prompt(scopes=["mcp.read"])
def caller_prompt(topic: str, caller: Principal) -> str:
    """A prompt whose caller is injected."""
    return f"Summarise {topic} for oid={caller.oid}"
