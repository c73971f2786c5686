"""The type checker, made part of the test command: mypy over store, replay and theater with the configuration in
pyproject.toml (strict on store, replay and the host interface, the rest checked)."""

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _mypy_config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]


def test_mypy_reports_no_errors():
    # Run as a module of the interpreter under test, so it checks against the installed packages' types.
    # The cache lives in the repository's .mypy_cache (pyproject.toml), so reruns take seconds.
    done = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert "No module named mypy" not in done.stderr, f"mypy is not installed in {sys.executable}; install '.[test]'"
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("Success: no issues found"), done.stdout


def test_mypy_checks_every_package_and_is_strict_on_the_core():
    config = _mypy_config()
    assert sorted(config["files"]) == ["replay", "store", "theater"]
    strict = [override for override in config["overrides"] if override.get("strict")]
    modules = {module for override in strict for module in override["module"]}
    assert {"store.*", "replay.*", "theater.host"} <= modules, modules
    # No package escapes by being told to ignore every error.
    for override in config["overrides"]:
        assert not override.get("ignore_errors"), override
