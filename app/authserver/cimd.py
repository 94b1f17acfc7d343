"""Client ID Metadata Documents: the client id is an https URL, and the document served there describes the client.

The fetch is made safe for a server that fetches URLs strangers give it:
- https only (plain http to a loopback host only in development); no user info, no fragment, a path;
- the name is resolved once, every address it resolves to must be public (no private, loopback, link-local,
  reserved or multicast address, nor an IPv6 form that embeds one: mapped, SIIT, compatible, NAT64, 6to4, Teredo;
  loopback allowed in development), and the connection goes to the address that was
  checked (TLS still verifies the name): DNS rebinding cannot swap in an internal address between check and use;
- no redirects at all; a size cap (AUTH_SERVER__CIMD_MAX_BYTES) and a timeout (AUTH_SERVER__CIMD_TIMEOUT_SECONDS);
- trust from the system store (`ssl.create_default_context`, which honours SSL_CERT_FILE), not a bundled one;
- cached by the response's Cache-Control max-age (at most a day), in a bounded cache.
The document's `client_id` must equal its URL; its `redirect_uris` are the client's.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
import socket
import ssl
import time
from collections import OrderedDict
from urllib.parse import SplitResult, urlsplit

import httpx2

from app.auth.oauth_errors import OAuthError
from app.authserver.clients import Client, client_metadata
from app.core.hosts import is_loopback_host

MAX_CACHE_SECONDS = 24 * 3600
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age=(\d{1,10})\s*(?:,|$)")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052 well-known prefix: the last 32 bits are the IPv4 address
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215 local-use prefix (the embedding varies)


class ClientDocuments:
    def __init__(self, max_bytes: int, timeout: float, cache_entries: int, development: bool) -> None:
        self.max_bytes, self.timeout, self.cache_entries = max_bytes, timeout, cache_entries
        self.development = development
        self.cache: OrderedDict[str, tuple[Client, float]] = OrderedDict()
        self.http = httpx2.AsyncClient(
            verify=ssl.create_default_context(), follow_redirects=False, trust_env=False, timeout=timeout
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def client(self, url: str) -> Client:
        cached = self.cache.get(url)
        if cached is not None and cached[1] > time.monotonic():
            self.cache.move_to_end(url)
            return cached[0]
        try:
            client, seconds = await asyncio.wait_for(self._fetch(url), self.timeout)
        except TimeoutError:
            raise OAuthError("invalid_client", "the client's metadata document did not arrive in time") from None
        if seconds > 0 and self.cache_entries:
            self.cache[url] = (client, time.monotonic() + seconds)
            while len(self.cache) > self.cache_entries:
                self.cache.popitem(last=False)
        return client

    async def _fetch(self, url: str) -> tuple[Client, int]:
        parts = self._check_url(url)
        host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
        address = await self._public_address(host, port)
        target = f"{parts.scheme}://{address}:{port}{parts.path}{'?' + parts.query if parts.query else ''}"
        netloc = host if parts.port is None else f"{host}:{port}"
        try:
            async with self.http.stream(
                "GET",
                target,
                headers={"host": netloc, "accept": "application/json"},
                extensions={"sni_hostname": host},  # TLS checks the certificate against the name, not the address
            ) as response:
                if response.status_code != 200:
                    raise OAuthError(
                        "invalid_client", f"the client's metadata document answered {response.status_code}, not 200"
                    )
                body = b""
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > self.max_bytes:
                        raise OAuthError(
                            "invalid_client", f"the client's metadata document is larger than {self.max_bytes} bytes"
                        )
                cache_control = response.headers.get("cache-control", "").lower()
        except httpx2.HTTPError as exc:
            raise OAuthError(
                "invalid_client", f"the client's metadata document could not be fetched ({type(exc).__name__})"
            ) from None
        try:
            document = json.loads(body)
        except (UnicodeDecodeError, ValueError):
            raise OAuthError("invalid_client", "the client's metadata document is not JSON") from None
        if not isinstance(document, dict) or document.get("client_id") != url:
            raise OAuthError("invalid_client", "the metadata document's client_id is not the URL it is served from")
        try:
            kept = client_metadata(document, for_cimd=True)
        except OAuthError as exc:
            raise OAuthError("invalid_client", f"the client's metadata document: {exc.description}") from None
        client = Client(url, kept["client_name"] or host, tuple(kept["redirect_uris"]), "cimd", host)
        return client, _cache_seconds(cache_control)

    def _check_url(self, url: str) -> SplitResult:
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        except ValueError:
            raise OAuthError("invalid_client", "the client id is not a valid URL") from None
        plain_ok = self.development and parts.scheme == "http" and is_loopback_host(parts.hostname)
        if (parts.scheme != "https" and not plain_ok) or not parts.hostname:
            raise OAuthError("invalid_client", "a URL client id must be https (Client ID Metadata Document)")
        if parts.username or parts.password or parts.fragment or parts.path in ("", "/"):
            raise OAuthError("invalid_client", "a URL client id has a path, and no user info or fragment")
        if "/./" in parts.path + "/" or "/../" in parts.path + "/":
            raise OAuthError("invalid_client", "a URL client id has no dot segments")
        return parts

    async def _public_address(self, host: str, port: int) -> str:
        """The one address connected to, after every address the name resolves to was checked."""
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError:
            raise OAuthError("invalid_client", "the client id's host name does not resolve") from None
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
        for address in addresses:
            if not self._reachable(address):
                raise OAuthError(
                    "invalid_client",
                    "the client id's host resolves to a private, loopback or link-local address: refused",
                )
        if not addresses:
            raise OAuthError("invalid_client", "the client id's host name does not resolve")
        first = addresses[0]
        return f"[{first}]" if first.version == 6 else str(first)

    def _reachable(self, address: IPAddress) -> bool:
        """Public; loopback too in development, but only as itself (or IPv4-mapped), never translated: a NAT64 or
        6to4 form of 127.0.0.1 is some other host's loopback."""
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            return self._reachable(address.ipv4_mapped)
        if isinstance(address, ipaddress.IPv6Address) and address in _NAT64_LOCAL:
            return False  # RFC 8215 local-use translation: whatever it embeds is someone's own network
        public = address.is_global and not address.is_multicast
        if not (public or (self.development and address.is_loopback)):
            return False
        return all(inner.is_global and not inner.is_multicast for inner in embedded_ipv4(address))


def embedded_ipv4(address: IPAddress) -> list[ipaddress.IPv4Address]:
    """Every IPv4 address an IPv6 address carries, by every standard embedding, so each is judged like any IPv4:
    IPv4-mapped (`::ffff:a.b.c.d`), SIIT (`::ffff:0:a.b.c.d`), IPv4-compatible (`::a.b.c.d`), NAT64
    (`64:ff9b::a.b.c.d`), 6to4 (`2002:AABB:CCDD::`) and Teredo (server and client)."""
    if not isinstance(address, ipaddress.IPv6Address):
        return []
    value, low = int(address), ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    found = [a for a in (address.ipv4_mapped, address.sixtofour) if a is not None]
    if address.teredo is not None:
        found += list(address.teredo)
    if (value >> 32 == 0 and value > 1) or value >> 32 == 0xFFFF0000 or address in _NAT64:  # compatible, SIIT, NAT64
        found.append(low)
    return found


def _cache_seconds(cache_control: str) -> int:
    if "no-store" in cache_control or "no-cache" in cache_control or "private" in cache_control:
        return 0
    found = _MAX_AGE.search(cache_control)
    return min(int(found.group(1)), MAX_CACHE_SECONDS) if found else 0
