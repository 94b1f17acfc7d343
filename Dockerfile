# Production image for secure-mcp-server.
#
#   docker build -t secure-mcp-server .
#   docker run --read-only --tmpfs /tmp -p 8000:8000 --env-file prod.env secure-mcp-server
#
# BASE_IMAGE must be a Debian-based CPython 3.11 image with `python3 -m venv`
# (ensurepip) available. Pin it by digest in your own pipeline for
# reproducible builds, e.g. python:3.11-slim-bookworm@sha256:...
ARG BASE_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------- builder ---
FROM ${BASE_IMAGE} AS builder

# uv only lives in the builder; its version is pinned so builds are repeatable.
ARG UV_VERSION=0.13.9
SHELL ["/bin/sh", "-eu", "-c"]

# Install uv into its own throwaway venv: works on python:*-slim and on
# Debian's own python3 (where a bare `pip install` is refused by PEP 668).
RUN python3 -m venv /opt/uv \
 && /opt/uv/bin/pip install --no-cache-dir --disable-pip-version-check "uv==${UV_VERSION}"

# The runtime venv sits at the same path in both stages so its scripts'
# shebangs stay valid after COPY --from. Bytecode is compiled here because the
# final image runs with a read-only root filesystem and cannot write .pyc files.
# UV_NATIVE_TLS makes uv trust the OS CA store (as pip does), so builds behind a
# TLS-inspecting corporate proxy work once its CA is in the build's trust store.
ENV UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    UV_NATIVE_TLS=1

WORKDIR /src
COPY pyproject.toml uv.lock ./
# --frozen: install exactly what uv.lock says, fail instead of re-resolving.
RUN /opt/uv/bin/uv sync --frozen --no-dev --no-install-project --python python3

# ---------------------------------------------------------------- runtime ---
FROM ${BASE_IMAGE} AS runtime

# Fixed UID/GID so Kubernetes runAsUser/fsGroup and file ownership line up.
RUN groupadd --gid 10001 app \
 && useradd --uid 10001 --gid 10001 --no-create-home \
      --home-dir /tmp --shell /usr/sbin/nologin app

ENV APP_ENV=production \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    HOME=/tmp \
    TMPDIR=/tmp \
    SERVER__HOST=0.0.0.0 \
    SERVER__PORT=8000 \
    SERVER__WORKERS=1 \
    SERVER__SHUTDOWN_GRACE_SECONDS=20

COPY --from=builder /opt/venv /opt/venv
WORKDIR /srv
# Code stays root-owned: the app user can read it but never modify it.
# .dockerignore is an allow-list, so only app/, tools/, routes/, tools.lock, servers/ (more MCP servers, each with
# its tools and tools.lock) and project metadata arrive.
COPY . .

USER 10001:10001
EXPOSE 8000

# No curl in slim images: use the interpreter we already ship.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

# `python -m app` runs uvicorn from SERVER__* settings as PID 1: SIGTERM turns readiness false, drains in-flight
# calls for up to SERVER__SHUTDOWN_GRACE_SECONDS and exits 0. Forwarded headers are trusted only from
# SECURITY__TRUSTED_PROXIES (the app handles them; uvicorn's own --proxy-headers stays off).
CMD ["python", "-m", "app"]
