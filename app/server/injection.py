"""Fills a tool's injected parameters at call time (the caller, a tool secret, an on-behalf-of token) and hides
them from the SDK, so they are absent from the input schema, `tools.lock` and anything a caller can send.

An argument a caller sends under an injected parameter's name is ignored: the SDK validates arguments against
the visible signature only, which drops unknown names, and the injected value is written over whatever is left.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from pydantic import SecretStr

from app.auth.downstream import downstream_token
from app.auth.principal import Principal, current_principal
from app.catalog.injection import Downstream, Injected, Plan, Secret, plan
from app.catalog.registry import Spec, ToolDiscoveryError
from app.secrets.store import secret
from app.server.threads import ToolThreads


def injection_plan(spec: Spec) -> Plan | None:
    """`spec`'s injected parameters (the caller type is `Principal`); a bad declaration stops startup, naming it."""
    try:
        return plan(spec.fn, caller=Principal)
    except ValueError as exc:
        raise ToolDiscoveryError(f"{spec.kind} {spec.name!r} ({spec.where}): {exc}") from None


def served_function(spec: Spec, threads: ToolThreads) -> Callable[..., Any]:
    """What the SDK registers for `spec`. Sync tools run on `threads`; so do sync resources and prompts that take
    injected parameters (the others are left to the SDK, as before)."""
    found = injection_plan(spec)
    if found is None:
        return threads.serve(spec.fn) if spec.kind == "tool" else spec.fn
    return _injecting(found, threads.serve(spec.fn))


def _injecting(found: Plan, call: Callable[..., Any]) -> Callable[..., Any]:
    """`call` (a coroutine function) as one whose signature lacks the injected parameters, which it fills in."""
    injected = tuple(found.injected.items())
    visible = found.visible

    @functools.wraps(call)
    async def with_injected(*args: Any, **kwargs: Any) -> Any:
        if args:  # the SDK passes keywords; a positional call is bound to the visible signature
            kwargs = dict(visible.bind(*args, **kwargs).arguments)
        # Resolved here, on the event loop, in the request's context; a sync tool then gets plain values on its
        # worker thread. Always written last, so no caller-supplied value of the same name can survive.
        for name, source in injected:
            kwargs[name] = await _value(source)
        return await call(**kwargs)

    # The SDK reads `__signature__` (inspect stops there rather than following `__wrapped__` to the full one) and
    # `__annotations__` (context and resolver detection): both describe the visible parameters only.
    with_injected.__signature__ = visible  # type: ignore[attr-defined]
    with_injected.__annotations__ = found.annotations
    return with_injected


async def _value(injected: Injected) -> Any:
    source = injected.source
    if isinstance(source, Secret):
        value: SecretStr = secret(source.name)
        return value if injected.base is SecretStr else value.get_secret_value()
    if isinstance(source, Downstream):
        return await downstream_token(source.scopes)  # failures are downstream_token's own (DownstreamAuthError)
    return current_principal()
