"""``theater run`` with hostile or oversized manifests: a clear ``ErrorName: message``, never a traceback, never
the content of a file; ``--max`` sets the maximums manifests are held to."""

from tests.cli.conftest import run_cli
from tests.components import wat

CANARY = b"theater-cli-canary-41c9-do-not-leak\n"


def test_run_of_deeply_nested_toml_is_a_manifest_error_not_a_traceback(tmp_path):
    path = tmp_path / "deep.toml"
    path.write_text("x = " + "[" * 100_000 + "]" * 100_000 + "\n")
    done = run_cli("run", str(path), home=tmp_path / "home", check=False)
    assert done.returncode == 1
    assert done.stderr.startswith("ManifestError: ") and "nested too deeply" in done.stderr
    assert "Traceback" not in done.stderr


def test_run_of_a_component_that_is_not_wasm_does_not_print_the_file(tmp_path):
    (tmp_path / "notes.txt").write_bytes(CANARY)
    (tmp_path / "a.toml").write_text('name = "a"\ncomponent = "notes.txt"\n')
    done = run_cli("run", str(tmp_path / "a.toml"), home=tmp_path / "home", check=False)
    assert done.returncode == 1 and done.stderr.startswith("ComponentError: ")
    assert CANARY.strip().decode() not in done.stderr + done.stdout


def test_run_max_option_bounds_the_manifests_limits(tmp_path):
    (tmp_path / "echo.wat").write_text(wat.echo_actor())
    (tmp_path / "echo.toml").write_text('name = "echo"\ncomponent = "echo.wat"\n[limits]\ndeadline_ms = 5000\n')
    done = run_cli("run", str(tmp_path / "echo.toml"), "--max", "deadline_ms=4999", home=tmp_path / "home",
                   check=False)
    assert done.returncode == 1
    assert "ManifestError: " in done.stderr and "limits.deadline_ms: 5000 is more than this runtime's maximum of " \
                                                 "4999" in done.stderr
    done = run_cli("run", str(tmp_path / "echo.toml"), "--max", "deadline_ms=5000", home=tmp_path / "home")
    assert done.returncode == 0


def test_run_max_option_bounds_the_component_file(tmp_path):
    (tmp_path / "echo.wat").write_text(wat.echo_actor())
    (tmp_path / "echo.toml").write_text('name = "echo"\ncomponent = "echo.wat"\n')
    done = run_cli("run", str(tmp_path / "echo.toml"), "--max", "component_file_bytes=100", home=tmp_path / "home",
                   check=False)
    assert done.returncode == 1 and "more than the maximum of 100" in done.stderr
