"""Entry point: `uv run python bench/run.py [--quick] [--targets a,b,c,d] ...` (see bench/README.md)."""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
