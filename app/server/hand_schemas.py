"""The SDK `Tool` for each catalog tool; for `@tool(input_schema=...)`, one that publishes and enforces that schema.

The SDK derives a tool's input schema from its signature and has no seam for a hand-written one, so the `Tool` it
builds gets the schema as its published `parameters` and an argument model that validates against it (below).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, ClassVar

from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase
from pydantic import ConfigDict, model_validator
from pydantic_core import PydanticCustomError

from app.catalog.registry import Spec, ToolDiscoveryError
from app.catalog.schemas import ArgumentsRefused, ArgumentsSchema, required_properties, top_level_properties


def sdk_tool(spec: Spec, served: Callable[..., Any]) -> Tool:
    """The SDK's `Tool` for `spec`, calling `served` (its function with injected parameters hidden)."""
    tool = Tool.from_function(served, name=spec.name, **spec.options)
    if spec.input_schema is None:
        return tool
    accepted = _accepted_arguments(spec, served, tool)
    tool.parameters = spec.input_schema  # published as written: tools/list, tools.lock
    tool.fn_metadata.arg_model = _arguments_model(ArgumentsSchema(spec.name, spec.input_schema), accepted)
    return tool


def _accepted_arguments(spec: Spec, served: Callable[..., Any], tool: Tool) -> frozenset[str] | None:
    """The argument names the function takes (None: any, it has `**kwargs`); startup stops, naming the tool, when
    its signature and its schema disagree, as a call would otherwise fail with a TypeError."""
    assert spec.input_schema is not None

    def refuse(problem: str) -> ToolDiscoveryError:
        return ToolDiscoveryError(f"tool {spec.name!r} ({spec.where}) has input_schema, but {problem}")

    if tool.resolved_params:
        raise refuse("Resolve(...) parameters are not supported with a hand-written schema")
    params = [p for p in inspect.signature(served).parameters.values() if p.name != tool.context_kwarg]
    if any(p.kind in (p.POSITIONAL_ONLY, p.VAR_POSITIONAL) for p in params):
        raise refuse("its function has positional-only or *args parameters; it takes keyword arguments")
    properties, required = top_level_properties(spec.input_schema), required_properties(spec.input_schema)
    named = {p.name: p for p in params if p.kind is not p.VAR_KEYWORD}
    if unknown := sorted(set(named) - properties):
        raise refuse(f"parameter(s) {', '.join(unknown)} are not properties of the schema")
    if optional := sorted(n for n, p in named.items() if p.default is p.empty and n not in required):
        raise refuse(f"parameter(s) {', '.join(optional)} have no default but the schema does not require them")
    if len(named) < len(params):
        return None
    if missing := sorted(properties - set(named)):
        raise refuse(f"property(ies) {', '.join(missing)} are not parameters (add them, or **kwargs)")
    return frozenset(named)


class _SchemaArguments(ArgModelBase):
    """Arguments validated by a hand-written schema: the values pass through as plain JSON, untouched."""

    model_config = ConfigDict(extra="allow")
    schema_check: ClassVar[ArgumentsSchema]
    accepted: ClassVar[frozenset[str] | None]

    @model_validator(mode="before")
    @classmethod
    def _against_schema(cls, data: Any) -> Any:
        try:
            valid = cls.schema_check.validate(data)
        except ArgumentsRefused as exc:
            # A pydantic error, so the SDK reports it as it reports any argument error (a tool error result), and
            # FrameworkServer words it without values; `{problems}` is schema text only.
            raise PydanticCustomError("json_schema", "{problems}", {"problems": str(exc)}) from None
        # Properties the schema allows but the function does not take (no **kwargs) are dropped, as pydantic would.
        return valid if cls.accepted is None else {k: v for k, v in valid.items() if k in cls.accepted}

    def model_dump_one_level(self) -> dict[str, Any]:
        return dict(self.__pydantic_extra__ or {})


def _arguments_model(check: ArgumentsSchema, accepted: frozenset[str] | None) -> type[ArgModelBase]:
    return type(f"{check.tool}_arguments", (_SchemaArguments,), {"schema_check": check, "accepted": accepted})
