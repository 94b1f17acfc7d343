"""`python -m bench.project_tokens N`: N access tokens from the dev issuer, one per distinct synthetic user.

Run with the project's Python and the bench's dev-issuer environment (bench/targets.py), so the tokens are signed by
the issuer the (d) servers trust, exactly as `python -m app.devissuer token` signs one.
"""

from __future__ import annotations

import sys
import uuid

from app.compose.devissuer import dev_issuer_config
from app.devissuer.issuer import DevIssuer
from app.devissuer.rules import DevUser
from app.settings import Settings

SCOPES = "mcp.read"
NAMESPACE = uuid.UUID("6f1c6a52-4b7e-4f7e-9a51-5b3c1f0e2a10")  # stable oids: user i is the same user in every run


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    issuer = DevIssuer(dev_issuer_config(Settings(app_env="development")))
    for i in range(count):
        oid = str(uuid.uuid5(NAMESPACE, f"bench-user-{i}"))
        print(issuer.mint(SCOPES, user=DevUser(oid, f"Bench User {i}", f"bench{i}@localhost")))


if __name__ == "__main__":
    main()
