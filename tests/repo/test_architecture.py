"""The house rules: `app/`'s top level, and the import-linter contracts `make lint` runs (pyproject.toml)."""

from __future__ import annotations

import ast
import inspect
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.values import REPO

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def test_app_top_level_is_the_root_settings_api_entry_point_and_subpackages() -> None:
    loose = sorted(
        p.name
        for p in (REPO / "app").iterdir()
        if p.suffix == ".py" and p.name not in {"__init__.py", "__main__.py", "main.py"}
    )
    assert not loose, f"modules belong in a subpackage of app/ (see docs/architecture.md): {loose}"
    packages = sorted(p.name for p in (REPO / "app").iterdir() if (p / "__init__.py").is_file())
    assert "settings" in packages and len(packages) >= 9


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=tree, capture_output=True, text=True, check=False, timeout=120
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the code and its contracts, to break on purpose."""
    for name in ("app", "tools", "routes"):
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    return tmp_path


def test_the_contracts_hold_on_this_tree(tree: Path) -> None:
    result = _lint(tree)
    assert result.returncode == 0, result.stdout
    assert "Contracts: 5 kept, 0 broken." in result.stdout


@pytest.mark.parametrize(
    ("path", "line", "contract"),
    [
        ("tools/sneaky.py", "from app.auth.tokens import EntraTokenValidator", "import only the public app API"),
        ("routes/sneaky.py", "from app.auth.dependencies import RouteAuth", "import only the public app API"),
        ("app/auth/sneaky.py", "from app.server import build", "app/ layers import downward only"),
        ("app/server/sneaky.py", "from app import main", "nothing imports the composition root"),
        ("app/edge/sneaky.py", "from app.settings import Settings", "only the composition roots read settings"),
        ("app/devissuer/sneaky.py", "from app.settings import Settings", "only the composition roots read settings"),
        ("app/edge/sneaky.py", "import app.settings.sneaky", "no import cycles"),
    ],
)
def test_a_deliberate_violation_fails_the_lint(tree: Path, path: str, line: str, contract: str) -> None:
    (tree / path).write_text(f"{line}\n")
    if "app.settings.sneaky" in line:  # a cycle: edge -> settings -> edge
        (tree / "app/settings/sneaky.py").write_text("import app.edge.sneaky\n")
    result = _lint(tree)
    assert result.returncode == 1, result.stdout
    broken = result.stdout.split("Broken contracts", 1)[1]
    assert contract in broken, result.stdout


@pytest.mark.slow  # a subprocess or many generated examples: the whole suite (make test-all)
def test_make_lint_type_checks_routes_and_a_type_error_there_fails_it(tmp_path: Path) -> None:
    """`make lint`'s mypy line names routes/ beside app/ and tools/, under the project's strict configuration, which
    refuses a route module with a type error."""
    recipe = (REPO / "Makefile").read_text().split("\nlint:", 1)[1].split("\n\n", 1)[0]
    checked = next(line.split("mypy", 1)[1].split() for line in recipe.splitlines() if " mypy " in line)
    assert {"app", "tools", "routes"} <= set(checked), recipe
    (tmp_path / "routes").mkdir()
    typo = tmp_path / "routes" / "typo.py"
    typo.write_text('BAD: int = "x"\n')
    result = subprocess.run(
        [str(Path(sys.executable).parent / "mypy"), "--config-file", str(REPO / "pyproject.toml"), str(typo)],
        cwd=tmp_path, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1 and "typo.py:1: error: Incompatible types in assignment" in result.stdout


# ---- the composition: one place reads settings, one short list of parts, one home per OAuth primitive ----------
ROOTS = {"main.py", "__main__.py", "cli", "local", "compose", "toolkit", "settings"}


def _defined(path: Path) -> set[str]:
    return {
        node.name
        for node in ast.parse(path.read_text(encoding="utf-8")).body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    }


def test_only_the_composition_roots_take_the_whole_settings() -> None:
    """No part below the roots has a parameter annotated `Settings`: each takes its own values."""
    takers = []
    for module in (REPO / "app").rglob("*.py"):
        if module.relative_to(REPO / "app").parts[0] in ROOTS:
            continue
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.arg) or node.annotation is None:
                continue
            if ast.unparse(node.annotation).strip("'\"") == "Settings":
                takers.append(f"{module.relative_to(REPO)}: {node.arg}")
    assert not takers


def test_create_app_reads_as_a_short_list_of_parts() -> None:
    from app.main import create_app

    assert len(inspect.getsource(create_app).splitlines()) <= 60


def test_the_dev_issuer_is_out_of_auth_and_shares_no_definition_with_the_facade() -> None:
    """No `dev_*` module in the production security package, and no function or class written in both authorization
    servers (PKCE, OAuth errors, page chrome live once, in app/authserver/ and app/auth/)."""
    assert not sorted((REPO / "app" / "auth").glob("dev_*.py"))
    facade = set().union(*(_defined(p) for p in (REPO / "app" / "authserver").glob("*.py")))
    dev = set().union(*(_defined(p) for p in (REPO / "app" / "devissuer").glob("*.py")))
    assert not facade & dev
