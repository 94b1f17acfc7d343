"""Which running dev issuer `make token` mints for: the one its settings name when that one runs, else the only one
running from the checkout; it always says which, and why."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from app.devissuer.config import DevApp, DevIssuerConfig
from app.devissuer.running import RunningIssuer, choose, recorded, running_issuers
from app.settings import DEV_TENANT_ID


def _config(key_dir: Path, port: int = 19101) -> DevIssuerConfig:
    app = DevApp(key="", audience="aud", app_id_uri="http://127.0.0.1:19100/mcp", resource="", server_name="s")
    return DevIssuerConfig(
        app_env="development", instance=f"http://127.0.0.1:{port}/", tenant_id=DEV_TENANT_ID, host="127.0.0.1",
        port=port, key_dir=key_dir, client_id="c", token_seconds=60, tls=False, rate="30/minute", apps=(app,),
    )  # fmt: skip


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def test_the_record_lives_as_long_as_the_issuer_and_only_live_ones_count(tmp_path: Path) -> None:
    config = _config(tmp_path, 9101)
    (tmp_path / "issuer-9102.json").write_text(json.dumps({"instance": "x", "tenant": "t", "pid": _dead_pid()}))
    (tmp_path / "issuer-9103.json").write_text("{not json")
    with recorded(config):
        assert running_issuers(tmp_path) == [RunningIssuer("http://127.0.0.1:9101/", DEV_TENANT_ID, os.getpid())]
    assert not (tmp_path / "issuer-9101.json").exists()
    assert running_issuers(tmp_path) == []


def test_choose_prefers_the_configured_issuer_then_the_only_one_running() -> None:
    here = _config(Path("."), 19101)
    mine = RunningIssuer("http://127.0.0.1:19101/", DEV_TENANT_ID, 1)
    other = RunningIssuer("http://127.0.0.1:9001/", DEV_TENANT_ID, 2)
    third = RunningIssuer("http://127.0.0.1:9002/", DEV_TENANT_ID, 3)
    assert choose(here, [other, mine]) == (mine, "token for the running dev issuer at http://127.0.0.1:19101/")
    chosen, said = choose(here, [other])
    assert chosen == other and "running dev issuer at http://127.0.0.1:9001/" in said and "19101" in said
    chosen, said = choose(here, [other, third])
    assert chosen is None and "several dev issuers are running" in said and "DEV_ISSUER__PORT" in said
    chosen, said = choose(replace(here), [])
    assert chosen is None and said.startswith("no dev issuer is running") and "http://127.0.0.1:19101/" in said
