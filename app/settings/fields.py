"""Value shapes shared by the settings sections: lists from the environment, loopback hosts, allow-list entries,
rate strings, and the names of secret fields."""

from __future__ import annotations

import json
import re
import typing
from typing import Annotated, Any
from urllib.parse import urlsplit

from limits import parse_many
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError, model_validator
from pydantic_settings import NoDecode

from app.core.hosts import is_loopback_host as is_loopback_host  # re-exported: settings validate hosts with it

# Stable identities for the embedded dev issuer: it stands in for one Entra tenant and one app registration.
DEV_TENANT_ID = "00000000-0000-4000-8000-000000000de0"
DEV_CLIENT_ID = "11111111-1111-4111-8111-111111111111"
# The public client the dev issuer's sign-in page serves (DEV_ISSUER__CLIENT_ID): a client pre-registered in Entra.
DEV_PUBLIC_CLIENT_ID = "33333333-3333-4333-8333-333333333333"


class Section(BaseModel):
    """A settings section; each field's docstring is its description (in the generated settings reference)."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    @model_validator(mode="before")
    @classmethod
    def _blank_is_default(cls, values: Any) -> Any:
        """`NAME=` with nothing after it (the example files ship many) leaves the setting at its default."""
        if isinstance(values, dict):
            return {key: value for key, value in values.items() if value != ""}
        return values


def csv_list(value: object) -> object:
    """Accept `a,b c` from the environment as well as a JSON list or a real list."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part for part in text.replace(",", " ").split() if part]
    return value


CsvList = Annotated[list[str], NoDecode]
SecretList = Annotated[list[SecretStr], NoDecode]


def app_id_uri_shape(value: str | None) -> str | None:
    """An Entra Application ID URI: `api://…`, or an `https://` URL (plain http only for a loopback host); no query,
    fragment or trailing slash, since scopes are `{app id uri}/{scope}`. `{client_id}` may stand for the client id."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    parts = urlsplit(value.replace("{client_id}", "client-id"))
    scheme_ok = (
        parts.scheme == "api"
        or parts.scheme == "https"
        or (parts.scheme == "http" and is_loopback_host(parts.hostname))
    )
    if not scheme_ok or not parts.netloc or parts.query or parts.fragment or "#" in value or value.endswith("/"):
        raise ValueError(
            "AZUREAD__APP_ID_URI must look like https://mcp.contoso.com/mcp (the resource URL) or api://{client_id}, "
            "with no query, fragment or trailing slash"
        )
    return value


_HOST = r"(\[[0-9a-f:.]+\]|[a-z0-9]([a-z0-9.-]*[a-z0-9])?)(:([0-9]{1,5}|\*))?"
HOST_RE = re.compile(_HOST)
ORIGIN_RE = re.compile(rf"https?://{_HOST}")


def allow_list_entry(item: str, pattern: re.Pattern[str], env: str, shape: str) -> str:
    """One allow-list entry, lower-cased; `:*` accepts any port, as in the SDK's transport security."""
    value = item.strip().lower()
    if not pattern.fullmatch(value):
        raise ValueError(f"{env} entries look like {shape} or {shape.split('[')[0]}:*, got {item[:60]!r}")
    return value


def rate_string(value: str) -> str:
    """A `limits` rate string such as `120/minute` or `10/second;1000/hour`, checked at startup."""
    try:
        if not parse_many(value):
            raise ValueError
    except ValueError:
        raise ValueError(f"{value!r} is not a rate limit; use e.g. 120/minute or 10/second;1000/hour") from None
    return value


SCOPE_NAME = re.compile(r"[^\s\"\\]{1,200}")


def acyclic(value: dict[str, list[str]]) -> dict[str, list[str]]:
    """A `scope_implies` validator: the hierarchy as given, once its closure is known to exist (no cycle)."""
    scope_closure(value)
    return value


def scope_closure(implies: dict[str, list[str]]) -> dict[str, frozenset[str]]:
    """Every scope each scope implies, directly or through others; ValueError naming a cycle or a bad name."""
    for name in {*implies, *(s for implied in implies.values() for s in implied)}:
        if not SCOPE_NAME.fullmatch(name):
            raise ValueError(f"MCP__SCOPE_IMPLIES: {name[:60]!r} is not a scope name (1-200 characters, no spaces)")
    closure: dict[str, frozenset[str]] = {}

    def visit(scope: str, path: tuple[str, ...]) -> frozenset[str]:
        if scope in path:
            cycle = " > ".join((*path[path.index(scope) :], scope))
            raise ValueError(f"MCP__SCOPE_IMPLIES has a cycle: {cycle}")
        if scope not in closure:
            direct = implies.get(scope, [])
            closure[scope] = frozenset(direct).union(*(visit(s, (*path, scope)) for s in direct))
        return closure[scope]

    for scope in implies:
        visit(scope, ())
    return {scope: found for scope, found in closure.items() if found}


def _has_secret(annotation: Any) -> bool:
    return annotation is SecretStr or any(_has_secret(arg) for arg in typing.get_args(annotation))


def secret_env_names(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Env-style names (`azuread__client_secret`) of every secret field, nested sections included."""
    names = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if _has_secret(annotation):
            names.append(prefix + name)
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names += secret_env_names(annotation, f"{prefix}{name}__")
    return names


def describe_invalid(exc: ValidationError) -> str:
    """One line naming every refused setting, for a startup error (no traceback, no values)."""
    return "; ".join(str(err["msg"]).removeprefix("Value error, ") for err in exc.errors())
