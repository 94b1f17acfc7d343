"""Which dev issuers run from this checkout, so `make token` mints for the one the server trusts.

While it listens, an issuer keeps `{DEV_ISSUER__KEY_DIR}/issuer-{port}.json` (its base URL, tenant and process id)
beside the signing key it shares with the token command. A token's `iss` must be the running issuer's: a shell
whose `DEV_ISSUER__PORT` differs from `make run`'s would otherwise mint tokens the server refuses as `wrong_issuer`.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from app.devissuer.config import DevIssuerConfig


@dataclass(frozen=True)
class RunningIssuer:
    instance: str  # its base URL, as the server trusts it: `http://127.0.0.1:8001/`
    tenant: str
    pid: int


@contextlib.contextmanager
def recorded(config: DevIssuerConfig) -> Iterator[None]:
    """Record this process's issuer for as long as the context lasts (it is listening on `config.port`)."""
    path = config.key_dir / f"issuer-{config.port}.json"
    mine = {"instance": config.instance, "tenant": config.tenant_id, "pid": os.getpid()}
    try:
        config.key_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(mine))
    except OSError:  # a read-only checkout: `make token` then says it used the settings' issuer
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(OSError, ValueError):
            if json.loads(path.read_text()).get("pid") == os.getpid():
                path.unlink()


def running_issuers(key_dir: Path) -> list[RunningIssuer]:
    """The issuers recorded under `key_dir` whose process is alive (a record left by a killed one is ignored)."""
    found = []
    for path in sorted(key_dir.glob("issuer-*.json")):
        try:
            record = json.loads(path.read_text())
            issuer = RunningIssuer(str(record["instance"]), str(record["tenant"]), int(record["pid"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if _alive(issuer.pid):
            found.append(issuer)
    return found


def choose(configured: DevIssuerConfig, running: Sequence[RunningIssuer]) -> tuple[RunningIssuer | None, str]:
    """The running issuer to mint for (None: the configured one), and one line saying which was used and why."""
    here = configured.instance
    same = [one for one in running if one.instance == here]
    if same:
        return same[0], f"token for the running dev issuer at {here}"
    if len(running) == 1:
        there = running[0].instance
        return running[0], (
            f"token for the running dev issuer at {there} (this shell's DEV_ISSUER__PORT would say {here}, "
            "where none is running)"
        )
    if running:
        listed = ", ".join(one.instance for one in running)
        return None, (
            f"token for {here} (DEV_ISSUER__PORT here); several dev issuers are running ({listed}): set "
            "DEV_ISSUER__PORT to the one your server uses"
        )
    return None, f"no dev issuer is running from this checkout; token for {here}, the one `make run` starts"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True
