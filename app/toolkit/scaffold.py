"""`make new-tool NAME=...` and `make new-route NAME=...`: a new tool or route module and its test, from the
templates in app/toolkit/templates/."""

from __future__ import annotations

import argparse
import keyword
import re
import sys
from pathlib import Path
from string import Template

from app.api.discovery import RouteDiscoveryError, discover_routes
from app.catalog.discovery import discover
from app.catalog.registry import ToolDiscoveryError

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = Path(__file__).resolve().parent / "templates"
NAME = re.compile(r"[a-z][a-z0-9_]{0,47}")


class ScaffoldError(ValueError):
    """The name is unusable or would overwrite something; nothing was written."""


def scaffold(name: str, tools_dir: Path, tests_dir: Path, kind: str = "tool") -> list[Path]:
    """Write `tools_dir/NAME.py` (a route module's folder for `kind="route"`) and `tests_dir/test_NAME.py`; refuses
    bad names and never overwrites."""
    if not NAME.fullmatch(name) or keyword.iskeyword(name) or name.startswith("test") or name.endswith("_"):
        raise ScaffoldError(
            f"NAME must be a lower-case Python identifier (letters, digits, _; at most 48 characters; "
            f"not a keyword, not starting with 'test'), got {name!r}"
        )
    targets = {tools_dir / f"{name}.py": f"{kind}.py.tmpl", tests_dir / f"test_{name}.py": f"test_{kind}.py.tmpl"}
    existing = [str(path) for path in targets if path.exists()]
    if existing:
        raise ScaffoldError(f"{', '.join(existing)} already exists; choose another NAME")
    _check_untaken(name, tools_dir, kind)
    tests_dir.mkdir(parents=True, exist_ok=True)
    for path, template in targets.items():
        text = Template((TEMPLATES / template).read_text(encoding="utf-8")).substitute(name=name)
        with path.open("x", encoding="utf-8") as handle:  # "x": never clobber, even in a race
            handle.write(text)
    return list(targets)


def _check_untaken(name: str, directory: Path, kind: str) -> None:
    """The folder must load as the server would load it, and not already serve `name`."""
    try:
        if kind == "tool":
            taken = {spec.name for spec in discover(directory).of("tool")}
        else:
            taken = {getattr(r, "name", "") for router in discover_routes(directory).routers for r in router.routes}
    except (ToolDiscoveryError, RouteDiscoveryError) as exc:
        raise ScaffoldError(f"fix the {kind}s folder first: {exc}") from None
    if name in taken:
        raise ScaffoldError(f"a {kind} named {name!r} already exists in {directory}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.toolkit.scaffold", description=__doc__)
    parser.add_argument("name")
    parser.add_argument("--kind", choices=["tool", "route"], default="tool")
    parser.add_argument("--dir", type=Path, help="the tools or routes folder (default: the repository's)")
    parser.add_argument("--tests-dir", type=Path, help="default: tests/tools or tests/routes")
    args = parser.parse_args(argv)
    folder = args.dir or REPO / f"{args.kind}s"
    try:
        written = scaffold(args.name, folder, args.tests_dir or REPO / "tests" / f"{args.kind}s", args.kind)
    except ScaffoldError as exc:
        print(f"new-{args.kind}: {exc}", file=sys.stderr)
        return 2
    for path in written:
        print(f"created {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
