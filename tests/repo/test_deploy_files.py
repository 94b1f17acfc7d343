"""The deployment files are checked by the real tools: hadolint, the Kubernetes schemas, and nginx itself."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from app.edge.headers import PROBE_PATHS
from app.settings import Settings
from app.settings.servers import NAME
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
    settings = Settings(_env_file=None)
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


# ---- several MCP servers in one app (docs/servers.md): every server's path is routed, with the MCP settings -----
NGINX_CONFS = ("config/nginx.conf", "config/nginx.test.conf.template")
STREAMING = {"proxy_buffering off", "proxy_cache off", "gzip off", "proxy_read_timeout 300s", "proxy_send_timeout 300s"}


def _locations(conf: str) -> dict[str, set[str]]:
    """Each `location` of an nginx config (comments dropped): its match, e.g. `~ ^/mcp$`, and its directives."""
    text = re.sub(r"#[^\n]*", "", (REPO / conf).read_text())
    return {
        " ".join(match.split()): {" ".join(d.split()) for d in body.split(";") if d.strip()}
        for match, body in re.findall(r"location\s+([^{]+?)\s*\{([^}]*)\}", text)
    }


def _mcp_location(conf: str) -> str:
    """The regex of the one location that proxies MCP: every MCP path shares its settings."""
    mcp = [match for match, directives in _locations(conf).items() if "proxy_buffering off" in directives]
    assert len(mcp) == 1, (conf, mcp)
    kind, _, pattern = mcp[0].partition(" ")
    assert kind == "~", f"{conf}: the MCP location is a case-sensitive regex, as the app's paths are"
    return pattern


def test_one_nginx_location_streams_every_mcp_servers_path() -> None:
    """`/mcp` and `/{name}/mcp` (SERVERS__HR__PATH=/hr/mcp) reach the app with the MCP settings; nothing around them
    does, and the production and test configurations route the same paths the same way."""
    for conf in NGINX_CONFS:
        pattern = _mcp_location(conf)
        assert _locations(conf)[f"~ {pattern}"] >= STREAMING, conf
        assert pattern == _mcp_location(NGINX_CONFS[0])
        for path in ("/mcp", "/hr/mcp", "/finance-eu/mcp"):
            assert re.search(pattern, path), (conf, path)
        for path in ("/mcp/", "/hr/mcp/", "/hr/mcp/x", "/hr", "/a/b/mcp", "/api/whoami", "/HR/mcp", "/mcpx"):
            assert not re.search(pattern, path), (conf, path)
        # Each server's metadata, /.well-known/oauth-protected-resource{path}, is under the well-known prefix.
        assert "proxy_pass http://mcp_app" in _locations(conf)["^~ /.well-known/"], conf


@given(st.from_regex(NAME, fullmatch=True))
def test_the_mcp_location_admits_the_conventional_path_of_every_server_name(name: str) -> None:
    assert re.search(_mcp_location("config/nginx.conf"), f"/{name}/mcp")


def _uncommented(text: str, first: str) -> str:
    """`text` with the commented-out example that starts at the line ending in `first` made live: that line and the
    ones after it with the same comment prefix (up to a blank line or a live one) lose their `# `."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.rstrip().endswith(first) and "#" in line)
    prefix = lines[start][: lines[start].index("#") + 2]
    end = start
    while end < len(lines) and lines[end].startswith(prefix):
        lines[end] = lines[end][: len(prefix) - 2] + lines[end][len(prefix) :]
        end += 1
    return "\n".join(lines) + "\n"


def test_the_second_server_example_is_a_valid_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    """Uncommented, the ConfigMap's `SERVERS__HR__*` lines are a production configuration with two servers."""
    text = _uncommented((REPO / "config/k8s/configmap.yaml").read_text(), "# SERVERS__HR__PATH: /hr/mcp")
    data = yaml.safe_load(text)["data"]
    assert {"SERVERS__HR__PATH", "SERVERS__HR__CLIENT_ID"} <= set(data)
    for name, value in data.items():
        if not name.startswith("KEYVAULT__"):
            monkeypatch.setenv(name, str(value))
    monkeypatch.setenv("MCP__REQUEST_STATE_KEYS", "k" * 32)
    served = Settings(_env_file=None).served()
    assert [(one.path, one.app_id_uri) for one in served] == [
        ("/mcp", "https://mcp.example.com/mcp"),
        ("/hr/mcp", "https://mcp.example.com/hr/mcp"),
    ]
    assert served[0].client_id != served[1].client_id  # one app registration each


def test_the_ingress_routes_each_servers_path_and_the_second_server_example_validates(tmp_path: Path) -> None:
    """Ingress paths are literal: `/mcp` exactly, each server's metadata under `/.well-known/`; the commented `/hr/mcp`
    entry, uncommented, is a valid manifest that routes it the same way (same backend, same annotations)."""
    text = (REPO / "config/k8s/ingress.yaml").read_text()
    live = yaml.safe_load(text)
    paths = {(p["path"], p["pathType"]) for r in live["spec"]["rules"] for p in r["http"]["paths"]}
    assert paths == {("/mcp", "Exact"), ("/.well-known/", "Prefix")}

    example = tmp_path / "ingress.yaml"
    example.write_text(_uncommented(text, "# - path: /hr/mcp"))
    two = yaml.safe_load(example.read_text())
    routed = [p for r in two["spec"]["rules"] for p in r["http"]["paths"]]
    assert ("/hr/mcp", "Exact") in {(p["path"], p["pathType"]) for p in routed}
    assert len({yaml.safe_dump(p["backend"]) for p in routed}) == 1
    result = _run("config/k8s/validate.sh", str(example), env={"KUBERNETES_VALIDATE": str(BIN / "kubernetes-validate")})
    assert result.returncode == 0, result.stdout + result.stderr
