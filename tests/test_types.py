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


# What --strict turns on (mypy --help), as configuration keys. An override cannot say `strict = true`: mypy applies
# that to every module, so pyproject.toml spells the flags out, and this says none was left out.
STRICT_FLAGS = {
    "disallow_any_generics": True, "disallow_subclassing_any": True, "disallow_untyped_calls": True,
    "disallow_untyped_defs": True, "disallow_incomplete_defs": True, "check_untyped_defs": True,
    "disallow_untyped_decorators": True, "warn_redundant_casts": True, "warn_unused_ignores": True,
    "warn_return_any": True, "implicit_reexport": False, "strict_equality": True, "extra_checks": True,
}


def test_mypy_checks_every_package_and_is_strict_on_the_core():
    config = _mypy_config()
    assert sorted(config["files"]) == ["replay", "store", "theater"]
    assert "strict" not in config
    for override in config["overrides"]:
        assert not override.get("ignore_errors"), f"{override['module']} escapes the type checker"
        assert "strict" not in override, "strict in an override applies to every module; spell out the flags"
    core = [override for override in config["overrides"] if "store.*" in override["module"]]
    assert len(core) == 1
    assert {"store.*", "replay.*", "theater.host"} <= set(core[0]["module"])
    for flag, value in STRICT_FLAGS.items():
        assert core[0].get(flag, config.get(flag)) == value, f"{flag} is not {value} on the core"
