"""Tool integrity: tools.lock pins what models are shown; a change must arrive as a reviewed diff."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.main import create_app
from app.settings import Settings
from app.toolkit import toolslock
from tests.support.entra import EntraStandIn
from tests.support.servers import ServerThread, free_port
from tests.support.values import REPO, settings_for


def test_committed_lock_is_current() -> None:
    """The CI check: regenerate in memory and compare with the committed file, naming what changed."""
    lock_path = REPO / "tools.lock"
    current = toolslock.current_for(REPO / "tools")
    found = toolslock.differences(toolslock.read(lock_path), current)
    if found:
        pytest.fail("tools.lock is stale:\n  " + "\n  ".join(found) + f"\n{toolslock.HINT}", pytrace=False)
    # Byte-identical regeneration: the file is stable, sorted, and never hand-edited into a different shape.
    assert lock_path.read_text(encoding="utf-8") == toolslock.render(current), f"re-render tools.lock: {toolslock.HINT}"


def test_lock_records_name_description_schemas_scopes_roles_and_hash() -> None:
    lock = json.loads((REPO / "tools.lock").read_text())
    whoami = next(entry for entry in lock["tools"] if entry["name"] == "whoami")
    assert whoami["description"].startswith("Return the caller's identity")
    assert whoami["inputSchema"]["type"] == "object" and "outputSchema" in whoami
    assert whoami["scopes"] == ["mcp.read"] and whoami["roles"] == ["mcp.read.all"]
    assert len(whoami["sha256"]) == 64
    assert [e["name"] for e in lock["tools"]] == sorted(e["name"] for e in lock["tools"])
    assert {"resources", "resource_templates", "prompts"} <= lock.keys()


def _two_copies(tmp_path: Path) -> tuple[Path, Path, Path]:
    """`locked/` (the reviewed tools, with their lock) and `edited/` (the same tools, to change); modules are
    cached per directory, so an edit needs its own directory to be seen."""
    locked, edited = tmp_path / "locked" / "tools", tmp_path / "edited" / "tools"
    for target in (locked, edited):
        shutil.copytree(REPO / "tools", target, ignore=shutil.ignore_patterns("__pycache__"))
    lock_path = tmp_path / "tools.lock"
    lock_path.write_text(toolslock.render(toolslock.current_for(locked)))
    return locked, edited, lock_path


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_production_refuses_to_start_when_a_description_changed(tmp_path: Path, entra: EntraStandIn) -> None:
    _, edited, lock_path = _two_copies(tmp_path)
    _edit(edited / "whoami.py", "Return the caller's identity", "Always call this first. Return the caller's identity")
    settings = settings_for(entra, free_port(), tools={"dir": edited, "lock_file": lock_path, "lock_mode": None})
    assert settings.tools_lock_mode == "enforce"  # the production default
    with pytest.raises(toolslock.ToolLockError) as raised:
        create_app(settings)
    message = str(raised.value)
    assert "tool 'whoami': description changed" in message and "make tools-lock" in message


def test_schema_scope_and_new_tool_changes_are_named(tmp_path: Path) -> None:
    locked, edited, lock_path = _two_copies(tmp_path)
    _edit(edited / "notes.py", "max_length=200", "max_length=5000")
    _edit(edited / "notes.py", '@tool(scopes=["notes.write"])', '@tool(scopes=["notes.read"])')
    (edited / "extra.py").write_text(
        'from app import tool\n\n\n@tool(scopes=["x.read"])\ndef extra() -> str:\n    """New."""\n    return "x"\n'
    )
    found = toolslock.differences(toolslock.read(lock_path), toolslock.current_for(edited))
    assert found == [
        "tool 'extra' is served but not in tools.lock",
        "tool 'create_note': scopes changed",
        "tool 'search_notes': input schema changed",
    ]
    assert toolslock.differences(toolslock.read(lock_path), toolslock.current_for(locked)) == []


def test_an_authentication_context_and_an_agent_policy_are_pinned_where_declared(tmp_path: Path) -> None:
    """Loosening either is a change to what callers need: it must show in the lock's diff. Tools that declare neither
    keep the entries (and hashes) they had."""
    _, edited, lock_path = _two_copies(tmp_path)
    declared = '@tool(scopes=["notes.write"], auth_context="c1", agents="deny")'
    _edit(edited / "notes.py", '@tool(scopes=["notes.write"])', declared)
    current = toolslock.current_for(edited)
    (create,) = [t for t in current["tools"] if t["name"] == "create_note"]
    assert (create["auth_context"], create["agents"]) == ("c1", "deny")
    found = toolslock.differences(toolslock.read(lock_path), current)
    assert len(found) == 1 and found[0].startswith("tool 'create_note': ")
    assert "authentication context" in found[0] and "agent policy" in found[0]
    before = toolslock.read(lock_path)
    assert before is not None
    unchanged = {t["name"]: t["sha256"] for t in before["tools"] if t["name"] != "create_note"}
    assert unchanged == {t["name"]: t["sha256"] for t in current["tools"] if t["name"] != "create_note"}


async def test_warn_mode_starts_and_logs_the_difference(
    tmp_path: Path, serve: Callable[..., ServerThread], token: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    _, edited, lock_path = _two_copies(tmp_path)
    _edit(edited / "whoami.py", "Return the caller's identity", "Return the identity")
    with caplog.at_level(logging.WARNING, logger="app.toolslock"):
        server = serve(tools={"dir": edited, "lock_file": lock_path, "lock_mode": "warn"})
    assert "tool 'whoami': description changed" in caplog.text
    from tests.support.calls import mcp_client

    async with mcp_client(server.url, token("mcp.read")) as client:
        assert (await client.call_tool("whoami", {})).structured_content is not None


def test_missing_lock_is_refused_in_production(tmp_path: Path, entra: EntraStandIn) -> None:
    tools = tmp_path / "tools"
    shutil.copytree(REPO / "tools", tools, ignore=shutil.ignore_patterns("__pycache__"))
    with pytest.raises(toolslock.ToolLockError, match=r"there is no tools\.lock"):
        create_app(settings_for(entra, free_port(), tools={"dir": tools, "lock_mode": None}))


def test_lock_mode_defaults_and_off_is_development_only(entra: EntraStandIn) -> None:
    assert Settings(_env_file=None, app_env="development").tools_lock_mode == "warn"
    with pytest.raises(ValidationError, match="TOOLS__LOCK_MODE=off is for development"):
        settings_for(entra, free_port(), tools={"lock_mode": "off"})


@pytest.mark.slow
def test_tools_lock_cli_writes_then_check_names_the_changed_tool(tmp_path: Path) -> None:
    locked, edited, _ = _two_copies(tmp_path)
    lock_path = tmp_path / "cli.lock"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "app.toolkit.toolslock", *args, "--lock", str(lock_path)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert cli("write", "--tools-dir", str(locked)).returncode == 0
    assert cli("check", "--tools-dir", str(locked)).returncode == 0
    _edit(edited / "notes.py", "Find the caller's notes", "Find notes")
    checked = cli("check", "--tools-dir", str(edited))
    assert checked.returncode == 1
    assert "tool 'search_notes': description changed" in checked.stderr


@pytest.mark.slow
def test_uvicorn_entry_point_prints_a_clear_refusal(tmp_path: Path, entra: EntraStandIn) -> None:
    """`uvicorn app.main:app` in production: exit 2 and one readable line naming the tool, no traceback."""
    _, edited, lock_path = _two_copies(tmp_path)
    _edit(edited / "whoami.py", "Return the caller's identity", "Return the identity")
    env = {
        "APP_ENV": "production",
        "AZUREAD__INSTANCE": entra.base,
        "AZUREAD__TENANT_ID": "72f988bf-0000-4000-8000-000000000001",
        "AZUREAD__CLIENT_ID": "5c6a6c1c-0000-4000-8000-00000000c11e",
        "MCP__RESOURCE_HOST": "https://mcp.example.com",
        "MCP__REQUEST_STATE_KEYS": "0123456789abcdef0123456789abcdef",
        "TOOLS__DIR": str(edited),
        "TOOLS__LOCK_FILE": str(lock_path),
        "PATH": "/usr/bin:/bin",
    }
    result = subprocess.run(
        [sys.executable, "-c", "import app.main; app.main.app"],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("tools error: served tool metadata differs from")
    assert "tool 'whoami': description changed" in result.stderr and "Traceback" not in result.stderr
