"""Importing a folder of drop-in modules (tools/, routes/) as a package, wherever the folder is."""

from __future__ import annotations

import hashlib
import importlib
import sys
import types
from pathlib import Path


def package_for(directory: Path, repo_directory: Path, repo_package: str) -> str:
    """The import name for `directory`: `repo_package` for the repository's own folder, else a private name, so two
    folders never collide in `sys.modules` (tests serve several)."""
    directory = directory.resolve()
    if directory == repo_directory.resolve():
        importlib.import_module(repo_package)
        return repo_package
    name = f"_{repo_package}_" + hashlib.sha256(str(directory).encode()).hexdigest()[:10]
    if name not in sys.modules:
        module = types.ModuleType(name)
        module.__path__ = [str(directory)]
        sys.modules[name] = module
    return name


def modules_under(directory: Path, package: str) -> list[tuple[str, Path]]:
    """Every module file below `directory`, as import names; plain folders count, `__init__.py` or not."""
    found = []
    for path in sorted(directory.rglob("*.py")):
        parts = path.relative_to(directory).with_suffix("").parts
        if any(part.startswith(".") or part == "__pycache__" for part in parts):
            continue
        parts = parts[:-1] if parts[-1] == "__init__" else parts
        found.append((".".join((package, *parts)), path))
    return found
