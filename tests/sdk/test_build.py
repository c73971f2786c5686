"""``theater build`` and ``theater create`` with the real componentize-py: the cache, errors, every template end to
end (created, built, and its own generated test run)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from store import Store
from theater.build import build_project
from theater.cli import cli
from theater.errors import BuildError
from theater.templates import TEMPLATES

from ._support import CACHE, build

pytestmark = [pytest.mark.integration]
pytest.importorskip("componentize_py", reason="componentize-py is needed: pip install -e '.[build]'")


def test_a_second_build_of_unchanged_sources_is_a_no_op(example: Callable[[str], Path]) -> None:
    root = example("counter")
    first = build(root)
    wasm = first.wasm.read_bytes()
    mtime = first.wasm.stat().st_mtime_ns
    second = build_project(root)
    assert second.how == "up to date" and second.key == first.key
    assert second.seconds < 2.0
    assert first.wasm.stat().st_mtime_ns == mtime and first.wasm.read_bytes() == wasm


def test_a_build_is_restored_from_the_homes_store(example: Callable[[str], Path], tmp_path: Path) -> None:
    root = example("counter")
    with Store(tmp_path / "store") as store:
        first = build(root, store=store)
        assert store.blobs.get_label(f"build/{first.key}") == first.digest
        shutil.rmtree(root / "build")
        again = build_project(root, store=store)
    assert again.how == "store" and again.digest == first.digest and again.wasm.is_file()


def test_a_changed_source_is_built_again(example: Callable[[str], Path]) -> None:
    root = example("counter")
    first = build(root)
    (root / "app.py").write_text((root / "app.py").read_text() + "\n# changed\n")
    second = build(root)
    assert second.key != first.key and second.how in ("built", "cache")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("source", "expected", "names_the_file"),
    [
        ("def broken(:\n    pass\n", ["line 1", "def broken(:", "SyntaxError: invalid syntax"], True),
        ("import not_a_module_anywhere\n", ["line 1, in <module>", "ModuleNotFoundError: No module named "
                                            "'not_a_module_anywhere'"], True),
        ("from theater_sdk import Actor\n\nclass A(Actor):\n    pass\n",
         ["module 'app' registered no actor: end it with `run(YourActor)`"], False),
    ],
    ids=["syntax-error", "import-error", "no-run"],
)
def test_a_python_error_at_build_time_is_shown_as_the_python_error(
    example: Callable[[str], Path], source: str, expected: list[str], names_the_file: bool
) -> None:
    root = example("counter")
    (root / "app.py").write_text(source)
    with pytest.raises(BuildError) as caught:
        build(root)
    message = str(caught.value)
    assert message.startswith(f"{root}: ")
    for text in expected:
        assert text in message
    assert "Stack backtrace" not in message and "anyhow" not in message and "componentize_py" not in message
    assert message.count("\n") > 0 and "the Python code failed while it was imported at build time" in message
    assert (f'File "{root}/app.py"' in message) is names_the_file
    assert not (root / "build" / "counter.wasm").exists()


@pytest.mark.slow
def test_the_cli_prints_a_build_error_without_a_traceback(example: Callable[[str], Path], tmp_path: Path) -> None:
    root = example("counter")
    (root / "app.py").write_text("x = 1 +\n")
    done = CliRunner().invoke(cli, ["--home", str(tmp_path / "home"), "build", str(root), "--no-precompile"])
    assert done.exit_code == 1
    assert isinstance(done.exception, BuildError)
    assert "SyntaxError: invalid syntax" in str(done.exception)


@pytest.mark.parametrize("template", TEMPLATES)
def test_create_then_build_then_the_generated_test_passes(tmp_path: Path, template: str) -> None:
    runner = CliRunner()
    home = tmp_path / "home"
    created = runner.invoke(cli, ["--home", str(home), "create", "my-actor", "--template", template,
                                  "--dir", str(tmp_path)])
    assert created.exit_code == 0, created.output
    root = tmp_path / "my-actor"
    built = runner.invoke(cli, ["--home", str(home), "build", str(root), "--cache-dir", str(CACHE),
                                "--no-precompile"])
    assert built.exit_code == 0, built.output
    assert "my-actor" in built.output and "componentize-py 0.25" in built.output
    again = runner.invoke(cli, ["--home", str(home), "build", str(root), "--no-precompile", "--json"])
    assert '"how": "up to date"' in again.output
    _run_generated_test(root)


def _run_generated_test(root: Path) -> None:
    """The project's own tests, as its author runs them: pytest in the project, with Theater's plugin."""
    env = {**os.environ, "THEATER_BUILD_CACHE": str(CACHE)}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=root,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert " passed" in done.stdout
