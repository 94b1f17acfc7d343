"""The newcomer path, for real: `make run`, then `make token`, then `tools/list` with that token; the dev key."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from app.devissuer.signing import DevKeyError, load_or_create_key, public_jwk
from tests.conftest import REPO, mcp_client
from tests.support.servers import free_port, wait_ready

pytestmark = pytest.mark.slow  # real make, servers and dev issuers as subprocesses


@pytest.mark.skipif(not (REPO / "Makefile").exists(), reason="needs the repo's Makefile")
async def test_make_run_then_make_token_then_tools_list() -> None:
    port, issuer_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZUREAD__", "MCP__", "APP_ENV", "TOOLS__"))}
    env |= {"PORT": str(port), "DEV_ISSUER__PORT": str(issuer_port)}
    server = subprocess.Popen(
        ["make", "-s", "run"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        await wait_ready(f"http://127.0.0.1:{port}", server, timeout=120)
        token = subprocess.run(
            ["make", "-s", "token", "SCOPES=mcp.read notes.read"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        ).stdout.strip()
        assert token.count(".") == 2
        async with mcp_client(f"http://127.0.0.1:{port}", token) as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            who = await client.call_tool("whoami", {})
        assert {"whoami", "search_notes"} <= names
        assert "create_note" not in names  # the token lacks notes.write, so the list hides it
        assert who.structured_content is not None and who.structured_content["name"] == "Dev User"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        output, _ = server.communicate(timeout=30)
    assert "inspector" in output and "$(make -s token)" in output  # the ready-to-paste command, without a token
    assert token not in output


async def test_several_workers_share_a_standalone_dev_issuer(tmp_path: object) -> None:
    import sys

    port, issuer_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZUREAD__", "MCP__", "APP_ENV", "TOOLS__"))}
    env |= {
        "APP_ENV": "development",
        "DEV_ISSUER__PORT": str(issuer_port),
        "DEV_ISSUER__EMBEDDED": "false",
        "SERVER__PORT": str(port),
        "SERVER__WORKERS": "2",
        "MCP__STATELESS": "true",  # sessions live in one worker: two workers need stateless mode
        "LOG_LEVEL": "WARNING",
    }
    issuer = subprocess.Popen(
        [sys.executable, "-m", "app.devissuer", "serve"], cwd=REPO, env=env, start_new_session=True
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "app"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        await wait_ready(f"http://127.0.0.1:{port}", server)
        token = subprocess.run(
            [sys.executable, "-m", "app.devissuer", "token", "--scopes", "mcp.read"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.strip()
        for _ in range(4):  # connections spread over both workers; each validates against the shared issuer
            async with mcp_client(f"http://127.0.0.1:{port}", token) as client:
                assert "whoami" in {t.name for t in (await client.list_tools()).tools}
    finally:
        for process in (server, issuer):
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)


def test_first_starts_that_race_on_a_fresh_checkout_agree_on_one_dev_key(tmp_path: Path) -> None:
    """The server's embedded issuer and `make token` (or the bench's issuer and its mint) can start together."""
    key_dir = tmp_path / ".dev"
    start_at = time.time() + 4  # after every process has imported, all look for the key at the same moment
    script = (
        "import sys, time; from pathlib import Path; from app.devissuer.signing import load_or_create_key, public_jwk; "
        "time.sleep(max(0.0, float(sys.argv[2]) - time.time())); "
        "print(public_jwk(load_or_create_key(Path(sys.argv[1])))['kid'])"
    )
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(key_dir), str(start_at)], cwd=REPO, stdout=subprocess.PIPE, text=True
        )
        for _ in range(6)
    ]
    kids = {racer.communicate(timeout=180)[0].strip() for racer in racers}  # six interpreters on a loaded 2-core box
    assert all(racer.returncode == 0 for racer in racers)
    assert kids == {public_jwk(load_or_create_key(key_dir))["kid"]}  # one key, the one on disk
    assert [p.name for p in key_dir.iterdir()] == ["dev-issuer-key.pem"]  # no drafts left behind
    assert (key_dir / "dev-issuer-key.pem").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("content", ["ec", "cut short"])
def test_a_dev_key_file_that_is_not_an_rsa_key_is_refused_with_what_to_do(tmp_path: Path, content: str) -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    pem = ec_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / "dev-issuer-key.pem").write_bytes(pem if content == "ec" else pem[: len(pem) // 2])
    with pytest.raises(DevKeyError, match="does not hold an RSA private key: delete it"):
        load_or_create_key(tmp_path)
    assert (tmp_path / "dev-issuer-key.pem").exists()  # left for the developer to look at, not overwritten
