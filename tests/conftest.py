"""Shared fixtures: a real Entra stand-in, real uvicorn servers for the app, and the official SDK client."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.main import create_app
from app.settings.keyvault import CREDENTIALS

# Fixtures and pytest hooks only: every helper and shared value lives in tests/support/ and is imported from there.
from tests.support.entra import MINTED, EntraStandIn
from tests.support.graph import GraphStandIn
from tests.support.keyvault import VAULT_IDENTITY, KeyVaultStandIn, LocalIssuerCredential, TlsFiles, make_tls
from tests.support.otel import OtelMemory
from tests.support.servers import ServerThread, free_port
from tests.support.tls import self_signed
from tests.support.values import CLIENT_ID, JWT_SHAPED, TENANT, settings_for

# The tool authors' fixtures (as_user, as_app, mcp_server) ship with the framework.
pytest_plugins = ["app.toolkit.testing"]


# ---- parallel runs (`make test`: pytest-xdist, --dist loadgroup) ----------------------------------------------------
# The tests of these modules share servers their module starts once (nginx and two app processes, Redis and two
# replicas, one run of the benchmark suite, which must not run twice at once): each module goes to one worker.
# Every other test goes to whichever worker is free. (xdist_group marks would say this per test, but pytest-xdist 3.8
# drops them under pytest 9.2: pytest-xdist issue 1386.)
ONE_WORKER_MODULES = frozenset(
    {
        "tests/bench/test_run.py",
        "tests/main/test_conformance.py",  # one run of the conformance suite per mode serves all its tests
        "tests/main/test_nginx.py",
        "tests/repo/test_docs_examples.py",  # two servers, the Entra stand-in and one pytest run serve every block
        "tests/edge/test_rate_limits_redis.py",
        "tests/edge/test_route_limits.py",
        "tests/tasks/test_replicas.py",  # one Redis, two replicas and nginx serve all its tests
    }
)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    from xdist.scheduler import LoadGroupScheduling

    class OneWorkerModules(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return module if module in ONE_WORKER_MODULES else super()._split_scope(nodeid)

    return OneWorkerModules(config, log) if config.getvalue("dist") == "loadgroup" else None


# Hypothesis's per-example deadline (200 ms) is a timing assertion: on a loaded machine, as in a parallel run on two
# cores, it fails examples whose results are all correct. Every example still runs and is checked.
hypothesis.settings.register_profile("suite", deadline=None)
hypothesis.settings.load_profile("suite")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `slow` come first (stable order otherwise). Workers are handed tests in this order, so a parallel
    run ends on short tests, not on one long test that the other workers wait for."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


class _KeepAll(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(
            self.format(record)
            + " "
            + " ".join(f"{k}={v}" for k, v in vars(record).items() if k not in _STANDARD_ATTRS)
        )


_STANDARD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


MAKE_RUN_PORTS = (8000, 8001)  # `make run`: the server, and its embedded dev issuer


@pytest.fixture(scope="session", autouse=True)
def make_run_ports_are_taken() -> Iterator[None]:
    """In CI, hold 8000 and 8001 for the whole run, as a developer's `make run` does: a test that binds or calls them
    fails there, on every CI run, not on the machine where `make run` is up. Only in CI: on a developer's machine
    the suite must not keep `make run` from starting. (Already taken: `make run` is up, or another worker holds
    them; either way no test can have them.)"""
    held: list[socket.socket] = []
    for port in MAKE_RUN_PORTS if os.environ.get("CI") else ():
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind(("127.0.0.1", port))  # bound, not listening: a call there is refused
            held.append(sock)
        except OSError:
            sock.close()
    yield
    for sock in held:
        sock.close()


@pytest.fixture(scope="session", autouse=True)
def no_token_in_any_log() -> Iterator[None]:
    """Every log record of the whole run, at DEBUG, extras and tracebacks included, must be free of tokens."""
    keep, root = _KeepAll(), logging.getLogger()
    previous = root.level
    # The test client's own request log prints URLs, and some tests put tokens in URLs on purpose.
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    root.addHandler(keep)
    root.setLevel(logging.DEBUG)
    yield
    root.removeHandler(keep)
    root.setLevel(previous)
    text = "\n".join(keep.lines)
    leaked = [t[:16] for t in MINTED if t in text]
    shaped = [line[:160] for line in keep.lines if JWT_SHAPED.search(line)]
    assert not leaked and not shaped, f"tokens reached the logs: {leaked[:3]} {shaped[:3]}"


@pytest.fixture(scope="session")
def entra() -> Iterator[EntraStandIn]:
    stand_in = EntraStandIn()
    with ServerThread(stand_in.app()) as server:
        stand_in.base = server.url + "/"
        yield stand_in


@pytest.fixture(autouse=True)
def _entra_up(entra: EntraStandIn) -> None:
    entra.down = False


@pytest.fixture(scope="session")
def vault_tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls(tmp_path_factory.mktemp("vault-tls"))


@pytest.fixture(scope="session")
def _vault_server(entra: EntraStandIn, vault_tls: TlsFiles) -> Iterator[KeyVaultStandIn]:
    stand_in = KeyVaultStandIn(entra, TENANT)
    server = ServerThread(stand_in.app(), ssl_certfile=str(vault_tls.cert), ssl_keyfile=str(vault_tls.key))
    stand_in.base = f"https://127.0.0.1:{server.port}"
    with server:
        yield stand_in


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A loopback port that accepts TCP connections and never answers (a TLS handshake there hangs)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


@pytest.fixture(scope="session")
def graph_tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls(tmp_path_factory.mktemp("graph-tls"))


@pytest.fixture(scope="session")
def _graph_server(entra: EntraStandIn, graph_tls: TlsFiles) -> Iterator[GraphStandIn]:
    stand_in = GraphStandIn(entra)
    server = ServerThread(stand_in.app(), ssl_certfile=str(graph_tls.cert), ssl_keyfile=str(graph_tls.key))
    stand_in.base = f"https://127.0.0.1:{server.port}"
    with server:
        yield stand_in


@pytest.fixture
def graph(_graph_server: GraphStandIn) -> GraphStandIn:
    """The Microsoft Graph stand-in on HTTPS (trust `graph_tls.ca`), emptied; it takes the Entra stand-in's tokens."""
    _graph_server.reset()
    return _graph_server


@pytest.fixture
def keyvault(_vault_server: KeyVaultStandIn, entra: EntraStandIn, monkeypatch: pytest.MonkeyPatch) -> KeyVaultStandIn:
    """The Key Vault stand-in, emptied; KEYVAULT__CREDENTIAL=local-issuer fetches tokens from the Entra stand-in."""
    _vault_server.clear()
    _vault_server.down = False
    credential = LocalIssuerCredential(entra, TENANT, VAULT_IDENTITY)
    monkeypatch.setitem(CREDENTIALS, "local-issuer", lambda _kv: credential)
    return _vault_server


@pytest.fixture
def serve(entra: EntraStandIn) -> Iterator[Callable[..., ServerThread]]:
    """Start the app with settings overrides; stopped at test end."""
    started: list[ServerThread] = []

    def start(**overrides: Any) -> ServerThread:
        settings = settings_for(entra, free_port(), **overrides)
        server = ServerThread(create_app(settings), port=int(settings.resource_host.rsplit(":", 1)[1])).start()
        server.settings = settings  # type: ignore[attr-defined]
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def app_server(serve: Callable[..., ServerThread]) -> ServerThread:
    return serve()


@pytest.fixture
def token(entra: EntraStandIn) -> Callable[..., str]:
    """Mint a token for the app under test (audience = its client id) unless told otherwise."""

    def mint(scopes: str | None = "mcp.read", **kw: Any) -> str:
        kw.setdefault("tenant", TENANT)
        kw.setdefault("audience", CLIENT_ID)
        return entra.token(scopes=scopes, **kw)

    return mint


_otel_memory: OtelMemory | None = None


@pytest.fixture
def otel() -> OtelMemory:
    """Global SDK providers with in-memory exporters; apps created after this see telemetry as on."""
    global _otel_memory
    if _otel_memory is None:
        exporter, reader = InMemorySpanExporter(), InMemoryMetricReader()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
        _otel_memory = OtelMemory(exporter, reader)
    _otel_memory.spans.clear()
    return _otel_memory


# ---- on-behalf-of: an https Entra stand-in (MSAL needs one) and a downstream API (tests of OBO, secrets, injection)
@pytest.fixture
def entra_tls(tmp_path: Path) -> Iterator[tuple[EntraStandIn, Path]]:
    """MSAL only talks to https authorities, so this stand-in serves TLS with a throwaway certificate."""
    cert, key = self_signed(tmp_path)
    stand_in = EntraStandIn()
    with ServerThread(stand_in.app(), ssl_certfile=str(cert), ssl_keyfile=str(key)) as server:
        stand_in.base = f"https://127.0.0.1:{server.port}/"
        yield stand_in, cert


@pytest.fixture
def profile_api() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A downstream API stand-in that records every request's headers."""
    seen: list[dict[str, str]] = []

    async def me(request: Request) -> JSONResponse:
        seen.append(dict(request.headers))
        return JSONResponse({"displayName": "Alice Example", "mail": "alice@contoso.example", "jobTitle": "SRE"})

    with ServerThread(Starlette(routes=[Route("/v1.0/me", me)])) as server:
        yield f"{server.url}/v1.0", seen
