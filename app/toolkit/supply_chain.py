"""`make audit`: pip-audit over every package pinned (with hashes) in uv.lock; `make sbom`: a CycloneDX SBOM.

pip-audit alone exits 0 when it could not check anything (every package "not found", or the feed unreachable),
so this wrapper reads its JSON report and gives each outcome its own exit status:
0 checked and clean, 1 known vulnerabilities, 2 usage or ignore-file error, 3 NOT (fully) CHECKED.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
IGNORE_FILE = REPO / "config" / "pip-audit-ignore.txt"
CLEAN, VULNERABLE, USAGE, NOT_CHECKED = 0, 1, 2, 3
_NETWORK = re.compile(r"ConnectionError|Could not connect|Max retries|NameResolution|timed out|ServiceError|SSLError")
_IGNORE_LINE = re.compile(r"(?P<id>[A-Za-z][\w.:-]+)\s+(?:until=(?P<until>\d{4}-\d{2}-\d{2})\s+)?(?P<reason>\S.*)")


class IgnoreFileError(ValueError):
    """A line of the ignore file is not `ID [until=YYYY-MM-DD] reason`."""


@dataclass(frozen=True)
class Ignore:
    id: str
    reason: str
    until: date | None = None


def read_ignores(path: Path, today: date | None = None) -> tuple[list[Ignore], list[Ignore]]:
    """(active, expired) entries. Every entry needs a reason; an `until=` date makes it lapse by itself."""
    today = today or datetime.now(UTC).date()
    active: list[Ignore] = []
    expired: list[Ignore] = []
    if not path.is_file():
        return active, expired
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _IGNORE_LINE.fullmatch(line)
        if match is None:
            raise IgnoreFileError(f"{path}:{number}: expected `VULN-ID [until=YYYY-MM-DD] reason`, got {raw!r}")
        until = date.fromisoformat(match["until"]) if match["until"] else None
        entry = Ignore(match["id"], match["reason"].strip(), until)
        (expired if until is not None and until < today else active).append(entry)
    return active, expired


@dataclass
class Report:
    """What pip-audit's JSON says: found vulnerabilities, and packages it could not check."""

    checked: int = 0
    vulnerable: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def interpret(data: dict[str, Any]) -> Report:
    report = Report()
    for dep in data.get("dependencies", []):
        name, version = dep.get("name", "?"), dep.get("version", "?")
        if "skip_reason" in dep:
            report.skipped.append(f"{name}: {dep['skip_reason']}")
            continue
        report.checked += 1
        for vuln in dep.get("vulns", []):
            fixes = ", ".join(vuln.get("fix_versions", [])) or "no fix yet"
            aliases = ", ".join(vuln.get("aliases", []))
            report.vulnerable.append(
                f"{name} {version}: {vuln.get('id')}" + (f" ({aliases})" if aliases else "") + f"; fixed in: {fixes}"
            )
    return report


def export_requirements(target: Path) -> None:
    """Every package in uv.lock (all groups and extras), pinned with hashes, as pip-audit reads them."""
    command = [_uv(), "export", "--frozen", "--quiet", "--all-groups", "--all-extras", "--no-emit-project"]
    command += ["--format", "requirements-txt", "--output-file", str(target)]
    subprocess.run(command, cwd=REPO, check=True)  # noqa: S603 (fixed argv, no shell)


def audit(requirements: Path | None, ignore_file: Path, service: str, timeout: int) -> int:
    try:
        ignores, expired = read_ignores(ignore_file)
    except IgnoreFileError as exc:
        print(f"audit: {exc}", file=sys.stderr)
        return USAGE
    for entry in expired:
        print(f"audit: ignore of {entry.id} expired on {entry.until}; it applies no more ({entry.reason})")
    with tempfile.TemporaryDirectory(prefix="audit-") as tmp:
        reqs = requirements or Path(tmp) / "requirements.txt"
        if requirements is None:
            export_requirements(reqs)
        out = Path(tmp) / "report.json"
        command = [sys.executable, "-m", "pip_audit", "-r", str(reqs), "--require-hashes", "--disable-pip"]
        command += ["--vulnerability-service", service, "--timeout", str(timeout), "--progress-spinner", "off"]
        command += ["--format", "json", "--output", str(out), "--cache-dir", str(Path(tmp) / "cache")]
        for entry in ignores:
            command += ["--ignore-vuln", entry.id]
        ran = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603 (fixed argv)
        data = json.loads(out.read_text()) if out.is_file() and out.stat().st_size else None
    if data is None:
        detail = (ran.stderr.strip().splitlines() or ["no output"])[-1][:300]
        if not _NETWORK.search(ran.stderr):
            print(f"audit: pip-audit failed (exit {ran.returncode}): {detail}", file=sys.stderr)
            return USAGE
        _loud(f"AUDIT NOT RUN: the {service} vulnerability database could not be reached ({detail})")
        return NOT_CHECKED
    status, message = verdict(interpret(data), service, [entry.id for entry in ignores])
    if status == NOT_CHECKED:
        _loud(message)
    else:
        print(message, file=sys.stderr if status else sys.stdout)
    if status == VULNERABLE:
        print(f"Upgrade them (uv lock --upgrade-package NAME), or add an ignore with a reason to {ignore_file}.")
    return status


def verdict(report: Report, service: str, ignored: list[str]) -> tuple[int, str]:
    """Found vulnerabilities fail; anything not checked is NOT_CHECKED, never a pass."""
    if report.vulnerable:
        lines = "".join(f"\n  {line}" for line in report.vulnerable)
        return VULNERABLE, f"audit: KNOWN VULNERABILITIES in locked dependencies ({service} database):{lines}"
    if report.skipped or not report.checked:
        total = len(report.skipped) + report.checked
        return NOT_CHECKED, (
            f"AUDIT INCOMPLETE: {len(report.skipped)} of {total} locked packages could not be checked against the "
            f"{service} vulnerability database (e.g. {'; '.join(report.skipped[:3]) or 'nothing was listed'}). "
            "This run does NOT show that the dependencies are free of known vulnerabilities."
        )
    return CLEAN, (
        f"audit: {report.checked} locked packages checked ({service}); no known vulnerabilities; "
        f"ignored: {', '.join(ignored) or 'none'}"
    )


def _loud(message: str) -> None:
    bar = "!" * 100
    print(f"{bar}\n!! {message}\n{bar}", file=sys.stderr)


def sbom(output: Path) -> int:
    """CycloneDX 1.5 JSON for what ships (runtime dependencies, no dev tools), with each package's hashes."""
    output.parent.mkdir(parents=True, exist_ok=True)
    command = [_uv(), "export", "--frozen", "--quiet", "--no-dev", "--format", "cyclonedx1.5"]
    subprocess.run([*command, "--output-file", str(output)], cwd=REPO, check=True)  # noqa: S603 (fixed argv)
    components = len(json.loads(output.read_text()).get("components", []))
    print(f"sbom: wrote {output} (CycloneDX 1.5, {components} components)")
    return CLEAN


def _uv() -> str:
    return shutil.which("uv") or str(Path.home() / ".local" / "bin" / "uv")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.toolkit.supply_chain", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    audit_cmd = sub.add_parser("audit", help="pip-audit the locked dependencies")
    audit_cmd.add_argument("--requirements", type=Path, help="audit this hashed requirements file, not uv.lock")
    audit_cmd.add_argument("--ignore-file", type=Path, default=IGNORE_FILE)
    audit_cmd.add_argument("--service", choices=["pypi", "osv"], default="pypi")
    audit_cmd.add_argument("--timeout", type=int, default=15)
    sbom_cmd = sub.add_parser("sbom", help="write a CycloneDX SBOM")
    sbom_cmd.add_argument("--output", type=Path, default=REPO / "dist" / "sbom.cdx.json")
    args = parser.parse_args(argv)
    if args.command == "audit":
        return audit(args.requirements, args.ignore_file, args.service, args.timeout)
    return sbom(args.output)


if __name__ == "__main__":
    raise SystemExit(main())
