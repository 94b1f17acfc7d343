"""The deployment files are checked by the real tools: hadolint, the Kubernetes schemas, and nginx itself."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from app.edge.headers import PROBE_PATHS
from app.settings import Settings
from tests.support.values import REPO

BIN = Path(sys.executable).parent  # the locked dev tools live beside the interpreter


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=REPO, capture_output=True, text=True, timeout=120, check=False, env={**os.environ, **(env or {})}
    )


def test_hadolint_passes_on_the_dockerfile() -> None:
    result = _run(str(BIN / "hadolint"), "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_would_catch_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\n")
    assert _run(str(BIN / "hadolint"), str(bad)).returncode != 0


def test_kubernetes_manifests_validate_against_the_schemas() -> None:
    result = _run("config/k8s/validate.sh", env={"KUBERNETES_VALIDATE": str(BIN / "kubernetes-validate")})
    assert result.returncode == 0, result.stdout + result.stderr


def test_kubernetes_validation_catches_a_typo(tmp_path: Path) -> None:
    broken = tmp_path / "deployment.yaml"
    broken.write_text((REPO / "config/k8s/deployment.yaml").read_text().replace("readinessProbe", "readynessProbe"))
    result = _run("config/k8s/validate.sh", str(broken), env={"KUBERNETES_VALIDATE": str(BIN / "kubernetes-validate")})
    assert result.returncode != 0


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is installed by .ci/run (nginx-light)")
def test_nginx_accepts_both_configs() -> None:
    result = _run("config/nginx-check.sh")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_configmap_is_a_valid_production_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    """The manifests' settings are ones the app accepts, and the public host passes its own Host check."""
    data = yaml.safe_load((REPO / "config/k8s/configmap.yaml").read_text())["data"]
    for name, value in data.items():
        if not name.startswith("KEYVAULT__"):  # no vault here: the secret it would supply is set below
            monkeypatch.setenv(name, str(value))
    monkeypatch.setenv("MCP__REQUEST_STATE_KEYS", "k" * 32)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.app_env == "production"
    assert settings.security.trusted_proxies  # the pods sit behind a proxy
    assert settings.mcp.resource_host is not None
    assert settings.mcp.resource_host.split("://", 1)[1] in settings.allowed_hosts


def test_probes_use_the_endpoints_that_skip_the_host_check() -> None:
    """kubelet probes send the pod IP as Host: they must hit the probe paths, which the allow-list exempts."""
    deployment = yaml.safe_load((REPO / "config/k8s/deployment.yaml").read_text())
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    probes = [container[k] for k in ("startupProbe", "livenessProbe", "readinessProbe") if k in container]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert {probe["httpGet"]["path"] for probe in probes} <= PROBE_PATHS


def test_session_affinity_is_keyed_on_what_the_first_request_carries() -> None:
    """Sessions (the default) live in one process: nginx and the ingress pin a caller to one, on a key `initialize`
    already has (its bearer token; Mcp-Session-Id comes only with the answer to it)."""
    for conf in ("config/nginx.conf", "config/nginx.test.conf.template"):
        upstream = (REPO / conf).read_text().split("upstream mcp_app {", 1)[1].split("}", 1)[0]
        assert "hash $http_authorization consistent;" in upstream, conf
    ingress = yaml.safe_load((REPO / "config/k8s/ingress.yaml").read_text())
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/upstream-hash-by"] == "$http_authorization"
    assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    assert "ingress.yaml" in yaml.safe_load((REPO / "config/k8s/kustomization.yaml").read_text())["resources"]
    backends = {p["backend"]["service"]["name"] for r in ingress["spec"]["rules"] for p in r["http"]["paths"]}
    assert backends == {yaml.safe_load((REPO / "config/k8s/service.yaml").read_text())["metadata"]["name"]}
