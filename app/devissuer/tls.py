"""A local CA and a loopback server certificate for the dev issuer's https listener (`DEV_ISSUER__TLS=true`).

MSAL accepts https authorities only; clients trust `dev-ca.pem` (e.g. `REQUESTS_CA_BUNDLE`, `SSL_CERT_FILE`).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from app.devissuer.config import DevIssuerConfig

CA_FILE = "dev-ca.pem"
CERT_FILE = "dev-issuer-tls.pem"
KEY_FILE = "dev-issuer-tls-key.pem"


def tls_files(key_dir: Path) -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate, server key) under `key_dir`, made on first use and kept."""
    ca, cert, key = key_dir / CA_FILE, key_dir / CERT_FILE, key_dir / KEY_FILE
    if not (ca.is_file() and cert.is_file() and key.is_file()):
        _create(ca, cert, key)
    return ca, cert, key


def _create(ca_path: Path, cert_path: Path, key_path: Path) -> None:
    ca_path.parent.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "secure-mcp-server dev CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key_pem)
    cert_path.write_bytes(cert.public_bytes(pem))
    ca_path.write_bytes(ca.public_bytes(pem))  # written last: its presence means the set is complete


def tls_options(config: DevIssuerConfig) -> tuple[str | None, str | None]:
    """uvicorn's `ssl_certfile` and `ssl_keyfile` for `DEV_ISSUER__TLS=true` (the local CA is made on first use)."""
    if not config.tls:
        return None, None
    _, cert, key = tls_files(config.key_dir)
    return str(cert), str(key)
