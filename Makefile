# secure-mcp-server: `make run` starts a dev server, `make test` runs the tests. `make help` lists the rest.
SHELL := /bin/bash
HOST ?= 127.0.0.1
PORT ?= 8000
SCOPES ?= mcp.read notes.read notes.write
ROLES ?=
# uv runs everything from the lock; installed for this user on first use if missing.
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
RUN := $(UV) run --frozen --quiet

.PHONY: help run test lint fmt token install

help: ## list targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(UV):
	python3 -m pip install --user --quiet uv

install: $(UV) ## create .venv from uv.lock (dev tools included)
	$(UV) sync --frozen --quiet

run: install ## start the dev server on $(HOST):$(PORT) with the embedded dev issuer
	APP_ENV=development $(RUN) uvicorn app.main:app --host $(HOST) --port $(PORT)

token: install ## print a dev access token (SCOPES="a b", ROLES="r", APP=1 for app-only)
	@APP_ENV=development $(RUN) python -m app.dev_issuer token --scopes "$(SCOPES)" --roles "$(ROLES)" $(if $(APP),--app,)

test: install ## run the test suite
	$(RUN) pytest

lint: install ## ruff + mypy
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy app tools

fmt: install ## format and auto-fix
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

# --- Deployment (see "Deploying" in README). `CONTAINER=podman make docker-build` uses podman. ---
CONTAINER ?= docker
IMAGE ?= secure-mcp-server:dev
BASE_IMAGE ?= python:3.11-slim-bookworm
ENV_FILE ?= .env
# podman writes OCI images by default, which drop HEALTHCHECK; ask for the docker format.
BUILD_FLAGS ?= $(if $(filter podman,$(notdir $(CONTAINER))),--format docker,)

.PHONY: docker-build docker-run hadolint k8s-validate nginx-check podman-smoke

docker-build: ## build the production image $(IMAGE) (BASE_IMAGE=..., CONTAINER=podman)
	$(CONTAINER) build $(BUILD_FLAGS) --build-arg BASE_IMAGE=$(BASE_IMAGE) -t $(IMAGE) .

# Run it the way Kubernetes does: read-only root FS, only /tmp writable, no
# capabilities. Settings come from $(ENV_FILE) (APP_ENV=production needs the
# AZUREAD__* and MCP__RESOURCE_HOST values there).
docker-run: ## run $(IMAGE) on 127.0.0.1:$(PORT) like production (settings from $(ENV_FILE))
	$(CONTAINER) run --rm -it --read-only --tmpfs /tmp:rw,size=64m \
	  --cap-drop ALL --security-opt no-new-privileges \
	  $(if $(wildcard $(ENV_FILE)),--env-file $(ENV_FILE),) \
	  -p 127.0.0.1:$(PORT):8000 $(IMAGE)

hadolint: install ## lint the Dockerfile
	$(RUN) hadolint Dockerfile

k8s-validate: install ## validate config/k8s/*.yaml against the Kubernetes schemas, offline
	KUBERNETES_VALIDATE=.venv/bin/kubernetes-validate config/k8s/validate.sh

nginx-check: ## nginx -t on config/nginx.conf and the test template
	config/nginx-check.sh

podman-smoke: ## (root) build with podman and check non-root, read-only FS, SIGTERM
	config/podman-smoke.sh
