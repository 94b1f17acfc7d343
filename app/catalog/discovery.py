"""Discovery: import every module under a tools directory (subpackages too), collect the decorated functions, and
refuse an unsafe or broken declaration (no scopes or roles, a bad rate or timeout, a bad hand-written schema, a
name defined twice, a completion for nothing) with a `ToolDiscoveryError` that stops startup."""

from __future__ import annotations

import importlib
import inspect
import logging
import types
from dataclasses import replace
from pathlib import Path

from limits import parse_many

from app.catalog.injection import declared_secrets
from app.catalog.registry import SPEC_ATTR, Catalog, Kind, Spec, ToolDiscoveryError
from app.catalog.schemas import published_schema
from app.core.modules import modules_under, package_for

log = logging.getLogger("app.tools")
REPO_TOOLS = Path(__file__).resolve().parents[2] / "tools"


def discover(directory: Path) -> Catalog:
    """Import every module under `directory` (subpackages too) and collect decorated functions."""
    directory = directory.resolve()
    if not directory.is_dir():
        raise ToolDiscoveryError(f"tools directory {directory} does not exist")
    package = package_for(directory, REPO_TOOLS, "tools")
    catalog = Catalog()
    seen: dict[tuple[Kind, str], Spec] = {}
    for module_name, path in modules_under(directory, package):
        module = _import(module_name, path)
        for value in vars(module).values():
            spec = getattr(value, SPEC_ATTR, None) if inspect.isfunction(value) else None
            if not isinstance(spec, Spec) or spec.fn.__module__ != module.__name__:
                continue  # not ours, or imported from another module (counted where it is defined)
            if spec.kind != "completion":
                spec = _check(spec)
            key = (spec.kind, spec.uri or spec.name)
            if key in seen:
                raise ToolDiscoveryError(
                    f"{spec.kind} {spec.name!r} is defined twice: {seen[key].where} and {spec.where}"
                )
            seen[key] = spec
            catalog.specs.append(spec)
    targets = {s.name for s in catalog.of("prompt")} | {s.uri for s in catalog.of("resource")}
    for spec in catalog.of("completion"):
        if spec.name not in targets:
            raise ToolDiscoveryError(f"completion {spec.where} names {spec.name!r}, which is no prompt or resource")
    return catalog


def _import(module_name: str, path: Path) -> types.ModuleType:
    try:
        return importlib.import_module(module_name)
    except Exception as exc:
        raise ToolDiscoveryError(f"could not import tools module {path}: {type(exc).__name__}: {exc}") from exc


def _check(spec: Spec) -> Spec:
    """Refuse an unsafe declaration; returns `spec` with the secrets its parameters declare (`Secret(...)`)."""
    _check_limits(spec)
    if spec.input_schema is not None:
        try:
            spec = replace(spec, input_schema=published_schema(spec.input_schema))
        except ValueError as exc:
            raise ToolDiscoveryError(f"tool {spec.name!r} ({spec.where}): {exc}") from None
    if not spec.requirement.declared:
        raise ToolDiscoveryError(
            f"{spec.kind} {spec.name!r} ({spec.where}) declares no scopes or roles: add scopes=[...] or "
            f"roles=[...] to its decorator, or public=True to expose it to every authenticated caller"
        )
    if spec.requirement.public:
        log.warning("%s %r (%s) is public: any authenticated caller may use it", spec.kind, spec.name, spec.where)
    try:
        return replace(spec, secrets=spec.secrets | declared_secrets(spec.fn))
    except ValueError as exc:
        raise ToolDiscoveryError(f"{spec.kind} {spec.name!r} ({spec.where}): {exc}") from None


def _check_limits(spec: Spec) -> None:
    rate, timeout = spec.limits.rate, spec.limits.timeout
    if rate is not None:
        try:
            parse_many(rate)
        except ValueError:
            raise ToolDiscoveryError(
                f"{spec.kind} {spec.name!r} ({spec.where}) has rate={rate!r}; use e.g. rate='10/minute'"
            ) from None
    if timeout is not None and not (isinstance(timeout, int | float) and 0 < timeout < float("inf")):
        raise ToolDiscoveryError(f"{spec.kind} {spec.name!r} ({spec.where}) has timeout={timeout!r}; use seconds > 0")
