"""The report: a check that raises becomes an error finding (its class name, never its text); the text and JSON
renderings; the exit code."""

from __future__ import annotations

import json

from app.core.findings import Finding, error, ok, skip, warn
from app.doctor.report import as_json, as_text, exit_code, guarded, labelled

FINDINGS = [
    ok("issuer", "https://login.microsoftonline.com/t/v2.0"),
    warn("prm", "unreachable", "start the server"),
    error("tools-lock", "stale", "make tools-lock"),
    skip("redis", "not Redis"),
]


def test_a_check_that_raises_becomes_an_error_finding_without_the_exception_text() -> None:
    def broken() -> list[Finding]:
        raise KeyError("a-value-that-must-not-show")

    (finding,) = guarded("keyvault", broken)
    assert (finding.check, finding.status) == ("keyvault", "error")
    assert "KeyError" in finding.message and "a-value-that-must-not-show" not in finding.message and finding.fix


def test_text_has_one_line_per_finding_its_fix_below_and_a_summary() -> None:
    plain = as_text(FINDINGS, terminal=False).splitlines()
    assert plain == [
        "ok issuer: https://login.microsoftonline.com/t/v2.0",
        "warn prm: unreachable",
        "  fix: start the server",
        "error tools-lock: stale",
        "  fix: make tools-lock",
        "skip redis: not Redis",
        "unhealthy: 1 ok, 1 warning(s), 1 error(s), 1 skipped",
    ]
    marks = [line.split(" ", 1)[0] for line in as_text(FINDINGS, terminal=True).splitlines()[:-1]]
    assert marks == ["✓", "!", "", "✗", "", "-"]


def test_json_is_ok_and_the_findings() -> None:
    document = json.loads(as_json(FINDINGS))
    assert document["ok"] is False
    assert document["findings"][2] == {
        "check": "tools-lock",
        "status": "error",
        "message": "stale",
        "fix": "make tools-lock",
    }
    assert json.loads(as_json(FINDINGS[:2]))["ok"] is True


def test_the_exit_code_is_1_only_with_an_error() -> None:
    assert exit_code(FINDINGS) == 1 and exit_code([f for f in FINDINGS if f.status != "error"]) == 0


def test_a_servers_findings_carry_its_key() -> None:
    assert labelled("hr", FINDINGS[:1])[0].message.startswith("hr: ")
    assert labelled("", FINDINGS[:1]) == FINDINGS[:1]
