"""The Redis check: the shared Redis (RATE_LIMIT__STORAGE_URI) answers PING; the URI is shown with its password
masked, and an error's text with it removed."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from app.core.findings import Finding, error, ok

FIX = (
    "check RATE_LIMIT__STORAGE_URI (redis://[:password@]host:port[/db], rediss:// for TLS), that Redis runs and "
    "this machine reaches it, and its password"
)


def masked(uri: str) -> str:
    """The URI with any password (and username) replaced by `***`."""
    parts = urlsplit(uri)
    if parts.password is None and parts.username is None:
        return uri
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    netloc = "***@" + host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def redis_findings(uri: str, timeout: float = 3.0) -> list[Finding]:
    """`redis`: PING within `timeout` seconds (redis-py, no retries)."""
    import redis

    shown = masked(uri)
    try:
        client = redis.Redis.from_url(
            uri, socket_timeout=timeout, socket_connect_timeout=timeout, retry_on_timeout=False
        )
        try:
            answered = client.ping()
        finally:
            client.close()
    except Exception as exc:
        return [error("redis", f"Redis at {shown} did not answer PING: {_scrubbed(exc, uri)}", FIX)]
    if answered is not True:
        return [error("redis", f"Redis at {shown} answered PING with {str(answered)[:40]!r}", FIX)]
    return [ok("redis", f"Redis at {shown} answers PING")]


def _scrubbed(exc: BaseException, uri: str) -> str:
    """The error's class and text, without the URI's password (were a driver ever to quote it)."""
    text = " ".join(str(exc).split())[:200]
    parts = urlsplit(uri)
    for secret in (parts.password, parts.username):
        if secret:
            text = text.replace(secret, "***")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
