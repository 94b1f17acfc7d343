"""Old names kept for one release after a rename: a module's `__getattr__` that answers them with a warning."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping


def deprecated_aliases(
    module: str, renamed: Mapping[str, str], namespace: Mapping[str, object]
) -> Callable[[str], object]:
    """A module-level `__getattr__` serving each old name in `renamed` (old -> new) as the new object, with a
    `DeprecationWarning` naming the replacement; any other missing name is an `AttributeError` as usual.

    Args:
        module: the module's `__name__`, for the messages.
        renamed: old name -> new name.
        namespace: the module's `globals()`, where the new names are looked up (at access time).

    Returns:
        The function to assign to the module's `__getattr__`.

    Example:
        __getattr__ = deprecated_aliases(__name__, {"Limiter": "RateCounter"}, globals())
    """

    def __getattr__(name: str) -> object:
        new = renamed.get(name)
        if new is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        warnings.warn(
            f"{module}.{name} is renamed {new}; the old name is removed in the next release",
            DeprecationWarning,
            stacklevel=2,
        )
        return namespace[new]

    return __getattr__
