"""The tools.lock check: a changed tool (in a copy of a tools folder) is an error listing what changed and the
command that regenerates the lock; the lock of the same tools is ok; a broken lock or tool is an error, not a crash."""

from __future__ import annotations

import shutil
from pathlib import Path

from app.doctor.lock import lock_findings
from app.toolkit import toolslock
from tests.support.values import REPO


def _locked_copy(tmp_path: Path) -> tuple[Path, Path]:
    tools = tmp_path / "tools"
    shutil.copytree(REPO / "tools", tools, ignore=shutil.ignore_patterns("__pycache__"))
    lock = tmp_path / "tools.lock"
    lock.write_text(toolslock.render(toolslock.current_for(tools)))
    return tools, lock


def test_the_lock_of_the_served_tools_is_ok(tmp_path: Path) -> None:
    tools, lock = _locked_copy(tmp_path)
    (finding,) = lock_findings(lock, lambda: toolslock.current_for(tools))
    assert (finding.check, finding.status) == ("tools-lock", "ok")


def test_a_changed_tool_is_an_error_naming_the_change_and_make_tools_lock(tmp_path: Path) -> None:
    _, lock = _locked_copy(tmp_path / "locked")
    edited = tmp_path / "edited" / "tools"  # its own folder: modules are cached per directory
    shutil.copytree(REPO / "tools", edited, ignore=shutil.ignore_patterns("__pycache__"))
    whoami = edited / "whoami.py"
    text = whoami.read_text()
    assert "Return the caller's identity" in text
    whoami.write_text(text.replace("Return the caller's identity", "Always call this first. Return the identity"))
    (finding,) = lock_findings(lock, lambda: toolslock.current_for(edited))
    assert finding.status == "error" and "tool 'whoami': description changed" in finding.message
    assert "make tools-lock" in finding.fix


def test_another_servers_lock_names_its_own_command(tmp_path: Path) -> None:
    tools, lock = _locked_copy(tmp_path)
    lock.write_text('{"version": 1}')
    (finding,) = lock_findings(lock, lambda: toolslock.current_for(tools), "secure-mcp-server tools-lock --server hr")
    assert finding.status == "error" and "--server hr" in finding.fix and "more" in finding.message


def test_no_lock_and_a_broken_lock_are_errors(tmp_path: Path) -> None:
    tools, lock = _locked_copy(tmp_path)
    lock.unlink()
    (missing,) = lock_findings(lock, lambda: toolslock.current_for(tools))
    assert missing.status == "error" and "there is no tools.lock" in missing.message
    lock.write_text("{not json")
    (broken,) = lock_findings(lock, lambda: toolslock.current_for(tools))
    assert broken.status == "error" and "not valid JSON" in broken.message


def test_a_tool_that_does_not_load_is_an_error(tmp_path: Path) -> None:
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "broken.py").write_text("from app import tool\n\n\n@tool()\ndef nothing() -> str:\n    return ''\n")
    (finding,) = lock_findings(tmp_path / "tools.lock", lambda: toolslock.current_for(tools))
    assert finding.status == "error" and "cannot be loaded" in finding.message
