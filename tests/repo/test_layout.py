"""The layout of `tests/`: it mirrors `app/` (docs/development.md, "Where the tests are"), every test module sits in the
folder of what it tests, and helpers come from `tests/support/`."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.support.values import REPO

TESTS = REPO / "tests"
# Folders not named after a package or module of app/: the whole product through its composition root, end to end
# (`main`, which outlives app/main.py's name); the repository's files (`repo`); the dev issuer, as it leaves
# app/auth/dev_*.py for app/devissuer/ (`devissuer`); and the helpers, stand-ins and test tool folders (`support`).
WHOLE_PRODUCT = {"main", "repo", "devissuer", "support"}
# The repository's own code outside app/ gets its tests in a folder of the same name (`make new-tool` writes
# tests/tools/, `make new-route` tests/routes/).
REPO_CODE = {"tools", "routes", "bench"}


def _test_folders() -> list[Path]:
    return sorted(p for p in TESTS.iterdir() if p.is_dir() and not p.name.startswith((".", "__")))


def _test_modules() -> list[Path]:
    return sorted(p for p in TESTS.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_folder_of_tests_is_named_after_what_it_tests() -> None:
    app = {p.name for p in (REPO / "app").iterdir() if (p / "__init__.py").is_file()}
    app |= {p.stem for p in (REPO / "app").glob("*.py") if not p.name.startswith("__")}
    unknown = [p.name for p in _test_folders() if p.name not in app | WHOLE_PRODUCT | REPO_CODE]
    assert not unknown, f"tests/ mirrors app/: name each folder after the app/ package it tests: {unknown}"


def test_no_test_module_sits_at_the_top_of_tests_and_every_folder_is_a_package() -> None:
    loose = sorted(p.name for p in TESTS.glob("*.py") if p.name not in {"__init__.py", "conftest.py"})
    assert not loose, f"test modules go in the folder of the app/ package they test: {loose}"
    folders = {p.parent for p in _test_modules() if p.name.startswith("test_")}
    missing = sorted(str(f.relative_to(REPO)) for f in folders if not (f / "__init__.py").is_file())
    assert not missing, f"every test folder needs an __init__.py (module names repeat across folders): {missing}"


def _imported(module: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(module.read_text(), str(module))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def test_helpers_come_from_tests_support_never_from_conftest_or_another_test_module() -> None:
    wrong = {
        str(module.relative_to(REPO)): sorted(
            name for name in _imported(module) if re.fullmatch(r"tests(\.\w+)*\.(conftest|test_\w+)(\.\w+)?", name)
        )
        for module in _test_modules()
    }
    wrong = {module: names for module, names in wrong.items() if names}
    assert not wrong, f"import helpers from tests/support/ instead: {wrong}"


def test_the_modules_kept_on_one_worker_exist() -> None:
    """The scheduler in the top-level conftest.py names modules by path: a module moved without it is caught here."""
    named = re.findall(r'"(tests/[\w/]+\.py)"', (TESTS / "conftest.py").read_text())
    assert named and all((REPO / path).is_file() for path in named), named
