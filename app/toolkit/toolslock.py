"""`python -m app.toolkit.toolslock write|check`: regenerate or check `tools.lock` (`make tools-lock`).

What is pinned, and the startup check, live in `app/server/toolslock.py`; this is the command line around them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from app.catalog.registry import ToolDiscoveryError
from app.server.toolslock import HINT, ToolLockError, differences, read, render, served_sync

__all__ = ["HINT", "ToolLockError", "current_for", "differences", "main", "read", "render"]


def current_for(tools_dir: Path) -> dict[str, Any]:
    """What a server built on `tools_dir` would serve: the core build every entry point shares (app/compose/core.py),
    as a review build (no tool secrets, audit or telemetry; no settings from the environment or `.env`, so the lock
    is the same wherever it is written; no network or auth). One server: the folder's."""
    from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

    from app.compose.core import build_core
    from app.settings import Settings

    class ReviewSettings(Settings):
        @classmethod
        def settings_customise_sources(
            cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource, *_: Any, **__: Any
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (init_settings,)

    settings = ReviewSettings(app_env="development", tools={"dir": tools_dir})
    core = build_core(settings, for_review=True)
    return served_sync(core.mcp, core.catalog)


def main(argv: list[str] | None = None) -> int:
    from app.settings import ToolsSettings

    default_dir = ToolsSettings().dir
    parser = argparse.ArgumentParser(prog="python -m app.toolkit.toolslock", description=__doc__)
    parser.add_argument("command", choices=["write", "check"])
    parser.add_argument("--tools-dir", type=Path, default=default_dir)
    parser.add_argument("--lock", type=Path, default=None, help="default: tools.lock beside the tools directory")
    parser.add_argument(
        "--server", default=None, help="a server of this app (SERVERS__{KEY}): its tools folder and its lock"
    )
    args = parser.parse_args(argv)
    if args.server:
        args.tools_dir, args.lock = _server_paths(parser, args.server.lower())
    lock_path = args.lock or args.tools_dir.resolve().parent / "tools.lock"
    try:
        current = current_for(args.tools_dir)
        if args.command == "write":
            before = read(lock_path)
            lock_path.write_text(render(current), encoding="utf-8")
            changes = differences(before, current)
            print(f"wrote {lock_path}" + ("".join(f"\n  {c}" for c in changes) if changes else " (unchanged)"))
            return 0
        found = differences(read(lock_path), current)
    except ToolDiscoveryError as exc:
        print(f"tools error: {exc}", file=sys.stderr)
        return 2
    if found:
        print(f"{lock_path} is stale:" + "".join(f"\n  {c}" for c in found) + f"\n{HINT}", file=sys.stderr)
        return 1
    print(f"{lock_path} matches the served tools")
    return 0


def _server_paths(parser: argparse.ArgumentParser, key: str) -> tuple[Path, Path]:
    """SERVERS__{KEY}'s tools folder and lock, as the app reads them (environment and `.env`)."""
    from pydantic import ValidationError

    from app.settings import Settings, UnknownServerError, describe_invalid

    try:
        one = Settings(app_env="development").served_one(key)
    except ValidationError as exc:
        parser.error(describe_invalid(exc))
    except UnknownServerError as exc:
        parser.error(f"{exc}: set SERVERS__{key.upper()}__PATH, see docs/servers.md")
    return one.tools_dir, one.lock_path


if __name__ == "__main__":
    raise SystemExit(main())
