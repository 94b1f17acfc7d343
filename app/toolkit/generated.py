"""The pages generated from the code (the settings reference, the command-line reference, the package map): write
one, or check that the committed one is current, with the same messages and exit codes for each."""

from __future__ import annotations

import sys
from pathlib import Path


def write_or_check(path: Path, text: str, *, check: bool, command: str) -> int:
    """Write `text` to `path` (0), or with `check` compare: 0 when current, 1 when stale (naming `command`)."""
    if check:
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current != text:
            print(f"{path} is stale: run `{command}` (or `make docs`) and commit it", file=sys.stderr)
            return 1
        return 0
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}")
    return 0
