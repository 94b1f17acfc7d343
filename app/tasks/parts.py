"""One server's task parts, built when any of its tools may run as a task (`@tool(task=...)`): the store, the
layers that admit and run tasks, and the extension's methods. A server without such a tool gets none of them (the
extension is not advertised, and nothing is added to its request path)."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.catalog.registry import Catalog, TaskMode
from app.observability.observe import Observer
from app.tasks.methods import TasksExtension
from app.tasks.records import TaskOptions
from app.tasks.run import TaskLayer
from app.tasks.signals import TaskSignals
from app.tasks.store import TaskStore


@dataclass
class Tasks:
    store: TaskStore
    options: TaskOptions
    modes: dict[str, TaskMode]
    signals: TaskSignals
    layer: TaskLayer = field(init=False)
    extension: TasksExtension = field(init=False)

    def __post_init__(self) -> None:
        self.layer = TaskLayer(self.modes, self.store, self.options, self.signals, self.signals.observer)
        self.extension = TasksExtension(self.store, self.signals, self.options)

    @classmethod
    def of(cls, catalog: Catalog, store: TaskStore, options: TaskOptions, observer: Observer) -> Tasks | None:
        modes = {spec.name: catalog.policy(spec.name).task for spec in catalog.of("tool")}
        modes = {name: mode for name, mode in modes.items() if mode != "forbidden"}
        return cls(store, options, modes, TaskSignals(observer)) if modes else None

    async def aclose(self) -> None:
        """Shutdown: runs here end as failed (never left `working`), then the store's connections close."""
        await self.signals.aclose(self.store)
        await self.store.aclose()
