# secure-mcp-server: `make run` starts a dev server, `make test` runs the tests. `make help` lists the rest.
SHELL := /bin/bash
HOST ?= 127.0.0.1
PORT ?= 8000
SCOPES ?= mcp.read notes.read notes.write
ROLES ?=
# uv runs everything from the lock; installed for this user on first use if missing.
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
RUN := $(UV) run --frozen --quiet
# The app's one command line (app/cli/): `.venv/bin/secure-mcp-server --help` lists what it does.
CLI := $(RUN) secure-mcp-server

.PHONY: help run dev test test-all lint fmt token install audit-verify new-tool new-route tools-lock doctor audit sbom bench bench-tasks docs

help: ## list targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(UV):
	python3 -m pip install --user --quiet uv

install: $(UV) ## create .venv from uv.lock (dev and docs tools and the content-safety extra), with the secure-mcp-server command
	@$(UV) sync --frozen --quiet --extra content-safety --group docs
	@cmp -s config/secure-mcp-server .venv/bin/secure-mcp-server || install -m 755 config/secure-mcp-server .venv/bin/

run: install ## start the dev server on $(HOST):$(PORT) with the embedded dev issuer (RELOAD=1: as make dev)
	APP_ENV=development SERVER__HOST=$(HOST) SERVER__PORT=$(PORT) $(CLI) serve $(if $(RELOAD),--reload,)

dev: install ## make run, restarting the server when tools/ or routes/ change (the dev issuer stays up)
	APP_ENV=development SERVER__HOST=$(HOST) SERVER__PORT=$(PORT) $(CLI) serve --reload

token: install ## print a dev access token (SCOPES="a b", ROLES="r", APP=1 for app-only, SERVER=key for SERVERS__{KEY})
	@APP_ENV=development $(CLI) token --scopes "$(SCOPES)" --roles "$(ROLES)" $(if $(APP),--app,) $(if $(SERVER),--server $(SERVER),)

# pytest-xdist workers (a part given in TESTS runs in one process unless TEST_WORKERS says more). `make test` is the
# quick tier: every test but those marked slow (servers as subprocesses, nginx, Redis replicas, the Node peers, the
# benchmarks, long fuzzing); `make test-all` runs the whole suite, as CI does. A part given in TESTS runs whole.
# The tests see uv's directory first on PATH (the bench builds a venv with uv), and none of this make's variables
# (MAKEFLAGS): the `make` they run themselves starts as a developer's would.
TEST_WORKERS ?= $(if $(TESTS),0,4)
PYTEST := env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL PATH="$(dir $(UV)):$$PATH" $(RUN) pytest -n $(TEST_WORKERS)
test: install ## run the quick tests in parallel (TESTS="path ..." for a part, TEST_WORKERS=n); installs nginx/Redis if missing (root)
	@bash .ci/test-packages
	$(PYTEST) $(if $(TESTS),$(TESTS),-m "not slow")
	@$(if $(TESTS),,echo "quick tier passed; \`make test-all\` runs the slow tests too (CI runs it)")

test-all: install ## run the whole suite, slow tests too, as CI does (needs the Node peers: see .ci/run)
	@bash .ci/test-packages
	$(PYTEST) $(TESTS)

lint: install ## ruff, mypy, and the import-linter contracts in pyproject.toml (the layers of app/)
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy app tools routes tests
	$(RUN) lint-imports --no-cache

bench: install ## compare this server with the bare SDK, SDK+JWT and fastmcp (needs wrk; see bench/README.md)
	@command -v wrk >/dev/null || { echo "bench needs wrk: apt-get install wrk" >&2; exit 2; }
	$(RUN) python bench/run.py $(BENCH_ARGS)

bench-tasks: install ## tasks/get poll throughput and task creation vs a synchronous call, this server at its defaults (needs wrk)
	@command -v wrk >/dev/null || { echo "bench-tasks needs wrk: apt-get install wrk" >&2; exit 2; }
	$(RUN) python bench/tasks.py $(BENCH_ARGS)

fmt: install ## format and auto-fix
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

audit-verify: install ## verify an audit log's hash chain and report the first broken link (FILE=path)
	@test -n "$(FILE)" || { echo "usage: make audit-verify FILE=path/to/audit.jsonl" >&2; exit 2; }
	@$(CLI) audit verify "$(FILE)"

new-tool: install ## scaffold tools/NAME.py and tests/tools/test_NAME.py, then update tools.lock (NAME=my_tool)
	@if [ -z "$(NAME)" ]; then echo "usage: make new-tool NAME=my_tool" >&2; exit 2; fi
	$(CLI) new-tool "$(NAME)"

new-route: install ## scaffold routes/NAME.py (GET /api/NAME) and tests/routes/test_NAME.py (NAME=my_route)
	@if [ -z "$(NAME)" ]; then echo "usage: make new-route NAME=my_route" >&2; exit 2; fi
	$(CLI) new-route "$(NAME)"

tools-lock: install ## regenerate tools.lock from the served tool metadata (SERVER=hr: servers/hr/tools.lock; review the diff)
	$(CLI) tools-lock $(if $(SERVER),--server $(SERVER),)

doctor: install ## check this configuration against Entra, Key Vault, Redis, the lock and the public URL (docs/doctor.md)
	@$(CLI) doctor

AUDIT_SERVICE ?= pypi
audit: install ## pip-audit every package in uv.lock (AUDIT_SERVICE=pypi|osv); see docs/supply-chain.md
	$(RUN) python -m app.toolkit.supply_chain audit --service $(AUDIT_SERVICE)

SBOM ?= dist/sbom.cdx.json
sbom: install ## write a CycloneDX SBOM of the runtime dependencies to $(SBOM)
	$(RUN) python -m app.toolkit.supply_chain sbom --output $(SBOM)

# --- Deployment (see docs/deployment.md). `CONTAINER=podman make docker-build` uses podman. ---
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

docs: install ## regenerate docs/settings.md, docs/cli.md and the package map of docs/architecture.md, then build the site (site/)
	$(RUN) python -m app.toolkit.settings_reference
	$(RUN) python -m app.cli.reference
	$(RUN) python -m app.toolkit.architecture_map
	NO_MKDOCS_2_WARNING=1 $(RUN) mkdocs build --strict
