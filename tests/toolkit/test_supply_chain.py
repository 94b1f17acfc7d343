"""Supply chain: `make audit` runs the real pip-audit over uv.lock (against a local OSV stand-in), `make sbom`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from app.toolkit.supply_chain import (
    CLEAN,
    NOT_CHECKED,
    USAGE,
    VULNERABLE,
    IgnoreFileError,
    interpret,
    read_ignores,
    verdict,
)
from tests.support.osv import ALIAS, VULN_ID, OsvStandIn
from tests.support.servers import ServerThread, free_port
from tests.support.values import REPO

LOCKED = {p["name"]: p["version"] for p in tomllib.loads((REPO / "uv.lock").read_text())["package"]}


@pytest.fixture
def osv() -> Iterator[tuple[OsvStandIn, str]]:
    stand_in = OsvStandIn()
    with ServerThread(stand_in.app()) as server:
        yield stand_in, f"{server.url}/v1/query"


def audit(osv_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`make audit`'s command, on the OSV service at `osv_url` (pip-audit reads PIP_AUDIT_OSV_URL)."""
    return subprocess.run(
        [sys.executable, "-m", "app.toolkit.supply_chain", "audit", "--service", "osv", "--timeout", "5", *args],
        cwd=REPO,
        env={**os.environ, "PIP_AUDIT_OSV_URL": osv_url},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


@pytest.mark.slow
def test_a_known_vulnerability_in_a_locked_package_fails_the_audit(osv: tuple[OsvStandIn, str], tmp_path: Path) -> None:
    stand_in, url = osv
    stand_in.vulnerable = {"idna"}
    failed = audit(url)
    assert failed.returncode == VULNERABLE, failed.stdout + failed.stderr
    # pip-audit names a vulnerability by its CVE alias when it has one
    assert f"idna {LOCKED['idna']}: {ALIAS} ({VULN_ID}); fixed in: 99.0" in failed.stderr
    # every locked package was looked up: runtime, the optional extra and dev tools
    assert {"mcp", "azure-ai-contentsafety", "pytest", "idna"} <= set(stand_in.queried)

    ignore = tmp_path / "ignore.txt"
    ignore.write_text(f"# accepted\n{VULN_ID} until=2999-01-01 idna is only reached with trusted input here\n")
    ignored = audit(url, "--ignore-file", str(ignore))
    assert ignored.returncode == CLEAN, ignored.stdout + ignored.stderr
    assert f"no known vulnerabilities; ignored: {VULN_ID}" in ignored.stdout


@pytest.mark.slow
def test_an_unreachable_database_is_reported_loudly_not_passed() -> None:
    result = audit(f"http://127.0.0.1:{free_port()}/v1/query")
    assert result.returncode == NOT_CHECKED
    assert "AUDIT NOT RUN: the osv vulnerability database could not be reached" in result.stderr


@pytest.mark.slow
def test_make_audit_passes_when_the_database_knows_no_vulnerabilities(osv: tuple[OsvStandIn, str]) -> None:
    stand_in, url = osv
    result = subprocess.run(
        ["make", "-s", "audit", "AUDIT_SERVICE=osv"],
        cwd=REPO,
        env={**os.environ, "PIP_AUDIT_OSV_URL": url},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "locked packages checked (osv); no known vulnerabilities" in result.stdout
    assert f"audit: {len(set(stand_in.queried))} locked packages checked (osv)" in result.stdout


def test_packages_pip_audit_skipped_never_count_as_a_pass() -> None:
    # the shape pip-audit reports when the PyPI JSON API has no entry for a release (it still exits 0)
    skipped = {"dependencies": [{"name": "anyio", "skip_reason": "Dependency not found on PyPI: anyio (4.16.0)"}]}
    status, message = verdict(interpret(skipped), "pypi", [])
    assert status == NOT_CHECKED and message.startswith("AUDIT INCOMPLETE: 1 of 1 locked packages")
    mixed = {"dependencies": [*skipped["dependencies"], {"name": "mcp", "version": "2.3.0", "vulns": []}]}
    assert verdict(interpret(mixed), "pypi", [])[0] == NOT_CHECKED
    assert verdict(interpret({"dependencies": []}), "pypi", [])[0] == NOT_CHECKED
    clean = {"dependencies": [{"name": "mcp", "version": "2.3.0", "vulns": []}]}
    assert verdict(interpret(clean), "pypi", [])[0] == CLEAN


@pytest.mark.slow
def test_ignore_entries_need_a_reason(tmp_path: Path) -> None:
    ignore = tmp_path / "ignore.txt"
    ignore.write_text("# comment\n\nGHSA-aaaa-bbbb-cccc  reached only from the CLI, see issue #12\n")
    active, expired = read_ignores(ignore)
    assert [(e.id, e.reason) for e in active] == [("GHSA-aaaa-bbbb-cccc", "reached only from the CLI, see issue #12")]
    assert expired == []
    ignore.write_text("PYSEC-2024-1\n")
    with pytest.raises(IgnoreFileError, match=":1: expected"):
        read_ignores(ignore)
    ignore.write_text("PYSEC-2024-1 until=2024-02-01 old\n")
    assert read_ignores(ignore, today=date(2024, 3, 1))[1][0].id == "PYSEC-2024-1"
    result = audit("http://127.0.0.1:9/v1/query", "--ignore-file", str(tmp_path / "bad.txt"))  # missing file: none
    assert result.returncode == NOT_CHECKED
    (tmp_path / "bad.txt").write_text("no-reason-here\n")
    assert audit("http://127.0.0.1:9/v1/query", "--ignore-file", str(tmp_path / "bad.txt")).returncode == USAGE


def test_the_committed_ignore_file_is_valid() -> None:
    read_ignores(REPO / "config" / "pip-audit-ignore.txt")


@pytest.mark.slow
def test_make_sbom_writes_cyclonedx_for_the_runtime_dependencies(tmp_path: Path) -> None:
    output = tmp_path / "sbom.cdx.json"
    result = subprocess.run(
        ["make", "-s", "sbom", f"SBOM={output}"], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    bom = json.loads(output.read_text())
    assert bom["bomFormat"] == "CycloneDX" and bom["specVersion"] == "1.5"
    components = {c["name"]: c for c in bom["components"]}
    assert components["mcp"]["version"] == LOCKED["mcp"]
    assert components["mcp"]["purl"] == f"pkg:pypi/mcp@{LOCKED['mcp']}"
    hashes = [h for ref in components["mcp"]["externalReferences"] for h in ref.get("hashes", [])]
    assert hashes and all(h["alg"] == "SHA-256" and len(h["content"]) == 64 for h in hashes)
    assert "pytest" not in components and "ruff" not in components  # dev tools are not shipped
