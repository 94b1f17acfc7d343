"""The parts built straight from settings: content safety, the event store for resumable streams, the task store."""

from __future__ import annotations

import importlib
from typing import Any

from mcp.server.streamable_http import EventStore

from app.server.content_safety import ContentSafetyCheck
from app.server.events import MemoryEventStore, RedisEventStore, ScopedEventStore
from app.settings import Settings
from app.tasks.records import TaskOptions
from app.tasks.store import MemoryTaskStore, RedisTaskStore, TaskStore


def content_safety_from(settings: Settings) -> ContentSafetyCheck | None:
    """The configured check, built once at startup; None when off (the default).

    `azure` is Azure AI Content Safety (optional extra: `uv sync --extra content-safety`); `package.module:factory`
    names your own: a callable taking `Settings` and returning an object with `async check(text, *, source)`.
    """
    provider = settings.content_safety.provider
    if provider == "off":
        return None
    if provider == "azure":
        try:
            from app.server.content_safety_azure import AzureContentSafety
        except ImportError:
            raise RuntimeError(
                "CONTENT_SAFETY__PROVIDER=azure needs the optional extra: uv sync --extra content-safety"
            ) from None
        config = settings.content_safety
        key = config.key.get_secret_value() if config.key is not None else None
        return AzureContentSafety.create(str(config.endpoint), key, config.threshold, config.timeout_seconds)
    module_name, _, attr = provider.partition(":")
    factory = getattr(importlib.import_module(module_name), attr)
    check = factory(settings)
    if not isinstance(check, ContentSafetyCheck):
        raise TypeError(f"CONTENT_SAFETY__PROVIDER {provider} did not return an object with async check()")
    return check


def event_store_from(
    settings: Settings, server: str | None = None, beside: ScopedEventStore | None = None
) -> ScopedEventStore | None:
    """The configured store for one server of the app (its Redis keys under its name, on the Redis connection pool of
    `beside`, the first server's store); None when stateless (the SDK resumes only session streams) or `off`."""
    if isinstance(beside, RedisEventStore):
        return beside.under(server or settings.mcp.server_name)
    mcp = settings.mcp
    if mcp.stateless or mcp.event_store == "off":
        return None
    redis = settings.redis_uri
    if mcp.event_store == "redis" or (mcp.event_store == "auto" and redis is not None):
        assert redis is not None  # settings refuse `redis` without a Redis URL
        return RedisEventStore(
            redis, mcp.event_store_stream_events, mcp.event_store_ttl_seconds, server or mcp.server_name
        )
    return MemoryEventStore(mcp.event_store_stream_events, mcp.event_store_ttl_seconds, mcp.event_store_max_events)


def resumability(settings: Settings, store: EventStore | None) -> dict[str, Any]:
    """The session manager's resumability arguments: the store, and the SSE `retry` hint that goes with it."""
    return {"event_store": store, "retry_interval": settings.mcp.sse_retry_ms if store is not None else None}


def task_store_from(settings: Settings, server: str, beside: TaskStore | None = None) -> TaskStore:
    """One server's task store: in Redis under its name (on the pool of `beside`, the first server's), or memory."""
    if isinstance(beside, RedisTaskStore):
        return beside.under(server)
    redis, mode = settings.redis_uri, settings.mcp.task_store
    if mode == "redis" or (mode == "auto" and redis is not None):
        assert redis is not None  # settings refuse `redis` without a Redis URL
        return RedisTaskStore(redis, server)
    return MemoryTaskStore(settings.tasks.memory_max_bytes)


def task_options(settings: Settings) -> TaskOptions:
    tasks = settings.tasks
    return TaskOptions(
        max_per_principal=tasks.max_per_principal,
        max_active=tasks.max_active,
        max_run_seconds=float(tasks.max_run_seconds),
        ttl_seconds=tasks.ttl_seconds,
        poll_interval_ms=tasks.poll_interval_ms,
        lease_seconds=float(tasks.lease_seconds),
        max_answer_bytes=tasks.max_answer_bytes,
    )
