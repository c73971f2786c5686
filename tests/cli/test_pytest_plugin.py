"""Theater's pytest plugin as an actor author uses it: a project made by ``theater create``, its own tests run by
pytest in a subprocess, recorded chains dropped into ``tests/chains/`` replayed against every build, hostile
bundles refused with a clear message."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from replay.bundle import export_bundle
from store import parse_actor_id
from tests.sdk._support import CACHE, build, seed_compiled
from theater.cli import cli
from theater.runtime import Theater

pytestmark = [pytest.mark.integration]
pytest.importorskip("componentize_py", reason="componentize-py is needed: pip install -e '.[build]'")


def project_pytest(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "THEATER_BUILD_CACHE": str(CACHE)}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", *args], cwd=root,
                          env=env, capture_output=True, text=True, timeout=900)


def outcomes(done: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """Each test's outcome, from pytest's ``-rA`` summary."""
    found = re.findall(r"^(PASSED|FAILED|ERROR) (\S+)", done.stdout, re.MULTILINE)
    return {name.split("::")[-1].rsplit("/", 1)[-1]: outcome for outcome, name in found}


def record_bundle(root: Path, home: Path) -> bytes:
    """A chain of the project's actor, as production would record it, exported as a bundle."""
    result = build(root)
    with Theater(home, durability="buffered") as theater:
        theater.store.blobs.put(result.wasm.read_bytes())
        seed_compiled(theater.store, theater.engine, result.digest)
        actor = theater.start(root / "manifest.toml")
        theater.send(actor, b"+5")
        theater.send(actor, b"x")
        assert theater.request(actor, b"get") == b"6"
        return export_bundle(theater.store, parse_actor_id(actor))


FIXTURE_TESTS = '''
import json

from theater.pytest_plugin import assert_chain_verifies


def test_state_and_home(theater_actor, theater_home):
    theater_actor.send(b"+4")
    assert theater_actor.request(b"get") == b"4"
    assert json.loads(theater_actor.state()) == {"count": 4}
    assert theater_actor.events()[0].type == "actor/created"
    assert (theater_home / "store").is_dir()
    assert_chain_verifies(theater_actor.runtime.store, theater_actor.id)


def test_a_server_runs_the_project(theater_server, theater_build):
    actor = theater_server.cli("start", str(theater_build.project.manifest), "--id-only").stdout.strip()
    theater_server.cli("message", actor, "+2")
    assert theater_server.cli("message", actor, "get", "--request", "--raw").stdout == "2"
    assert theater_server.url.startswith("http://127.0.0.1:")
'''


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    parent = tmp_path_factory.mktemp("projects")
    created = CliRunner().invoke(cli, ["create", "my-actor", "--template", "basic", "--dir", str(parent)])
    assert created.exit_code == 0, created.output
    return parent / "my-actor"


def test_a_generated_projects_tests_pass_with_the_plugin_and_replay_dropped_bundles(project, tmp_path):
    bundle = record_bundle(project, tmp_path / "production")
    chains = project / "tests" / "chains"
    chains.mkdir()
    (chains / "production.bundle").write_bytes(bundle)
    (chains / "truncated.bundle").write_bytes(bundle[: len(bundle) // 2])
    forged = bytearray(bundle)
    at = forged.index(b"theater:simple/actor.init")  # inside a stored event: its hash no longer holds
    forged[at] ^= 0x20
    (chains / "forged.bundle").write_bytes(bytes(forged))
    elsewhere = tmp_path / "more-chains"
    elsewhere.mkdir()
    (elsewhere / "kept.bundle").write_bytes(bundle)
    (project / "tests" / "test_fixtures.py").write_text(FIXTURE_TESTS)
    done = project_pytest(project, "tests", "--theater-bundles", str(elsewhere))
    assert outcomes(done) == {"test_counts": "PASSED", "production.bundle": "PASSED", "kept.bundle": "PASSED",
                              "truncated.bundle": "FAILED", "forged.bundle": "FAILED", "test_state_and_home": "PASSED",
                              "test_a_server_runs_the_project": "PASSED"}, done.stdout + done.stderr
    assert "truncated.bundle: unchecked: not a usable bundle: CorruptRecordError" in done.stdout
    assert "forged.bundle: unchecked: not a usable bundle:" in done.stdout
    assert "Traceback" not in done.stdout


def test_a_bundle_recorded_by_an_older_build_fails_once_an_answer_changes(project, tmp_path):
    chains = project / "tests" / "chains"
    chains.mkdir(exist_ok=True)
    for stale in chains.glob("*.bundle"):
        stale.unlink()
    (chains / "production.bundle").write_bytes(record_bundle(project, tmp_path / "production"))
    app = project / "app.py"
    changed = 'return f"count={self.state[\'count\']}"'
    app.write_text(app.read_text().replace('return str(self.state["count"])', changed))
    done = project_pytest(project, "tests/chains")
    assert done.returncode == 1
    assert outcomes(done) == {"production.bundle": "FAILED"}, done.stdout + done.stderr
    assert "production.bundle: different: the current build departs from the recorded chain" in done.stdout
    assert "first difference at event" in done.stdout and "count=6" in done.stdout
