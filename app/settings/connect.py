"""The connect page (CONNECT__*): on-behalf-of consent recovered through URL-mode elicitation (docs/consent.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from app.settings.fields import Section


class ConnectSettings(Section):
    """When on-behalf-of fails because the user has not consented to a downstream API, or Conditional Access wants
    more of them, the tool call answers with a link to this server's connect page (`/connect/...`), where the user
    signs in to Entra as this server's app and consents; the client's retry then succeeds. See docs/consent.md."""

    enabled: bool = False
    """Serve the connect page and answer such tool calls with a URL-mode elicitation. Needs the redirect URI
    `{MCP__RESOURCE_HOST}/connect/callback` (Web platform) on each server's app registration. Off: those calls get a
    tool error saying that consent is needed."""
    pending_seconds: int = Field(default=600, ge=60, le=3600)
    """How long a connect link stays usable once given out (the same user's calls get the same link meanwhile; after
    that, the next call gets a new one)."""
    store: Literal["auto", "memory", "redis"] = "auto"
    """Where pending connect requests live: `auto` is `redis` when `RATE_LIMIT__STORAGE_URI` is a Redis (so a link
    opened on another replica works), else `memory`. Records are sealed under a key derived from the link's id."""
    memory_max_bytes: int = Field(default=8 * 1024 * 1024, ge=1024 * 1024, le=1024 * 1024 * 1024)
    """Bound of the in-memory store (`memory`), in bytes of stored records; past it, a call that needs a new link gets a
    tool error saying to try again shortly."""
