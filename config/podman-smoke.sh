#!/usr/bin/env bash
# Build the production image with podman (no Docker daemon needed) and check
# that it runs the way Kubernetes will run it: non-root, read-only root FS,
# only /tmp writable, the server (python -m app) as PID 1, graceful exit on SIGTERM.
#
# Optional helper, NOT part of CI (CI must not depend on podman working).
# Needs root and: apt-get install podman buildah runc debootstrap
#
#   sudo config/podman-smoke.sh
#
# Env knobs:
#   BASE_IMAGE   use this base instead of bootstrapping one (e.g. python:3.11-slim-bookworm)
#   MIRROR       Debian mirror for debootstrap (default: first one in apt sources)
#   CA_BUNDLE    CA file mounted into build steps, for TLS-inspecting proxies
#                (default: the host's /etc/ssl/certs/ca-certificates.crt)
#   ENV_FILE     --env-file for the run (real app settings)
#   PORT         host loopback port (default 18000)
#   KEEP=1       keep the container and work dir afterwards
#
# If app/main.py does not exist yet, a throwaway placeholder app is written into
# the temporary build context (never into the repository).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
work=${WORK:-/tmp/podman-smoke}
port=${PORT:-18000}
image=localhost/secure-mcp-server:smoke
name=mcp-smoke-$$
base=${BASE_IMAGE:-localhost/debian-python:3.11-bookworm}
ca=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
# runc wants plain podman here; `--runtime runc` avoids a crun dependency.
pod() { podman --runtime runc "$@"; }
say() { printf '== %s\n' "$*"; }
fail() {
  printf 'FAIL: %s\n' "$*" >&2
  pod logs "$name" 2>&1 | tail -30 >&2 || true
  exit 1
}

[ "$(id -u)" = 0 ] || fail "run as root (debootstrap and rootful podman)"
mkdir -p "$work"

cleanup() {
  [ "${KEEP:-0}" = 1 ] && return
  pod rm -f "$name" >/dev/null 2>&1 || true
  rm -rf "$work/ctx"
}
trap cleanup EXIT

# 1. Base image. Debian bookworm's python3 is CPython 3.11, like python:3.11-slim-bookworm.
if [ -z "${BASE_IMAGE:-}" ] && ! pod image exists "$base"; then
  mirror=${MIRROR:-$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}
  [ -n "$mirror" ] || fail "set MIRROR to a Debian mirror URL"
  say "debootstrap bookworm + python3 -> $base"
  rm -rf "$work/rootfs"
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || fail "debootstrap failed, see $work/debootstrap.log"
  rm -rf "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/var/lib/apt/lists/*
  tar -C "$work/rootfs" -cf - . | pod import --change 'CMD ["python3"]' - "$base" >/dev/null
  rm -rf "$work/rootfs"
fi

# 2. Build context: only what .dockerignore would let through anyway.
rm -rf "$work/ctx" && mkdir -p "$work/ctx"
for f in Dockerfile .dockerignore pyproject.toml uv.lock app tools tools.lock servers; do
  [ -e "$repo/$f" ] && cp -a "$repo/$f" "$work/ctx/"
done
placeholder=0
if [ ! -f "$work/ctx/app/main.py" ]; then
  placeholder=1
  mkdir -p "$work/ctx/app"
  : >"$work/ctx/app/__init__.py"
  cat >"$work/ctx/app/main.py" <<'EOF'
# Placeholder written by podman-smoke.sh; the real app replaces it.
import os
from fastapi import FastAPI
app = FastAPI()
@app.get("/healthz")
def healthz(): return {"status": "ok", "uid": os.getuid()}
@app.get("/readyz")
def readyz(): return {"status": "ready", "env": os.environ.get("APP_ENV")}
EOF
fi

say "build $image (BASE_IMAGE=$base)"
vol=()
[ -f "$ca" ] && vol=(--volume "$ca:/etc/ssl/certs/ca-certificates.crt:ro")
# --format docker keeps HEALTHCHECK (the OCI format drops it).
pod build --isolation=chroot --format docker --build-arg "BASE_IMAGE=$base" \
  "${vol[@]}" -t "$image" "$work/ctx" >"$work/build.log" 2>&1 \
  || { tail -30 "$work/build.log"; fail "build failed, see $work/build.log"; }

# 3. Run like production. Sandboxes often forbid raising rlimits past the
# current hard limit, and podman raises nofile/nproc by default: pin them.
nofile=$(ulimit -Hn); [ "$nofile" = unlimited ] || [ "$nofile" -gt 65536 ] && nofile=65536
nproc=$(ulimit -Hu); [ "$nproc" = unlimited ] || [ "$nproc" -gt 4096 ] && nproc=4096
envf=()
[ -n "${ENV_FILE:-}" ] && envf=(--env-file "$ENV_FILE")
say "run $name on 127.0.0.1:$port (read-only, cap-drop ALL, 2 workers)"
# The systemd healthcheck-timer warnings podman prints without systemd are harmless.
pod run -d --name "$name" --read-only --tmpfs /tmp:rw,size=64m \
  --cap-drop ALL --security-opt no-new-privileges \
  --ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc" \
  -p "127.0.0.1:$port:8000" -e SERVER__WORKERS=2 -e MCP__STATELESS=true "${envf[@]}" "$image" 2>/dev/null >/dev/null \
  || fail "podman run failed"

get() { python3 -c 'import sys, urllib.request as u; print(u.urlopen(sys.argv[1], timeout=3).read().decode())' "$1"; }
ok=0
for _ in $(seq 1 30); do
  if get "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then ok=1; break; fi
  sleep 1
done
[ $ok = 1 ] || fail "/healthz never answered"
say "/healthz: $(get "http://127.0.0.1:$port/healthz")"
# A couple of retries: with 2 workers the second may still be starting.
ready_ok=0
for _ in 1 2 3; do
  if ready=$(get "http://127.0.0.1:$port/readyz" 2>&1); then ready_ok=1; break; fi
  ready=$(printf '%s' "$ready" | tail -1); sleep 1
done
if [ $ready_ok = 1 ]; then
  say "/readyz: $ready"
elif [ $placeholder = 1 ]; then
  fail "/readyz: $ready"
else
  say "/readyz not ready (expected without real Azure settings): $ready"
fi

pod healthcheck run "$name" >/dev/null 2>&1 || fail "image HEALTHCHECK failed"
say "HEALTHCHECK passes"
[ "$(pod exec "$name" id -u)" = 10001 ] || fail "not running as uid 10001"
say "runs as uid 10001"
pod exec "$name" sh -c 'touch /srv/x' 2>/dev/null && fail "root filesystem is writable"
pod exec "$name" sh -c 'touch /tmp/x' || fail "/tmp is not writable"
say "root FS read-only, /tmp writable"
pid1=$(pod exec "$name" cat /proc/1/cmdline | tr '\0' ' ')
case $pid1 in *uvicorn*|*"-m app"*) say "PID 1: $pid1" ;; *) fail "PID 1 is not the server: $pid1" ;; esac

start=$(date +%s)
pod stop -t 30 "$name" >/dev/null 2>&1
took=$(( $(date +%s) - start ))
code=$(pod inspect "$name" --format '{{.State.ExitCode}}')
[ "$code" = 0 ] || fail "exit code $code after SIGTERM"
[ "$took" -lt 30 ] || fail "SIGTERM did not stop uvicorn before the kill timeout"
say "SIGTERM -> clean exit 0 in ${took}s"
say "PASS"
