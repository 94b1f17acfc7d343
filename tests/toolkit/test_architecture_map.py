"""docs/architecture.md's package map is generated from app/'s docstrings: it names every module, and is current."""

from __future__ import annotations

from pathlib import Path

from app.toolkit import architecture_map

APP = Path(architecture_map.__file__).resolve().parents[1]


def test_the_committed_package_map_is_current() -> None:
    page = architecture_map.PAGE.read_text(encoding="utf-8")
    assert page == architecture_map.render(page), "docs/architecture.md is stale: run `make docs` and commit it"


def test_the_map_names_every_module_and_package_of_app() -> None:
    generated = architecture_map.render_map()
    for module in APP.rglob("*.py"):
        relative = module.relative_to(APP)
        if len(relative.parts) == 1:
            assert f"`app/{relative.name}`" in generated
        elif relative.name == "__init__.py" and len(relative.parts) == 2:
            assert f"### `app/{relative.parts[0]}/`" in generated
        else:
            assert f"- `{Path(*relative.parts[1:]).as_posix()}`:" in generated, relative


def test_every_package_and_module_says_what_it_is() -> None:
    assert "(no docstring)" not in architecture_map.render_map()


def test_a_new_module_shows_up_in_the_map(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    package = tmp_path / "edge"
    package.mkdir()
    (package / "__init__.py").write_text('"""The edge."""\n')
    (package / "fresh.py").write_text('"""Something new. More words."""\n')
    monkeypatch.setattr(architecture_map, "layers", lambda: ["edge"])
    generated = architecture_map.render_map(tmp_path)
    assert "### `app/edge/`\n\nThe edge." in generated and "- `fresh.py`: Something new." in generated
