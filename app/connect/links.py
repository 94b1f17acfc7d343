"""Pending connect requests: what a link stands for (who was asked, through which client, for which downstream scopes
and claims), kept server-side for a few minutes under an opaque id; the URL holds that id and nothing else (no PII,
no token, no scope).

Records live in the facade's state store (app/authserver/store.py: memory, or Redis shared by replicas), sealed under
a key derived from the id, so a Redis dump holds nothing readable without the link. A user's second call for the same
need gets the same link while it is pending. Who is waiting to hear that a link was completed (a 2025-11-25 session,
for `notifications/elicitation/complete`) is known only to the process holding that session.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from app.auth.consent import ConnectLink, ConsentNeed, Notify
from app.auth.downstream import OnBehalfOf
from app.authserver.store import Sealed, StateStore

log = logging.getLogger("app.connect")

CALLBACK_PATH = "/connect/callback"  # Entra's redirect URI: each server's app registration lists it (Web platform)
LINK_ID = re.compile(r"[A-Za-z0-9_-]{32}")  # 24 random bytes, base64url
MAX_WAITING = 10_000  # completion listeners kept in this process (oldest dropped first)
_LINK, _NEED, _FLOW = "connect-link", "connect-need", "connect-flow"


@dataclass(frozen=True)
class Served:
    """One MCP server of this app as the connect page sees it: its name, its authority, its on-behalf-of client."""

    key: str
    name: str
    authority: str  # `{instance}` (the tenant comes from the user's token)
    obo: OnBehalfOf


class Links:
    """The pending connect requests of the whole app (every server's), and the sign-ins started from them."""

    def __init__(self, base: str, store: StateStore, pending_seconds: int) -> None:
        self.base, self.store, self.pending_seconds = base.rstrip("/"), store, pending_seconds
        self.sealed = Sealed(store)
        self.servers: dict[str, Served] = {}
        self._waiting: OrderedDict[str, tuple[float, list[Notify]]] = OrderedDict()
        self.audit: Any = None  # the app's audit log, attached when the routes are built

    def serve(self, served: Served) -> ServerLinks:
        """Register one server; the object its on-behalf-of client asks for links with."""
        self.servers[served.key] = served
        return ServerLinks(self, served.key)

    @property
    def callback(self) -> str:
        return self.base + CALLBACK_PATH

    async def link(self, key: str, need: ConsentNeed, reuse: str | None) -> ConnectLink:
        record = {"server": key, "tenant": need.tenant, "user": need.user, "client": need.client,
                  "scopes": list(need.scopes), "reason": need.reason, "claims": need.claims}  # fmt: skip
        for candidate in (reuse, await self._pending_for(record)):
            if candidate and LINK_ID.fullmatch(candidate) and await self.get(candidate) == record:
                return self._link(candidate, need)
        link_id = secrets.token_urlsafe(24)
        ttl = self.pending_seconds
        await self.sealed.put(_LINK, link_id, record, ttl, share=0.5)  # links can never crowd out sign-ins
        await self.sealed.put(_NEED, _need_name(record), {"id": link_id}, ttl, share=0.5)
        self.record("connect", "requested", record)
        return self._link(link_id, need)

    async def get(self, link_id: str) -> dict[str, Any] | None:
        """The pending request `link_id` names (None when unknown, expired or completed)."""
        return await self.sealed.get(_LINK, link_id) if LINK_ID.fullmatch(link_id) else None

    async def complete(self, link_id: str, record: dict[str, Any]) -> None:
        """The user completed `link_id`: it is used up, and whoever waits on it in this process hears so."""
        await self.sealed.take(_LINK, link_id)
        await self.sealed.take(_NEED, _need_name(record))
        for notify in self._waiting.pop(link_id, (0.0, []))[1]:
            try:
                await notify()
            except Exception as exc:  # best effort: the client retries on its own anyway
                log.info("connect completion not delivered", extra={"error": type(exc).__name__})

    def on_complete(self, link_id: str, notify: Notify) -> None:
        now = time.monotonic()
        while self._waiting and (len(self._waiting) >= MAX_WAITING or next(iter(self._waiting.values()))[0] < now):
            self._waiting.popitem(last=False)
        deadline, listeners = self._waiting.pop(link_id, (now + self.pending_seconds, []))
        self._waiting[link_id] = (deadline, [*listeners[-4:], notify])

    async def start(self, state: str, record: dict[str, Any]) -> None:
        await self.sealed.put(_FLOW, state, record, self.pending_seconds)

    async def started(self, state: str) -> dict[str, Any] | None:
        return await self.sealed.get(_FLOW, state) if 0 < len(state) <= 200 else None

    async def finish(self, state: str) -> dict[str, Any] | None:
        return await self.sealed.take(_FLOW, state)

    def record(self, event: str, outcome: str, link: dict[str, Any], **fields: Any) -> None:
        """An audit record naming the user who was asked and the server; never the link, a code or a token."""
        if self.audit is None:
            return
        server = self.servers.get(str(link.get("server")))
        several = len(self.servers) > 1
        self.audit.record(event, outcome=outcome, user=link.get("user"), tenant=link.get("tenant"),
                          client_id=link.get("client"), reason=fields.get("reason") or link.get("reason"),
                          **({"server": server.name} if server is not None and several else {}))  # fmt: skip

    async def aclose(self) -> None:
        await self.store.aclose()

    async def _pending_for(self, record: dict[str, Any]) -> str | None:
        found = await self.sealed.get(_NEED, _need_name(record))
        return found.get("id") if found else None

    def _link(self, link_id: str, need: ConsentNeed) -> ConnectLink:
        digest = hashlib.sha256(f"elicitation:{link_id}".encode()).digest()[:18]
        hosts = sorted({_api(scope) for scope in need.scopes})
        what = " and ".join(hosts) or "another service"
        message = (
            f"This server needs your permission to use {what} for you. Open the link, sign in with the account you "
            "use here, then retry."
            if need.reason == "consent_required"
            else f"Your organization requires you to sign in again before this server may use {what} for you. Open "
            "the link, sign in with the account you use here, then retry."
        )
        return ConnectLink(
            link_id, f"{self.base}/connect/{link_id}", base64.urlsafe_b64encode(digest).decode(), message
        )


class ServerLinks:
    """`ConsentRecovery` for one server: its on-behalf-of client asks for links through this."""

    def __init__(self, links: Links, key: str) -> None:
        self.links, self.key = links, key

    async def link(self, need: ConsentNeed, reuse: str | None = None) -> ConnectLink:
        return await self.links.link(self.key, need, reuse)

    def on_complete(self, link_id: str, notify: Notify) -> None:
        self.links.on_complete(link_id, notify)


def _need_name(record: dict[str, Any]) -> str:
    scopes = " ".join(sorted(record["scopes"]))
    claims = hashlib.sha256((record.get("claims") or "").encode()).hexdigest()
    return f"{record['server']}|{record['tenant']}|{record['user']}|{record['client']}|{scopes}|{claims}"


def _api(scope: str) -> str:
    """The API a scope belongs to, as people know it: the host of `https://graph.microsoft.com/User.Read`."""
    if "://" in scope:
        return scope.split("://", 1)[1].split("/", 1)[0][:80]
    return scope.split("/", 1)[0][:80] if "/" in scope else "Microsoft Graph"
