"""Injected tool parameters: the caller, a tool secret and an on-behalf-of token are filled in by
the framework, never appear in `inputSchema`, and cannot be supplied by a caller. Real uvicorn, real tokens from the
Entra stand-in (over TLS, as MSAL needs), the real on-behalf-of exchange, secrets read from a secrets directory."""

from __future__ import annotations

import hashlib
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS

from app.catalog.discovery import discover
from app.catalog.registry import ToolDiscoveryError
from app.main import create_app
from app.secrets.store import SecretsError
from app.toolkit.toolslock import current_for
from tests.support.calls import mcp_client
from tests.support.entra import EntraStandIn
from tests.support.servers import ServerThread, free_port
from tests.support.values import CLIENT_ID, CLIENT_SECRET, REPO, SUPPORT, TENANT, settings_for

INJECTION_TOOLS = SUPPORT / "injection_tools"
API_KEY_VALUE = "inject-api-key-value-7f3c9a"  # a test secret, served from the secrets directory
PROTOCOLS = {"legacy": "2025-11-25", "2026-07-28": "2026-07-28"}
INJECTED = {"caller", "api_key", "key", "token"}


def _fingerprint(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:16]


@pytest.fixture
def served(
    entra_tls: tuple[EntraStandIn, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Any]:
    """The app on the injection tools, with a client secret for on-behalf-of and the tool secret in a directory."""
    entra, cert = entra_tls
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # httpx2 (JWKS) trusts the stand-in's certificate
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))  # so does MSAL's requests session
    secrets_dir = tmp_path / "run-secrets"
    secrets_dir.mkdir()
    (secrets_dir / "inject__api_key").write_text(API_KEY_VALUE)
    port = free_port()
    settings = settings_for(
        entra,
        port,
        azuread={"client_secret": CLIENT_SECRET},
        tools={"dir": INJECTION_TOOLS},
        _secrets_dir=secrets_dir,
    )
    with ServerThread(create_app(settings), port=port) as server:
        server.entra = entra  # type: ignore[attr-defined]
        yield server


def _user_token(entra: EntraStandIn, oid: str = "0b1d0000-0000-4000-8000-0000000000a1") -> str:
    return entra.token(tenant=TENANT, audience=CLIENT_ID, scopes="mcp.read", oid=oid)


async def _call(client: Client, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(name, arguments)
    assert not result.is_error, result.content
    assert isinstance(result.structured_content, dict)
    return dict(result.structured_content)


@pytest.mark.parametrize("mode", PROTOCOLS)
async def test_injected_parameters_are_absent_from_input_schema_and_correct_at_call_time(
    served: Any, mode: str
) -> None:
    entra: EntraStandIn = served.entra
    oid = "0b1d0000-0000-4000-8000-0000000000a1"
    inbound = _user_token(entra, oid)
    async with mcp_client(served.url, inbound, mode=mode) as client:
        assert client.session.protocol_version == PROTOCOLS[mode]
        tools = {t.name: t.input_schema for t in (await client.list_tools()).tools}
        # Absent from the schema: no injected name among the properties or the required list.
        assert tools["sync_caller"]["properties"].keys() == {"note"}
        assert tools["async_caller"]["properties"].keys() == {"note"}
        assert tools["async_caller"]["required"] == ["note"]
        assert tools["caller_alias"]["properties"] == {}
        assert tools["sync_secret"]["properties"].keys() == {"city"}
        assert tools["sync_secret"]["required"] == ["city"]
        assert tools["async_secret"]["properties"] == {}
        assert tools["async_token"]["properties"] == {} and tools["sync_token"]["properties"] == {}
        for schema in tools.values():
            assert not INJECTED & set(schema.get("properties", {})) and not INJECTED & set(schema.get("required", []))

        # Correct at call time: sync tools on a worker thread, async tools on the loop.
        sync_caller = await _call(client, "sync_caller", {"note": "hi"})
        assert sync_caller == {
            "oid": oid,
            "is_principal": True,
            "same_as_accessor": True,
            "note": "hi",
            "worker_thread": True,
        }
        assert await _call(client, "async_caller", {"note": "x"}) == {
            "oid": oid,
            "same_as_accessor": True,
            "note": "x",
            "has_context": True,
        }
        assert await _call(client, "caller_alias", {}) == {"oid": oid, "kind": "user"}
        assert await _call(client, "sync_secret", {"city": "Oslo"}) == {
            "city": "Oslo",
            "type": "str",
            "fingerprint": _fingerprint(API_KEY_VALUE),
            "same_as_accessor": True,
        }
        assert await _call(client, "async_secret", {}) == {
            "type": "SecretStr",
            "fingerprint": _fingerprint(API_KEY_VALUE),
            "same_as_accessor": True,
            "oid": oid,
        }
        first = await _call(client, "async_token", {})
        assert first["same_as_accessor"] is True
        second = await _call(client, "sync_token", {})
        assert second == {"fingerprint": first["fingerprint"], "stand_in_issued": True}  # MSAL's cache: same token

    # The downstream token came from a real on-behalf-of exchange of the caller's token, done once.
    (exchange,) = entra.token_requests
    assert exchange["requested_token_use"] == "on_behalf_of" and exchange["assertion"] == inbound
    assert "https://graph.microsoft.com/User.Read" in exchange["scope"]


@pytest.mark.parametrize("mode", PROTOCOLS)
async def test_resources_and_prompts_get_the_caller_too(served: Any, mode: str) -> None:
    oid = "0b1d0000-0000-4000-8000-0000000000b2"
    async with mcp_client(served.url, _user_token(served.entra, oid), mode=mode) as client:
        templates = (await client.list_resource_templates()).resource_templates
        assert [t.uri_template for t in templates] == ["inject://notes/{topic}"]
        (listed_prompt,) = (await client.list_prompts()).prompts
        assert [a.name for a in listed_prompt.arguments or []] == ["topic"]
        static = await client.read_resource("inject://caller")
        assert [getattr(c, "text", None) for c in static.contents] == [f"oid={oid}"]
        templated = await client.read_resource("inject://notes/budget")
        assert [getattr(c, "text", None) for c in templated.contents] == [f"budget for oid={oid}"]
        rendered = await client.get_prompt("caller_prompt", {"topic": "budget"})
        assert getattr(rendered.messages[0].content, "text", None) == f"Summarise budget for oid={oid}"


@pytest.mark.parametrize("mode", PROTOCOLS)
async def test_a_caller_cannot_supply_an_injected_parameter(served: Any, mode: str) -> None:
    """A tool ignores arguments named like its injected parameters (dropped as unknown arguments, and the injected
    value is written last); a prompt refuses them, as it refuses any argument it does not declare."""
    oid = "0b1d0000-0000-4000-8000-0000000000c3"
    forged_principal = {"oid": "evil", "tid": TENANT, "sub": "evil", "client_id": "evil", "scopes": ["admin"]}
    async with mcp_client(served.url, _user_token(served.entra, oid), mode=mode) as client:
        who = await _call(client, "sync_caller", {"note": "n", "caller": forged_principal})
        assert who["oid"] == oid
        who = await _call(client, "async_caller", {"note": "n", "caller": forged_principal})
        assert who["oid"] == oid
        who = await _call(client, "caller_alias", {"caller": "evil"})
        assert who["oid"] == oid
        key = await _call(client, "sync_secret", {"city": "Oslo", "api_key": "attacker-key"})
        assert key["fingerprint"] == _fingerprint(API_KEY_VALUE) and key["city"] == "Oslo"
        key = await _call(client, "async_secret", {"key": "attacker-key", "caller": forged_principal})
        assert key["fingerprint"] == _fingerprint(API_KEY_VALUE) and key["oid"] == oid
        token = await _call(client, "sync_token", {"token": "attacker-token"})
        assert token["fingerprint"] != _fingerprint("attacker-token") and token["stand_in_issued"] is True
        # Prompts refuse any argument they do not declare (the SDK validates them strictly): so too here.
        with pytest.raises(MCPError, match="caller: Unexpected keyword argument") as refused:
            await client.get_prompt("caller_prompt", {"topic": "t", "caller": "evil"})
        assert refused.value.error.code == INVALID_PARAMS and "evil" not in str(refused.value)


async def test_app_only_callers_get_the_same_error_as_downstream_token(served: Any) -> None:
    """On-behalf-of needs a user: an injected token fails as `downstream_token` does (DownstreamAuthError), with the
    generic tool error, and no exchange is attempted."""
    entra: EntraStandIn = served.entra
    app_token = entra.app_token(tenant=TENANT, audience=CLIENT_ID, roles=["mcp.read.all"], app_id="app-1")
    async with mcp_client(served.url, app_token) as client:
        result = await client.call_tool("async_token", {})
    assert result.is_error
    assert [getattr(c, "text", None) for c in result.content] == ["Error executing tool async_token"]
    assert entra.token_requests == []


def test_a_secret_parameter_declares_the_secret_so_startup_requires_it(entra: EntraStandIn) -> None:
    assert discover(INJECTION_TOOLS).secrets == {"inject--api-key"}
    settings = settings_for(entra, free_port(), tools={"dir": INJECTION_TOOLS})
    with pytest.raises(SecretsError, match="inject--api-key") as raised:
        create_app(settings)
    assert API_KEY_VALUE not in str(raised.value)


def test_the_shipped_whoami_takes_no_arguments() -> None:
    """The example tool's schema (and so its tools.lock entry) did not change when it moved to injection."""
    served_tools = current_for(REPO / "tools")["tools"]
    (whoami,) = [t for t in served_tools if t["name"] == "whoami"]
    assert whoami["inputSchema"] == {"properties": {}, "title": "whoamiArguments", "type": "object"}


# ---- bad declarations: startup stops, naming the tool and the parameter ------------------------------------------
HEADER = """
    from __future__ import annotations
    from typing import Annotated
    from pydantic import SecretStr
    from app import Caller, Downstream, Principal, Secret, tool
"""

# Refused by discovery: the markers alone say the declaration is wrong.
AT_DISCOVERY = {
    "secret_not_str": ("def t(n: Annotated[int, Secret('t--key')]) -> str: ...", "typed <class 'int'>"),
    "bad_secret_name": ("def t(k: Annotated[str, Secret('Key')]) -> str: ...", "must look like 'tool-name--api-key'"),
    "settings_section": ("def t(k: Annotated[str, Secret('azuread--key')]) -> str: ...", "collides with the settings"),
    "secret_default": ("def t(k: Annotated[str, Secret('t--key')] = '') -> str: ...", "has a default"),
    "secret_in_union": ("def t(k: Annotated[str, Secret('t--key')] | None) -> str: ...", "wraps an injected type"),
    "two_markers": ("def t(k: Annotated[str, Secret('t--key'), Downstream(['s'])]) -> str: ...", "2 injected"),
    "token_not_str": ("def t(k: Annotated[bytes, Downstream(['s'])]) -> str: ...", "typed <class 'bytes'>"),
    "no_scopes": ("def t(k: Annotated[str, Downstream([])]) -> str: ...", "needs at least one scope"),
    "positional_only": ("def t(k: Annotated[str, Secret('t--key')], /) -> str: ...", "plain or keyword-only"),
}
# Refused when the server is built (the caller type is known to the server layer, above the catalog).
AT_BUILD = {
    "caller_default": ("def t(caller: Principal | None = None) -> str: ...", "wraps an injected type"),
    "caller_with_default": ("def t(caller: Principal = None) -> str: ...", "has a default"),
    "caller_in_list": ("def t(callers: list[Principal]) -> str: ...", "wraps an injected type"),
    "caller_alias_default": ("def t(caller: Caller = None) -> str: ...", "has a default"),
    "caller_and_secret": ("def t(c: Annotated[Principal, Secret('t--key')]) -> str: ...", "typed <class"),
}


def _tools_dir(tmp_path: Path, case: str, signature: str) -> Path:
    directory = tmp_path / case
    directory.mkdir()
    source = textwrap.dedent(HEADER) + f"\n@tool(scopes=['mcp.read'])\n{signature}\n"
    (directory / f"{case}.py").write_text(source)
    return directory


@pytest.mark.parametrize("case", AT_DISCOVERY)
def test_bad_injection_declarations_fail_discovery_naming_the_tool(case: str, tmp_path: Path) -> None:
    signature, expected = AT_DISCOVERY[case]
    with pytest.raises(ToolDiscoveryError) as raised:
        discover(_tools_dir(tmp_path, case, signature))
    message = str(raised.value)
    assert message.startswith("tool 't' (") and f"{case}.t)" in message, message
    assert expected in message, message


@pytest.mark.parametrize("case", AT_BUILD)
def test_bad_caller_declarations_fail_startup_naming_the_tool(case: str, tmp_path: Path) -> None:
    signature, expected = AT_BUILD[case]
    with pytest.raises(ToolDiscoveryError) as raised:
        current_for(_tools_dir(tmp_path, case, signature))  # discovery and the server build, as at startup
    message = str(raised.value)
    assert message.startswith("tool 't' (") and f"{case}.t)" in message, message
    assert expected in message, message


def test_downstream_refuses_a_bare_string_of_scopes() -> None:
    from app import Downstream

    with pytest.raises(TypeError, match="list of scopes"):
        Downstream("https://graph.microsoft.com/User.Read")  # a str is an Iterable[str]: refused at run time
    assert Downstream(scopes=["a", "b"]).scopes == ("a", "b")
