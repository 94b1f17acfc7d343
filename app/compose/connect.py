"""The connect page plugged in (CONNECT__ENABLED; app/connect/): its store from settings, each server's on-behalf-of
client given the way to ask its user, and the routes. Off: nothing is built and nothing is mounted."""

from __future__ import annotations

from app.auth.downstream import OnBehalfOf
from app.auth.resource import ResourceServer
from app.authserver.store import open_store
from app.connect import Links, Served
from app.core.startup import StartupError
from app.settings import Settings


class ConnectConfigError(StartupError):
    label = "connect page"


def connect_links(settings: Settings) -> Links | None:
    """The app's pending connect requests, in memory or in the shared Redis (CONNECT__STORE); None when off."""
    config = settings.connect
    if not config.enabled:
        return None
    redis = settings.redis_uri
    if config.store == "redis" and redis is None:
        raise ConnectConfigError("CONNECT__STORE=redis needs RATE_LIMIT__STORAGE_URI=redis://... (the shared Redis)")
    shared = redis if config.store == "redis" or (config.store == "auto" and redis is not None) else None
    if shared is None and settings.workers > 1:
        raise ConnectConfigError(
            f"CONNECT__ENABLED with {settings.workers} workers needs the shared Redis (RATE_LIMIT__STORAGE_URI): a "
            "link opened in another worker would not be found"
        )
    return Links(settings.resource_host, open_store(shared, config.memory_max_bytes), config.pending_seconds)


def with_connect(links: Links | None, server: ResourceServer, obo: OnBehalfOf) -> OnBehalfOf:
    """`obo`, able to send its user to the connect page when Entra wants them (when the page is on)."""
    if links is not None:
        obo.recovery = links.serve(Served(server.path, server.name, server.authority.instance, obo))
    return obo
