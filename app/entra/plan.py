"""From the application as it is (or None) to the application the manifest wants: the changes, as people read them,
and the Microsoft Graph calls that make them, in the order Graph accepts.

Additions are merged with what exists: redirect URIs, identifier URIs, pre-authorized apps and scopes a person added
by hand stay. Only `prune` removes scopes and roles the catalog no longer has, in two PATCHes (Graph refuses to
remove an enabled one: disable first, then remove). A second run finds nothing to change and calls nothing.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from app.entra.graph import GraphClient, GraphError
from app.entra.manifest import Manifest, permissions
from app.entra.needs import VSCODE_CLIENT_ID

Action = Literal["create", "service-principal", "patch", "federated"]
_KINDS = (("scope", "scope"), ("role", "app role"))


@dataclass(frozen=True)
class Step:
    """One Graph write: create the application, its service principal, PATCH it, or add a federated credential."""

    action: Action
    body: dict[str, Any]


@dataclass(frozen=True)
class Plan:
    """`changes`: one line per change (`+`, `~`, `-`), what the prompt counts; `notes`: what is kept and why (`!`);
    `steps`: the writes, in order. No changes, no steps."""

    manifest: Manifest
    app: dict[str, Any] | None
    changes: tuple[str, ...]
    notes: tuple[str, ...]
    steps: tuple[Step, ...]


def plan(
    manifest: Manifest,
    app: dict[str, Any] | None,
    *,
    service_principal: bool = False,
    federated: list[dict[str, Any]] | None = None,
    prune: bool = False,
) -> Plan:
    """The changes and writes that take `app` (with or without its `service_principal`, with these `federated`
    credentials) to `manifest`; `prune` removes the scopes and roles the catalog does not name."""
    changes: list[str] = []
    notes: list[str] = [f"! {warning}" for warning in manifest.warnings]
    steps: list[Step] = []
    if app is None:
        body = copy.deepcopy(manifest.body)
        preauthorized = body["api"].pop("preAuthorizedApplications", [])
        changes.append(f"+ application {body['displayName']!r} (App ID URI {body['identifierUris'][0]})")
        changes += [f"+ scope {s['value']}" for s in body["api"]["oauth2PermissionScopes"]]
        changes += [f"+ app role {r['value']}" for r in body["appRoles"]]
        changes += [f"+ redirect URI {uri}" for uri in body.get("web", {}).get("redirectUris", [])]
        steps.append(Step("create", body))
        service_principal, federated = False, []
        if preauthorized:  # Graph pre-authorizes only scopes that already exist: a PATCH after the create
            names = {s["id"]: s["value"] for s in body["api"]["oauth2PermissionScopes"]}
            changes += [f"+ pre-authorize VS Code for {names[i]}" for i in preauthorized[0]["delegatedPermissionIds"]]
            steps.append(Step("patch", {"api": {"preAuthorizedApplications": preauthorized}}))
    else:
        _update(manifest, app, prune, changes, notes, steps)
    if not service_principal:
        changes.append("+ service principal (Entra issues tokens only for an app with one)")
        steps.insert(1 if app is None else 0, Step("service-principal", {}))
    for wanted in manifest.federated:
        same = [f for f in federated or [] if (f.get("issuer"), f.get("subject")) == (wanted.issuer, wanted.subject)]
        if same:
            continue
        if any(f.get("name") == wanted.name for f in federated or []):
            notes.append(f"! federated credential {wanted.name} exists with another issuer or subject: kept")
            continue
        changes.append(f"+ federated credential {wanted.name}: issuer {wanted.issuer}, subject {wanted.subject}")
        steps.append(Step("federated", wanted.body()))
    return Plan(manifest, app, tuple(changes), tuple(notes), tuple(steps))


def _update(
    manifest: Manifest, app: dict[str, Any], prune: bool, changes: list[str], notes: list[str], steps: list[Step]
) -> None:
    """The PATCHes for an existing application: additions (and disabling what is pruned), pre-authorization, then
    the removal of what is pruned."""
    wanted, api = manifest.body, app.get("api") or {}
    first: dict[str, Any] = {}
    uris = list(app.get("identifierUris") or [])
    if wanted["identifierUris"][0] not in uris:
        first["identifierUris"] = [*uris, wanted["identifierUris"][0]]
        changes.append(f"+ App ID URI {wanted['identifierUris'][0]} (identifierUris)")
    if (version := api.get("requestedAccessTokenVersion")) != 2:
        first.setdefault("api", {})["requestedAccessTokenVersion"] = 2
        changes.append(f"~ api.requestedAccessTokenVersion: {'null' if version is None else version} -> 2")
    pruned: dict[str, set[str]] = {}
    final: dict[str, list[dict[str, Any]]] = {}
    for kind, label in _KINDS:
        merged, pruned[kind], changed = _merge(kind, label, wanted, app, prune, changes, notes)
        final[kind] = [item for item in merged if item["id"] not in pruned[kind]]
        if changed:
            _put(first, kind, merged)
    redirects = list((app.get("web") or {}).get("redirectUris") or [])
    missing = [uri for uri in wanted.get("web", {}).get("redirectUris", []) if uri not in redirects]
    if missing:
        first["web"] = {"redirectUris": redirects + missing}
        changes += [f"+ redirect URI {uri}" for uri in missing]
    if first:
        steps.append(Step("patch", first))
    preauthorized = _preauthorize(wanted, api, final["scope"], pruned["scope"], changes)
    if preauthorized is not None:
        steps.append(Step("patch", {"api": {"preAuthorizedApplications": preauthorized}}))
    last: dict[str, Any] = {}
    for kind, _ in _KINDS:
        if pruned[kind]:
            _put(last, kind, final[kind])
    if last:
        steps.append(Step("patch", last))


def _merge(
    kind: str, label: str, wanted: dict[str, Any], app: dict[str, Any], prune: bool, changes: list[str],
    notes: list[str],
) -> tuple[list[dict[str, Any]], set[str], bool]:  # fmt: skip
    """The existing scopes (or roles) with the wanted ones added or re-enabled, and with `prune` the others disabled;
    the ids to remove afterwards; whether anything changed."""
    merged = [copy.deepcopy(item) for item in permissions(app, kind)]
    desired = permissions(wanted, kind)
    have = {item.get("value"): item for item in merged}
    changed, pruned = False, set()
    for item in desired:
        if (present := have.get(item["value"])) is None:
            merged.append(copy.deepcopy(item))
            changes.append(f"+ {label} {item['value']}")
            changed = True
        elif present.get("isEnabled") is False:
            present["isEnabled"] = True
            changes.append(f"~ {label} {item['value']}: disabled -> enabled")
            changed = True
    names = {item["value"] for item in desired}
    for item in merged:
        if item.get("value") in names:
            continue
        if not prune:
            notes.append(
                f"! {label} {item.get('value')} is not in the catalog: kept (tokens may still carry it); "
                "--prune removes it"
            )
            continue
        pruned.add(item["id"])
        if item.get("isEnabled", True):
            item["isEnabled"] = False
            changed = True
            changes.append(f"- {label} {item.get('value')} (disabled, then removed)")
        else:
            changes.append(f"- {label} {item.get('value')} (already disabled)")
    return merged, pruned, changed


def _put(patch: dict[str, Any], kind: str, items: list[dict[str, Any]]) -> None:
    if kind == "scope":
        patch.setdefault("api", {})["oauth2PermissionScopes"] = items
    else:
        patch["appRoles"] = items


def _preauthorize(
    wanted: dict[str, Any], api: dict[str, Any], scopes: list[dict[str, Any]], pruned: set[str], changes: list[str]
) -> list[dict[str, Any]] | None:
    """The pre-authorized apps with VS Code added for every wanted scope and pruned scopes taken out; None when that
    is what exists."""
    current = [copy.deepcopy(a) for a in api.get("preAuthorizedApplications") or [] if isinstance(a, dict)]
    result: list[dict[str, Any]] = []
    for client in current:
        ids = [i for i in client.get("delegatedPermissionIds") or [] if i not in pruned]
        if ids:
            result.append({**client, "delegatedPermissionIds": ids})
    if any(a["appId"] == VSCODE_CLIENT_ID for a in wanted["api"].get("preAuthorizedApplications", [])):
        ids_of = {s["value"]: s["id"] for s in scopes}
        needed = [(v, ids_of[v]) for v in (s["value"] for s in wanted["api"]["oauth2PermissionScopes"])]
        entry = next((a for a in result if a.get("appId") == VSCODE_CLIENT_ID), None)
        if entry is None:
            entry = {"appId": VSCODE_CLIENT_ID, "delegatedPermissionIds": []}
            result.append(entry)
        for value, id_ in needed:
            if id_ not in entry["delegatedPermissionIds"]:
                entry["delegatedPermissionIds"].append(id_)
                changes.append(f"+ pre-authorize VS Code for {value}")
    return None if result == current else result


def apply(
    chosen: Plan, graph: GraphClient, *, retries: int = 5, wait: Callable[[float], None] = time.sleep
) -> dict[str, Any]:
    """Make the writes; returns the application (the created one when it was created). A write right after the
    create is retried on Graph's not-found answers while the new application replicates."""
    app = chosen.app
    created = False
    for step in chosen.steps:
        if step.action == "create":
            app, created = graph.create_application(step.body), True
            continue
        assert app is not None  # a plan without an application starts with its create
        target = app
        for attempt in range(retries if created else 1):
            try:
                _write(graph, step, target)
                break
            except GraphError as exc:
                replicating = exc.status == 404 or (exc.status == 400 and step.action == "service-principal")
                if not (created and replicating) or attempt == retries - 1:
                    raise
                wait(2.0 * (attempt + 1))
    assert app is not None
    return app


def _write(graph: GraphClient, step: Step, app: dict[str, Any]) -> None:
    if step.action == "service-principal":
        graph.create_service_principal(app["appId"])
    elif step.action == "patch":
        graph.update_application(app["id"], step.body)
    else:
        graph.add_federated_credential(app["id"], step.body)
