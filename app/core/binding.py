"""`bind(var, value)`: a with-block that sets a ContextVar and restores it on exit.

A slotted class rather than `@contextmanager`: it runs several times per request, and a generator-based
context manager costs a few times more.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class bind(Generic[T]):  # lower case: used like a function, `with bind(var, value):`
    """Set `var` to `value` for the with-block, then restore what it was."""

    __slots__ = ("_token", "_value", "_var")

    def __init__(self, var: ContextVar[T], value: T) -> None:
        self._var, self._value = var, value

    def __enter__(self) -> None:
        self._token: Token[T] = self._var.set(self._value)

    def __exit__(self, *exc: Any) -> None:
        self._var.reset(self._token)
