"""The dev issuer's signing key (`.dev/dev-issuer-key.pem`): first starts racing on a fresh checkout agree on one key,
and a key file that is not an RSA key is refused with what to do."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from app.devissuer.signing import DevKeyError, load_or_create_key, public_jwk
from tests.support.values import REPO

pytestmark = pytest.mark.slow  # six interpreters race for the key


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
