"""Project templates, the build's input key, manifest pointing and error reporting, without running componentize-py."""

from __future__ import annotations

import filecmp
import tempfile
from pathlib import Path

import pytest

import theater.build as build_module
from theater.build import input_key, load_project, point_manifest, tool_command, tool_error
from theater.errors import BuildError, BuildToolMissing
from theater.manifest import load_manifest
from theater.templates import TEMPLATES, create_project, identifiers

REPO = Path(__file__).resolve().parents[2]

# What componentize-py 0.25 prints (stderr) when the app module has a syntax error, backtrace shortened.
SYNTAX_ERROR_OUTPUT = '''Traceback (most recent call last):
  File "/work/.venv/bin/componentize-py", line 8, in <module>
    sys.exit(script())
             ^^^^^^^^
AssertionError:   File "/1/app.py", line 2
    def f(:
          ^
SyntaxError: invalid syntax


Caused by:
    SyntaxError: invalid syntax (app.py, line 2)

Stack backtrace:
   0: <anyhow::Error>::msg::<alloc::string::String>
   1: anyhow::__private::format_err
'''


def test_identifiers_give_a_class_and_a_wit_package() -> None:
    assert identifiers("my_actor-2") == {"name": "my_actor-2", "class": "MyActor2", "package": "my-actor-n2"}
    with pytest.raises(BuildError, match="starts with a letter"):
        identifiers("9lives")


@pytest.mark.parametrize("template", TEMPLATES)
def test_create_makes_a_project_with_vendored_wit(tmp_path: Path, template: str) -> None:
    root = create_project("demo-actor", template=template, parent=tmp_path)
    for name in ("app.py", "manifest.toml", "wit/world.wit", "README.md", "tests/test_app.py", ".gitignore"):
        assert (root / name).is_file(), name
    vendored = root / "wit" / "deps" / "theater-simple"
    assert sorted(p.name for p in vendored.iterdir()) == sorted(p.name for p in (REPO / "wit").glob("*.wit"))
    assert all(filecmp.cmp(p, REPO / "wit" / p.name, shallow=False) for p in vendored.iterdir())
    manifest = load_manifest(root / "manifest.toml")
    assert manifest.name == "demo-actor"
    assert manifest.component.value == root / "build" / "demo-actor.wasm"
    text = (root / "app.py").read_text() + (root / "wit" / "world.wit").read_text()
    assert "{{" not in text and "class DemoActor(Actor)" in text and "world demo-actor" in text


def test_each_template_grants_exactly_the_handlers_its_world_imports(tmp_path: Path) -> None:
    handler_of = {"message-server-host": "message-server", "timing": "timing", "random": "random",
                  "supervisor": "supervisor", "store": "store", "filesystem": "filesystem",
                  "environment": "environment", "process": "process", "http-framework": "http-framework",
                  "http-client": "http-client"}
    for template in TEMPLATES:
        root = create_project(f"t-{template}", template=template, parent=tmp_path)
        world = (root / "wit" / "world.wit").read_text()
        imported = {line.split("/")[1].rstrip(";") for line in world.splitlines() if "import theater:simple/" in line}
        wanted = {handler_of[i] for i in imported if i in handler_of}
        assert {h.type for h in load_manifest(root / "manifest.toml").handlers} == wanted, template


def test_create_refuses_a_non_empty_directory_and_unknown_templates(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("x")
    with pytest.raises(BuildError, match="already exists and is not empty"):
        create_project("taken", parent=tmp_path)
    with pytest.raises(
        BuildError,
        match="unknown template; choose one of basic, request, channels, supervisor, documents, http-server, agent",
    ):
        create_project("fresh", template="web", parent=tmp_path)


def test_load_project_says_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="no manifest.toml: not an actor project"):
        load_project(tmp_path)
    (tmp_path / "manifest.toml").write_text('name = "x"\ncomponent = "build/x.wasm"\n')
    with pytest.raises(BuildError, match="no actor module app.py"):
        load_project(tmp_path)
    (tmp_path / "app.py").write_text("")
    with pytest.raises(BuildError, match="no wit/ directory"):
        load_project(tmp_path)


def _key(root: Path) -> str:
    project = load_project(root)
    with tempfile.TemporaryDirectory() as tmp:
        build_module._stage(project, Path(tmp))
        return input_key(project, Path(tmp), "0.25.1")


def test_the_input_key_covers_sources_not_paths_tests_or_build_output(tmp_path: Path) -> None:
    root = create_project("keyed", parent=tmp_path / "a")
    key = _key(root)
    copy = create_project("keyed", parent=tmp_path / "b")
    assert _key(copy) == key, "the key does not depend on where the project is"
    (root / "tests" / "test_more.py").write_text("x = 1\n")
    (root / "build").mkdir()
    (root / "build" / "junk.py").write_text("x = 1\n")
    (root / "README.md").write_text("changed\n")
    assert _key(root) == key
    (root / "helpers.py").write_text("X = 1\n")
    assert _key(root) != key
    (root / "helpers.py").unlink()
    (root / "wit" / "world.wit").write_text((root / "wit" / "world.wit").read_text() + "\n")
    assert _key(root) != key


def test_the_installed_wit_is_staged_when_a_project_does_not_vendor_it(tmp_path: Path) -> None:
    project = load_project(REPO / "examples" / "counter")
    build_module._stage(project, tmp_path)
    assert (tmp_path / "wit" / "deps" / "theater-simple" / "worlds.wit").is_file()
    assert (tmp_path / "theater_sdk" / "_exports.py").is_file()
    assert "import app\n" in (tmp_path / "_theater_entry.py").read_text()


@pytest.mark.parametrize(
    ("line", "changed"),
    [('component = "build/p.wasm"', False), ('component = "old.wat"', True),
     ('component_path = "x.wasm"', True), ("component = " + '"' + "ab" * 32 + '"', True), (None, True)],
)
def test_the_manifest_is_pointed_at_the_build_output(tmp_path: Path, line: str | None, changed: bool) -> None:
    (tmp_path / "wit").mkdir()
    (tmp_path / "app.py").write_text("")
    text = 'name = "p"\n' + (f"{line}\n" if line else "") + '\n[limits]\nfuel_per_call = 5\n'
    (tmp_path / "manifest.toml").write_text(text)
    if line is None:
        project = build_module.Project(root=tmp_path, name="p", output=tmp_path / "build" / "p.wasm")
    else:
        project = load_project(tmp_path)
    assert point_manifest(project) is changed
    manifest = load_manifest(tmp_path / "manifest.toml")
    assert manifest.component.value == tmp_path / "build" / "p.wasm"
    assert manifest.limits.fuel_per_call == 5


def test_a_python_error_is_shown_without_the_rust_backtrace(tmp_path: Path) -> None:
    text = tool_error(SYNTAX_ERROR_OUTPUT, tmp_path)
    assert text.startswith("the Python code failed while it was imported at build time:")
    assert f'File "{tmp_path}/app.py", line 2' in text
    assert text.endswith("SyntaxError: invalid syntax")
    assert "backtrace" not in text and "anyhow" not in text and "AssertionError" not in text


def test_a_missing_componentize_py_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build_module.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(build_module.shutil, "which", lambda name: None)
    with pytest.raises(BuildToolMissing, match=r"componentize-py: not installed: pip install 'theater\[build\]'"):
        tool_command()


def test_another_componentize_py_series_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build_module.importlib.metadata, "version", lambda name: "0.19.3")
    if build_module.importlib.util.find_spec("componentize_py") is None:
        pytest.skip("componentize-py is not installed")
    with pytest.raises(BuildToolMissing, match="version 0.19.3 is installed, but Theater's SDK needs 0.25.x"):
        tool_command()
