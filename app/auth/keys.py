"""Signing keys for one issuer, from its OpenID discovery document: cached, refreshed off the request path."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import httpx2
import jwt
from jwt.algorithms import RSAAlgorithm

log = logging.getLogger("app.auth.keys")


@dataclass
class IssuerKeys:
    """The discovery document's issuer and JWKS for one issuer family (Entra v2 or v1).

    `key(kid)` never touches the network. `key_or_refresh(kid)` refreshes on a kid miss, single-flight,
    at most once per `refresh_window` seconds, so a flood of unknown kids costs one fetch.
    """

    discovery_url: str
    http: httpx2.AsyncClient
    refresh_window: float = 60.0
    max_age: float = 24 * 3600.0
    issuer: str | None = None
    _keys: dict[str, Any] = field(default_factory=dict)
    _last_attempt: float = float("-inf")
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _task: asyncio.Task[None] | None = None
    _failing: bool = False

    @property
    def ready(self) -> bool:
        return self.issuer is not None and bool(self._keys)

    def key(self, kid: str) -> Any | None:
        return self._keys.get(kid)

    async def key_or_refresh(self, kid: str) -> Any | None:
        found = self._keys.get(kid)
        if found is not None:
            return found
        async with self._lock:
            found = self._keys.get(kid)
            if found is None and time.monotonic() - self._last_attempt >= self.refresh_window:
                await self._refresh()
                found = self._keys.get(kid)
        return found

    async def start(self) -> None:
        """Fetch once now (failure is logged, not raised), then keep refreshing in the background."""
        async with self._lock:
            await self._refresh()
        self._task = asyncio.create_task(self._refresh_forever(), name=f"jwks-refresh {self.discovery_url}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _refresh_forever(self) -> None:
        while True:
            # Retry quickly until the first success, then on the regular cadence; a failure keeps the cached keys.
            await asyncio.sleep(self.max_age if self.ready else min(self.refresh_window, 5.0))
            async with self._lock:
                await self._refresh()

    async def _refresh(self) -> None:
        self._last_attempt = time.monotonic()
        try:
            doc = await self._get_json(self.discovery_url)
            issuer, jwks_uri = doc["issuer"], doc["jwks_uri"]
            keys = _parse_jwks(await self._get_json(jwks_uri))
        except Exception as exc:  # any failure: keep what we have, report once per outage
            if not self._failing:
                log.warning("signing keys unavailable from %s: %s", self.discovery_url, _brief(exc))
            self._failing = True
            return
        if self._failing:
            log.info("signing keys available again from %s", self.discovery_url)
        self._failing = False
        self.issuer, self._keys = issuer, keys

    async def _get_json(self, url: str) -> dict[str, Any]:
        response = await self.http.get(url)
        response.raise_for_status()
        body = response.json()
        if not isinstance(body, dict):
            raise ValueError("expected a JSON object")
        return body


def _parse_jwks(jwks: dict[str, Any]) -> dict[str, Any]:
    """RSA signing keys by kid; keys of other types or uses are skipped, not trusted."""
    keys: dict[str, Any] = {}
    for jwk in jwks.get("keys", []):
        if jwk.get("kty") != "RSA" or jwk.get("use", "sig") != "sig" or not jwk.get("kid"):
            continue
        try:
            keys[jwk["kid"]] = RSAAlgorithm.from_jwk(jwk)
        except (jwt.InvalidKeyError, ValueError, KeyError, TypeError):
            log.warning("skipping an unreadable JWKS key (kid %s)", jwk.get("kid"))
    if not keys:
        raise ValueError("JWKS has no usable RSA signing keys")
    return keys


def _brief(exc: Exception) -> str:
    return f"{type(exc).__name__}: {str(exc)[:200]}"
