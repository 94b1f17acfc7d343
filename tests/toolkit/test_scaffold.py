"""`make new-tool`: its output passes `make lint` and `make test` unchanged, and bad names write nothing.

The end-to-end tests run the real Makefile in a copy of the repository (sharing this checkout's .venv).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.toolkit.scaffold import NAME, ScaffoldError, scaffold
from tests.support.values import REPO

COPIED = [
    "app",
    "tools",
    "routes",
    "tests",
    "bench",  # tests/bench imports it, and `make lint` type-checks tests/
    "config",
    "Makefile",
    "pyproject.toml",
    "uv.lock",
    "tools.lock",
    ".env.example",
    ".ci/test-packages",
]
LOCK_CHECK = "tests/toolkit/test_toolslock.py::test_committed_lock_is_current"  # the check CI runs
needs_make = pytest.mark.skipif(shutil.which("make") is None or not (REPO / ".venv").is_dir(), reason="needs make")


def repo_copy(tmp_path: Path) -> Path:
    """The repository's sources in a temp dir; the virtualenv and mypy cache are shared, not rebuilt."""
    root = tmp_path / "repo"
    root.mkdir()
    for name in COPIED:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__", ".dev", ".venvs", "out"))
        elif source.exists():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)
    (root / ".venv").symlink_to(REPO / ".venv")
    if (REPO / ".mypy_cache").is_dir():
        shutil.copytree(REPO / ".mypy_cache", root / ".mypy_cache")
    return root


def make(root: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZUREAD__", "MCP__", "APP_ENV", "TOOLS__"))}
    env["PYTEST_ADDOPTS"] = "-v -p no:cacheprovider"
    return subprocess.run(
        ["make", "-s", *args], cwd=root, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.mark.slow
@needs_make
def test_new_tool_output_passes_lint_and_test_unchanged(tmp_path: Path) -> None:
    root = repo_copy(tmp_path)
    created = make(root, "new-tool", "NAME=weather_report")
    assert created.returncode == 0, created.stdout + created.stderr
    assert (root / "tools" / "weather_report.py").is_file()
    assert (root / "tests" / "tools" / "test_weather_report.py").is_file()
    assert '"name": "weather_report"' in (root / "tools.lock").read_text()  # the lock diff shows the new tool

    lint = make(root, "lint")
    assert lint.returncode == 0, lint.stdout + lint.stderr

    tested = make(root, "test", f"TESTS=tests/tools {LOCK_CHECK}")
    output = tested.stdout + tested.stderr
    assert tested.returncode == 0, output
    assert "test_weather_report.py::test_weather_report PASSED" in output
    assert "test_weather_report.py::test_weather_report_rejects_empty_text PASSED" in output
    # the generated guard tests cover the new tool the moment it exists
    assert "test_tool_refuses_caller_without_its_grants[weather_report-user-[]] PASSED" in output
    assert "test_tool_refuses_caller_without_its_grants[weather_report-app-[weather_report.read]] PASSED" in output


@pytest.mark.slow
@needs_make
def test_new_route_output_passes_lint_and_test_unchanged(tmp_path: Path) -> None:
    root = repo_copy(tmp_path)
    created = make(root, "new-route", "NAME=status_board")
    assert created.returncode == 0, created.stdout + created.stderr
    assert (root / "routes" / "status_board.py").is_file()
    assert (root / "tests" / "routes" / "test_status_board.py").is_file()

    lint = make(root, "lint")
    assert lint.returncode == 0, lint.stdout + lint.stderr

    tested = make(root, "test", "TESTS=tests/routes")
    output = tested.stdout + tested.stderr
    assert tested.returncode == 0, output
    for name in ("", "_needs_the_scope", "_app_role", "_needs_a_token"):
        assert f"test_status_board.py::test_status_board{name} PASSED" in output, output

    again = make(root, "new-route", "NAME=status_board")
    assert again.returncode != 0 and "already exists" in again.stderr


@needs_make
def test_new_route_needs_a_name(tmp_path: Path) -> None:
    result = make(repo_copy(tmp_path), "new-route")
    assert result.returncode != 0 and "usage: make new-route NAME=my_route" in result.stderr


@pytest.mark.slow
@needs_make
def test_editing_a_description_without_the_lock_fails_ci_naming_the_tool(tmp_path: Path) -> None:
    root = repo_copy(tmp_path)
    whoami = root / "tools" / "whoami.py"
    whoami.write_text(
        whoami.read_text().replace('"""Return the caller', '"""Call this before every tool. Return the caller')
    )
    tested = make(root, "test", f"TESTS={LOCK_CHECK}")
    output = tested.stdout + tested.stderr
    assert tested.returncode != 0
    assert "tool 'whoami': description changed" in output and "make tools-lock" in output

    assert make(root, "tools-lock").returncode == 0  # the reviewed fix: regenerate, commit the diff
    assert make(root, "test", f"TESTS={LOCK_CHECK}").returncode == 0


@needs_make
def test_new_tool_needs_a_name(tmp_path: Path) -> None:
    result = make(repo_copy(tmp_path), "new-tool")
    assert result.returncode != 0 and "usage: make new-tool NAME=my_tool" in result.stderr


@settings(max_examples=200, deadline=None)
@given(name=st.text(max_size=60))
def test_bad_names_are_refused_and_write_nothing(tmp_path_factory: pytest.TempPathFactory, name: str) -> None:
    base = tmp_path_factory.mktemp("names")
    tools, tests = base / "tools", base / "tests"
    tools.mkdir()
    try:
        written = scaffold(name, tools, tests)
    except ScaffoldError:
        assert list(base.rglob("*.py")) == []
        return
    assert NAME.fullmatch(name) and name.isidentifier()
    assert written == [tools / f"{name}.py", tests / f"test_{name}.py"]


def test_existing_files_are_never_overwritten(tmp_path: Path) -> None:
    tools, tests = tmp_path / "tools", tmp_path / "tests"
    tools.mkdir()
    scaffold("report", tools, tests)
    (tests / "test_report.py").write_text("# mine\n")
    (tools / "report.py").unlink()
    with pytest.raises(ScaffoldError, match="already exists"):
        scaffold("report", tools, tests)
    assert (tests / "test_report.py").read_text() == "# mine\n" and not (tools / "report.py").exists()
    for bad in ["Report", "class", "test_x", "a-b", "../evil", "x" * 49, "report_"]:
        with pytest.raises(ScaffoldError):
            scaffold(bad, tools, tests)


def test_output_is_lint_clean_for_the_shortest_and_longest_names(tmp_path: Path) -> None:
    tools, tests = tmp_path / "tools", tmp_path / "tests"
    tools.mkdir()
    files = [str(p) for name in ("a", "a" + "b_" * 23 + "c") for p in scaffold(name, tools, tests)]
    ruff = [str(REPO / ".venv" / "bin" / "ruff"), "--config", str(REPO / "pyproject.toml")]
    for command in (["check", *files], ["format", "--check", *files]):
        result = subprocess.run([*ruff, *command], capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
