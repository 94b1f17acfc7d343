"""Units of the facade's rules that need no server: which addresses a CIMD fetch may reach (embedded IPv4 forms), which
redirect URIs match or register, and how long registrations and other state are kept in memory."""

from __future__ import annotations

import ipaddress
import time

import pytest

from app.auth.oauth_errors import OAuthError
from app.authserver import store
from app.authserver.cimd import ClientDocuments, embedded_ipv4
from app.authserver.clients import REGISTRATION_SECONDS, Client, Registry, check_redirect_uri
from app.authserver.store import MemoryStore, Sealed, StateStoreError

# Each IPv6 form carries 10.0.0.1, 127.0.0.1 or 169.254.169.254; none may be connected to, in development either.
EMBEDDED = [
    "64:ff9b::a00:1",  # NAT64, RFC 6052
    "64:ff9b:1::a00:1",  # local-use NAT64, RFC 8215
    "2002:a00:1::1",  # 6to4
    "::a00:1",  # IPv4-compatible
    "::ffff:0:a00:1",  # SIIT
    "::ffff:10.0.0.1",  # IPv4-mapped
    "64:ff9b::7f00:1",  # NAT64 of loopback: another host's loopback
    "2002:a9fe:a9fe::",  # 6to4 of the metadata service
    "2001:0:4136:e378:8000:63bf:f5ff:fffe",  # Teredo, client 10.0.0.1
]


@pytest.mark.parametrize("development", [False, True])
@pytest.mark.parametrize("address", EMBEDDED)
async def test_an_ipv6_form_embedding_a_private_ipv4_address_is_refused(address: str, development: bool) -> None:
    documents = ClientDocuments(5120, 1.0, 0, development)
    try:
        with pytest.raises(OAuthError, match="private, loopback or link-local"):
            await documents._public_address(address, 443)  # a literal: resolved without any network traffic
    finally:
        await documents.aclose()


@pytest.mark.parametrize("address", ["64:ff9b::808:808", "2002:808:808::1", "2606:4700::1111", "8.8.8.8"])
async def test_public_addresses_and_their_translations_are_allowed(address: str) -> None:
    documents = ClientDocuments(5120, 1.0, 0, development=False)
    try:
        assert await documents._public_address(address, 443) in (address, f"[{address}]")
    finally:
        await documents.aclose()


def test_every_embedding_is_decoded() -> None:
    decoded = {a: [str(v4) for v4 in embedded_ipv4(ipaddress.ip_address(a))] for a in EMBEDDED}
    assert decoded["64:ff9b::a00:1"] == decoded["::a00:1"] == decoded["::ffff:0:a00:1"] == ["10.0.0.1"]
    assert decoded["2002:a00:1::1"] == ["10.0.0.1"] and "10.0.0.1" in decoded["2001:0:4136:e378:8000:63bf:f5ff:fffe"]
    assert embedded_ipv4(ipaddress.ip_address("::1")) == []  # loopback itself, not an embedding


LOOPBACK = Client("c", "c", ("http://127.0.0.1/cb",), "dcr")


@pytest.mark.parametrize(
    "asked",
    [
        "http://127.0.0.1:5000/cb#frag",
        "http://127.0.0.1:99999/cb",
        "http://127.0.0.1:0/cb",
        "http://127.0.0.1:5000\\.evil.com/cb",
        "http://127.0.0.1:5000@evil.com/cb",
        "http://user@127.0.0.1:5000/cb",
        "http://127.0.0.1:/cb",
        "http://127.0.0.1:+5000/cb",
        "https://127.0.0.1:5000/cb",
        "http://127.0.0.1:5000/cb/../cb",
        "http://127.0.0.2:5000/cb",
    ],
)
def test_only_a_well_formed_loopback_uri_matches_on_any_port(asked: str) -> None:
    assert not LOOPBACK.redirect_matches(asked)


def test_a_loopback_redirect_uri_matches_on_any_valid_port() -> None:
    assert LOOPBACK.redirect_matches("http://127.0.0.1:5000/cb") and LOOPBACK.redirect_matches("http://127.0.0.1/cb")
    assert Client("c", "c", ("http://[::1]/cb",), "dcr").redirect_matches("http://[::1]:65535/cb")


@pytest.mark.parametrize(
    "uri",
    ["java.script:alert(1)", "da.ta:text/html,x", "javascript:alert(1)", "myapp:/cb", "com..example:/cb",
     "1com.example:/cb", "http://127.0.0.1:99999/cb", "http://127.0.0.1:5000\\.evil.com/cb", "file:///etc/passwd"],
)  # fmt: skip
def test_dcr_refuses_redirect_uris_that_are_not_https_loopback_or_reverse_dns(uri: str) -> None:
    with pytest.raises(OAuthError) as refused:
        check_redirect_uri(uri, "native")
    assert refused.value.error == "invalid_redirect_uri"


@pytest.mark.parametrize(
    "uri",
    ["com.example.app:/oauth2redirect", "https://app.example.com/cb", "http://127.0.0.1/cb", "http://[::1]:8080/"],
)
def test_dcr_accepts_https_loopback_and_reverse_dns_schemes(uri: str) -> None:
    assert check_redirect_uri(uri, "native") == uri


async def test_a_registration_no_sign_in_used_is_forgotten_and_one_that_signed_in_is_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [time.monotonic()]
    monkeypatch.setattr("app.authserver.store.time.monotonic", lambda: now[0])
    registry = Registry([], Sealed(MemoryStore(1024 * 1024)), pending_seconds=3600)
    body = {"redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none"}
    idle, used = (await registry.register(body))["client_id"], (await registry.register(body))["client_id"]
    await registry.signed_in(used)
    now[0] += 3601
    assert await registry.find(idle) is None
    assert await registry.find(used) is not None
    now[0] += REGISTRATION_SECONDS - 3601 + 1
    assert await registry.find(used) is None


async def test_the_memory_store_is_bounded_in_bytes_with_a_share_for_optional_records(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [time.monotonic()]
    monkeypatch.setattr("app.authserver.store.time.monotonic", lambda: now[0])
    memory = MemoryStore(100_000)
    for i in range(4):  # about 10 KB each: a half share takes four, not five
        await memory.put(f"optional-{i}", b"x" * 10_000, 60, share=0.5)
    with pytest.raises(StateStoreError):
        await memory.put("optional-4", b"x" * 10_000, 60, share=0.5)
    for i in range(5):
        await memory.put(f"needed-{i}", b"x" * 10_000, 600)
    with pytest.raises(StateStoreError):
        await memory.put("needed-5", b"x" * 10_000, 600)
    assert await memory.take("needed-0") is not None and memory.used < 100_000
    await memory.put("needed-5", b"x" * 10_000, 600)  # a taken record's bytes are free again
    now[0] += 61  # the optional records expire: swept when room is needed
    await memory.put("needed-6", b"x" * 10_000, 600)
    with pytest.raises(StateStoreError):  # a share is of the whole store: past half full, no optional record fits
        await memory.put("optional-5", b"x" * 10_000, 60, share=0.5)
    assert memory.used == sum(len(k) + len(v) + store.RECORD_OVERHEAD for k, (v, _) in memory._records.items())
