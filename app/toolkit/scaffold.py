"""`make new-tool NAME=...`: a new tool module and its test, from the templates in app/toolkit/templates/."""

from __future__ import annotations

import argparse
import keyword
import re
import sys
from pathlib import Path
from string import Template

from app.catalog.registry import ToolDiscoveryError, discover

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = Path(__file__).resolve().parent / "templates"
NAME = re.compile(r"[a-z][a-z0-9_]{0,47}")


class ScaffoldError(ValueError):
    """The name is unusable or would overwrite something; nothing was written."""


def scaffold(name: str, tools_dir: Path, tests_dir: Path) -> list[Path]:
    """Write `tools_dir/NAME.py` and `tests_dir/test_NAME.py`; refuses bad names and never overwrites."""
    if not NAME.fullmatch(name) or keyword.iskeyword(name) or name.startswith("test") or name.endswith("_"):
        raise ScaffoldError(
            f"NAME must be a lower-case Python identifier (letters, digits, _; at most 48 characters; "
            f"not a keyword, not starting with 'test'), got {name!r}"
        )
    targets = {tools_dir / f"{name}.py": "tool.py.tmpl", tests_dir / f"test_{name}.py": "test_tool.py.tmpl"}
    existing = [str(path) for path in targets if path.exists()]
    if existing:
        raise ScaffoldError(f"{', '.join(existing)} already exists; choose another NAME")
    try:
        taken = {spec.name for spec in discover(tools_dir).of("tool")}
    except ToolDiscoveryError as exc:
        raise ScaffoldError(f"fix the tools folder first: {exc}") from None
    if name in taken:
        raise ScaffoldError(f"a tool named {name!r} already exists in {tools_dir}")
    tests_dir.mkdir(parents=True, exist_ok=True)
    for path, template in targets.items():
        text = Template((TEMPLATES / template).read_text(encoding="utf-8")).substitute(name=name)
        with path.open("x", encoding="utf-8") as handle:  # "x": never clobber, even in a race
            handle.write(text)
    return list(targets)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.toolkit.scaffold", description=__doc__)
    parser.add_argument("name")
    parser.add_argument("--tools-dir", type=Path, default=REPO / "tools")
    parser.add_argument("--tests-dir", type=Path, default=REPO / "tests" / "tools")
    args = parser.parse_args(argv)
    try:
        written = scaffold(args.name, args.tools_dir, args.tests_dir)
    except ScaffoldError as exc:
        print(f"new-tool: {exc}", file=sys.stderr)
        return 2
    for path in written:
        print(f"created {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
