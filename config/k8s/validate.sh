#!/usr/bin/env bash
# Validate the manifests against the Kubernetes OpenAPI JSON schemas, offline.
# Installs nothing. Needs the validator on PATH (it ships the schemas):
#   pip install kubernetes-validate==1.37.0
# --strict also rejects unknown fields, which catches typos and mis-indented keys.
#
#   config/k8s/validate.sh                    # all manifests here
#   K8S_VERSION=1.31.0 config/k8s/validate.sh # another cluster version
#   config/k8s/validate.sh path/to/extra.yaml # specific files
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
version=${K8S_VERSION:-1.33.0}
validator=${KUBERNETES_VALIDATE:-kubernetes-validate}

if ! command -v "$validator" >/dev/null 2>&1; then
  echo "kubernetes-validate not found; install: pip install kubernetes-validate==1.37.0" >&2
  exit 2
fi

if [ $# -eq 0 ]; then
  # kustomization.yaml is a kustomize file, not a Kubernetes object.
  mapfile -t files < <(find "$here" -maxdepth 1 -name '*.yaml' ! -name kustomization.yaml | sort)
  set -- "${files[@]}"
fi

# Exits non-zero if any document in any file is invalid.
"$validator" --strict --kubernetes-version "$version" "$@"
