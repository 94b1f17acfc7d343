"""Hand-written input schemas (`@tool(input_schema={...})`): checked once at registration, enforced on every call.

JSON Schema 2020-12 through `jsonschema` (an SDK dependency), with an empty `referencing` registry: only refs into
the schema itself (`#...`) resolve, so a schema can never make the server fetch anything.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from jsonschema import Draft202012Validator  # type: ignore[import-untyped]  # no stubs shipped
from jsonschema.exceptions import SchemaError, ValidationError, relevance  # type: ignore[import-untyped]
from referencing import Registry
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

DIALECT = "https://json-schema.org/draft/2020-12/schema"
MAX_PROBLEMS = 5  # problems named in one refusal; the rest are counted
MAX_DETAIL = 80  # characters of schema text (never caller text) quoted in one problem
_REF_KEYWORDS = ("$ref", "$dynamicRef")
_NAMING_KEYWORDS = frozenset({"properties", "required", "dependentRequired", "dependentSchemas"})


class ArgumentsRefused(ValueError):
    """Arguments that do not match the tool's schema; the message names where and why, never a value sent."""


def published_schema(schema: object) -> dict[str, Any]:
    """A private copy of `schema` exactly as JSON carries it, once `check_input_schema` accepts it."""
    try:
        copied = json.loads(json.dumps(schema, allow_nan=False))
    except (TypeError, ValueError, RecursionError):
        raise ValueError("input_schema must hold JSON values only (str, number, bool, None, list, dict)") from None
    check_input_schema(copied)
    return copied  # type: ignore[no-any-return]  # a dict: check_input_schema refuses anything else


def check_input_schema(schema: object) -> None:
    """Refuse (ValueError) a schema that is not a valid 2020-12 object schema, or that refers outside itself."""
    if not isinstance(schema, dict):
        raise ValueError("input_schema must be a dict (a JSON Schema object)")
    dialect = schema.get("$schema", DIALECT)
    if dialect != DIALECT:
        raise ValueError(f"input_schema must be JSON Schema 2020-12 ($schema {DIALECT!r}), not {str(dialect)[:80]!r}")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(part) for part in exc.path) or "(root)"
        raise ValueError(f"input_schema is not a valid JSON Schema at {where}: {exc.message[:200]}") from None
    if schema.get("type") != "object":
        raise ValueError('input_schema must describe an object: "type": "object" at its root (MCP requires it)')
    if not isinstance(schema.get("properties", {}), dict):
        raise ValueError("input_schema `properties` must be an object")
    for ref in _refs(schema):
        if not ref.startswith("#"):
            raise ValueError(f"input_schema refers outside itself ({ref[:80]!r}); only local refs like #/$defs/x")
    resource = DRAFT202012.create_resource(schema)
    base = resource.id() or ""
    resolver = Registry().with_resource(base, resource).resolver(base_uri=base)
    for ref in _refs(schema):
        try:
            resolver.lookup(ref)
        except Unresolvable:
            raise ValueError(f"input_schema has a $ref that names nothing in it: {ref[:80]!r}") from None


def top_level_properties(schema: Mapping[str, Any]) -> frozenset[str]:
    """The names the tool's function receives as keyword arguments."""
    return frozenset(schema.get("properties", {}))


def required_properties(schema: Mapping[str, Any]) -> frozenset[str]:
    required = schema.get("required", [])
    return frozenset(required) if isinstance(required, list) else frozenset()


class ArgumentsSchema:
    """Validates one tool's arguments against its (already checked) hand-written schema."""

    def __init__(self, tool: str, schema: Mapping[str, Any]) -> None:
        self.tool = tool
        self._validator = Draft202012Validator(schema, registry=Registry())
        # Names the schema declares somewhere: only these may appear in a refusal's path (a caller's key may not).
        self._names = frozenset(_declared_names(schema))

    def validate(self, arguments: object) -> dict[str, Any]:
        """`arguments` when they match; else `ArgumentsRefused` naming up to MAX_PROBLEMS problems."""
        errors = sorted(self._validator.iter_errors(arguments), key=relevance)
        if not errors:
            assert isinstance(arguments, dict)  # the schema's root is an object
            return arguments
        problems = [self._describe(error) for error in errors[:MAX_PROBLEMS]]
        if len(errors) > MAX_PROBLEMS:
            problems.append(f"and {len(errors) - MAX_PROBLEMS} more")
        raise ArgumentsRefused("; ".join(problems))

    def _describe(self, error: ValidationError) -> str:
        path = "/".join(
            str(part) if isinstance(part, int) or part in self._names else "*" for part in error.absolute_path
        )
        return f"/{path}: {_explain(error)}"


def _explain(error: ValidationError) -> str:
    """What failed, in schema terms only: `error.message` quotes the caller's value, so it is never used."""
    keyword, expected = str(error.validator), error.validator_value
    if keyword == "required" and isinstance(error.instance, dict) and isinstance(expected, list):
        missing = [name for name in expected if isinstance(name, str) and name not in error.instance]
        return "missing required " + ", ".join(repr(name[:MAX_DETAIL]) for name in missing[:MAX_PROBLEMS])
    if keyword in {"additionalProperties", "unevaluatedProperties"} and expected is False:
        return "has a property the schema does not allow"
    if keyword in {"enum", "const"}:
        return "is not one of the allowed values"
    if keyword == "type":
        return f"must be of type {_quote(expected)}"
    if isinstance(expected, str | int | float | bool) or expected is None:
        return f"fails {keyword} ({_quote(expected)})"
    return f"fails {keyword}"


def _quote(value: object) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= MAX_DETAIL else text[:MAX_DETAIL] + "..."


def _refs(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _REF_KEYWORDS and isinstance(value, str):
                yield value
            yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _declared_names(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _NAMING_KEYWORDS and isinstance(value, dict | list):
                yield from (name for name in value if isinstance(name, str))
            yield from _declared_names(value)
    elif isinstance(node, list):
        for item in node:
            yield from _declared_names(item)
