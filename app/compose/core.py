"""The core every entry point shares: HTTP (`create_app`), stdio (`python -m app stdio`) and the lock command.

One build, so what the lock reviews, what a desktop client is served and what HTTP clients are served is the same
catalog behind the same guards and the same SDK middleware.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mcp.server.mcpserver import MCPServer

from app.auth.authz import Guard
from app.auth.downstream import TokenSource
from app.auth.metadata import app_id_uri_warning
from app.auth.principal import Principal
from app.auth.resource import NO_ROUTES, ResourceServer
from app.catalog.discovery import discover
from app.catalog.registry import Catalog, Requirement
from app.compose.parts import content_safety_from, task_options, task_store_from
from app.compose.resource import resource_server, server_options, telemetry_options
from app.compose.secrets import secret_store
from app.observability.audit import AuditLog
from app.observability.observe import Observer
from app.observability.redaction import install_redaction
from app.observability.telemetry import Telemetry, setup_telemetry
from app.secrets.store import SecretStore, set_process_store
from app.server import toolslock
from app.server.build import build_mcp_server
from app.server.content import ContentSafetyCheck
from app.server.threads import ToolThreads
from app.settings import Settings
from app.tasks.parts import Tasks
from app.tasks.store import TaskStore

log = logging.getLogger("app")

# How an entry point gets its downstream tokens: on-behalf-of over HTTP, the signed-in user's cache in stdio.
DownstreamFactory = Callable[[ResourceServer, SecretStore], TokenSource | None]


@dataclass
class Core:
    """What every entry point serves: the catalog as one resource server, behind one guard, on one MCP server.

    An app with several servers has a core each; `telemetry`, `secrets`, `threads` and `content_check` are the same
    objects in all of them (shared once), the rest is each server's own."""

    server: ResourceServer
    catalog: Catalog
    telemetry: Telemetry
    secrets: SecretStore
    observer: Observer
    guard: Guard
    threads: ToolThreads
    content_check: ContentSafetyCheck | None
    downstream: TokenSource | None
    mcp: MCPServer[Any]
    audit: AuditLog  # the one audit log every server writes to (each record names its server when there are several)
    key: str = ""  # "" for the first server, else its SERVERS__{KEY} name
    tasks: Tasks | None = None  # when a tool may run as a task (app/tasks/)


def build_core(settings: Settings, *, server: str = "", **options: Any) -> Core:
    """The core of one server of this app: the first (`server=""`), or `SERVERS__{server}` (stdio `--server`)."""
    return build_cores(settings, only=server, **options)[0]


def build_cores(
    settings: Settings,
    *,
    routes: Requirement = NO_ROUTES,
    downstream: DownstreamFactory | None = None,
    caller: Callable[[], Principal | None] | None = None,
    audit_sink: str | None = None,
    telemetry_env: Mapping[str, str] | None = None,
    for_review: bool = False,
    only: str | None = None,
) -> list[Core]:
    """Discover each server's tools, load secrets, then build each server's guard and MCP server, and check each
    against its tools.lock. Telemetry, the audit log, secrets, the tool thread pool and content safety are built once.

    `routes`: what the FastAPI routes beside MCP require (HTTP only; the first server's). `caller`: the one signed-in
    caller (stdio). `for_review`: the lock command's build: tool secrets are not read and the lock is not checked (it
    is the thing being written), audit and telemetry are off. `only`: build just that server (its key).
    """
    served = settings.served() if only is None else [settings.served_one(only)]
    telemetry = setup_telemetry(
        telemetry_options(settings), {"OTEL_SDK_DISABLED": "true"} if for_review else telemetry_env
    )
    catalogs = [discover(one.tools_dir) for one in served]
    secrets = secret_store(settings, () if for_review else {name for c in catalogs for name in c.secrets})
    if not for_review:
        install_redaction(secrets.plain_values)
        set_process_store(secrets)
    sink = "off" if for_review else audit_sink or settings.audit.sink
    audit = AuditLog.open(sink)
    threads = ToolThreads(settings.tools.threads)
    content_check = None if for_review else content_safety_from(settings)
    several = len(settings.served()) > 1
    cores: list[Core] = []
    first_store: TaskStore | None = None  # later servers share its Redis pool
    for one, catalog in zip(served, catalogs, strict=True):
        server = resource_server(settings, catalog, routes if not one.key else NO_ROUTES, one)
        observer = Observer(telemetry, audit, catalog, server.name if several else None)
        if not for_review and (mismatch := app_id_uri_warning(server)) is not None:
            log.warning(mismatch)
        guard = Guard(catalog, server.required_scopes, server.required_roles, server.scope_uri, settings.mcp.agents)
        source = downstream(server, secrets) if downstream is not None else None
        options = server_options(settings, server.name)
        store = None if for_review else task_store_from(settings, server.name, first_store)
        first_store = first_store or store
        tasks = Tasks.of(catalog, store, task_options(settings), observer) if store is not None else None
        mcp = build_mcp_server(
            options, catalog, guard, secrets, observer, source, content_check, threads, caller=caller, tasks=tasks
        )
        # Tool integrity: what models will be shown must match the reviewed tools.lock (app/server/toolslock.py).
        if not for_review and settings.tools_lock_mode != "off":
            hint = toolslock.HINT.replace("make tools-lock", f"make tools-lock SERVER={one.key}") if one.key else None
            current = toolslock.served_sync(mcp, catalog)
            toolslock.enforce(settings.tools_lock_mode, one.lock_path, current, hint or toolslock.HINT)
        cores.append(
            Core(
                server,
                catalog,
                telemetry,
                secrets,
                observer,
                guard,
                threads,
                content_check,
                source,
                mcp,
                audit,
                one.key,
                tasks,
            )
        )
    return cores
