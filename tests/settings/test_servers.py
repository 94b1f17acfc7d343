"""`SERVERS__{NAME}__*`: hostile values of every type are refused as settings errors (one line at startup), never
another exception; env names are read as the docs spell them."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from app.settings import NamedServerSettings, Settings, describe_invalid

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
FIELDS = sorted(NamedServerSettings.model_fields)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(FIELDS), value=JSON, name=st.text(max_size=12) | st.sampled_from(["hr", "fin-1"]))
def test_any_value_of_any_field_is_a_settings_error_or_a_server(field: str, value: Any, name: str) -> None:
    section = {"path": "/hr/mcp", field: value}
    try:
        built = Settings(_env_file=None, app_env="development", servers={name: section})
    except ValidationError as exc:
        refused = describe_invalid(exc)  # what startup prints, in one line
        assert refused and "\n" not in refused
        return
    served = built.served()
    assert len(served) == 2 and served[1].key == name and served[1].path.startswith("/")


def test_a_servers_section_of_the_wrong_type_is_a_settings_error() -> None:
    servers: object
    for servers in ("hr", ["hr"], {"hr": "/hr/mcp"}, {"hr": {}}, {"hr": {"path": None}}):
        with pytest.raises(ValidationError):
            Settings(_env_file=None, app_env="development", servers=servers)


def test_env_names_as_the_docs_spell_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVERS__HR__PATH", "/hr/mcp")
    monkeypatch.setenv("SERVERS__HR__REQUIRED_SCOPES", "hr.read,hr.write")
    monkeypatch.setenv("SERVERS__HR__SCOPE_IMPLIES", '{"hr.write": ["hr.read"]}')
    hr = Settings(_env_file=None, app_env="development").served()[1]
    assert (hr.key, hr.name, hr.path, hr.required_scopes) == ("hr", "hr", "/hr/mcp", ("hr.read", "hr.write"))
    assert hr.implied_scopes == {"hr.write": frozenset({"hr.read"})}
    assert hr.lock_path == hr.tools_dir.resolve().parent / "tools.lock"


def test_a_misspelt_server_setting_names_the_closest_valid_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVERS__HR__PATH", "/hr/mcp")
    monkeypatch.setenv("SERVERS__HR__CLIENTID", "x")
    with pytest.raises(ValidationError, match=r"SERVERS__HR__CLIENTID .*did you mean SERVERS__HR__CLIENT_ID"):
        Settings(_env_file=None, app_env="development")
