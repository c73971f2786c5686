"""``theater upgrade-check``: verdicts, exit codes and the JSON report over a home's chains and bundle files, and
what it refuses to do (write to the home, trust a hostile bundle)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import blake3
import pytest

from tests.components import wat
from theater.runtime import Theater

ROOT = Path(__file__).resolve().parents[2]
GRANTS = '[[handlers]]\ntype = "message-server"\n[[handlers]]\ntype = "random"\n'


def cli(*args: str, home: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from theater.cli import main; main()", "--home", str(home), *args],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


def builds(tmp_path: Path) -> dict[str, Path]:
    """The recorded build and three new ones: compatible, state encoding changed, an answer changed."""
    texts = {
        "v1": wat.actor_wat(send=wat.append_msg(b","), request=wat.random_bytes(8)),
        "compatible": wat.actor_wat(send=wat.append_msg(b","), request=wat.random_bytes(8),
                                    channel_close=wat.set_state(b"closed")),
        "state-only": wat.actor_wat(send=wat.append_msg(b";"), request=wat.random_bytes(8)),
        "new-answer": wat.actor_wat(send=wat.append_msg(b","),
                                    request=wat.seq(wat.random_bytes(8), wat.respond(b"changed"))),
        "traps": wat.actor_wat(send=wat.append_msg(b","), request=wat.trap()),
    }
    paths = {}
    for name, text in texts.items():
        paths[name] = tmp_path / f"{name}.wat"
        paths[name].write_text(text)
    return paths


@pytest.fixture
def home(tmp_path):
    """A home with three chains of v1 (one stopped, two left as they are) and their builds; returns
    (home, actor ids, builds)."""
    paths = builds(tmp_path)
    (tmp_path / "actor.toml").write_text(f'name = "drawer"\ncomponent = "v1.wat"\n{GRANTS}')
    home = tmp_path / "home"
    actors = []
    with Theater(home, durability="buffered") as theater:
        for i in range(3):
            actor = theater.start(tmp_path / "actor.toml")
            theater.send(actor, b"a%d" % i)
            theater.request(actor, b"draw")
            theater.send(actor, b"b")
            actors.append(actor)
        theater.stop(actors[0])
    return home, actors, paths


def snapshot(home: Path) -> dict[str, bytes]:
    """Every file of the home by content; LMDB's ``lock.mdb`` left out (its reader table changes with every
    reader, read-only ones included: it holds no data)."""
    return {str(p.relative_to(home)): blake3.blake3(p.read_bytes()).digest()
            for p in sorted(home.rglob("*")) if p.is_file() and p.name != "lock.mdb"}


@pytest.mark.parametrize(("build", "verdict", "code"), [
    ("v1", "identical", 0),
    ("compatible", "identical", 0),
    ("state-only", "state-only", 3),
    ("new-answer", "different", 3),
    ("traps", "fails", 4),
])
def test_each_build_gets_its_verdict_and_exit_code(home, build, verdict, code):
    home_dir, actors, paths = home
    done = cli("upgrade-check", str(paths[build]), "--all", "--json", home=home_dir)
    assert done.returncode == code, done.stderr
    report = json.loads(done.stdout)
    assert [c["verdict"] for c in report["chains"]] == [verdict] * 3
    assert sorted(c["actor"] for c in report["chains"]) == sorted(actors)
    assert report["exit_code"] == code and report["passed"] == (code == 0)


def test_accepting_state_only_passes_a_new_state_encoding(home):
    home_dir, actors, paths = home
    done = cli("upgrade-check", str(paths["state-only"]), actors[1], "--accept", "state-only", home=home_dir)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "state-only" in done.stdout and "passed" in done.stdout


def test_the_table_shows_the_first_difference_decoded(home):
    home_dir, actors, paths = home
    done = cli("upgrade-check", str(paths["new-answer"]), actors[2][:8], home=home_dir)
    assert done.returncode == 3
    line = next(line for line in done.stdout.splitlines() if "different" in line)
    assert "wasm/result" in line and "result of theater:simple/message-server-client.handle-request" in line
    assert "changed" in line and "refused: 1 of 1" in done.stdout


def test_upgrade_check_never_writes_to_the_home(home):
    home_dir, actors, paths = home
    before = snapshot(home_dir)
    for build in ("compatible", "state-only", "traps"):
        cli("upgrade-check", str(paths[build]), "--all", home=home_dir)
    assert snapshot(home_dir) == before


def test_bundles_are_checked_without_a_home(home, tmp_path):
    home_dir, actors, paths = home
    bundle = tmp_path / "drawer.bundle"
    assert cli("chain", "export", actors[1], "-o", str(bundle), home=home_dir).returncode == 0
    nowhere = tmp_path / "nowhere"
    done = cli("upgrade-check", str(paths["compatible"]), str(bundle), "--json", home=nowhere)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["chains"][0]["source"] == str(bundle)
    assert not nowhere.exists()


def test_a_truncated_bundle_is_refused_with_a_clear_message(home, tmp_path):
    home_dir, actors, paths = home
    bundle = tmp_path / "drawer.bundle"
    cli("chain", "export", actors[1], "-o", str(bundle), home=home_dir)
    bundle.write_bytes(bundle.read_bytes()[:-100])
    done = cli("upgrade-check", str(paths["v1"]), str(bundle), "--json", home=tmp_path / "nowhere")
    assert done.returncode == 4
    (chain,) = json.loads(done.stdout)["chains"]
    assert chain["verdict"] == "unchecked" and chain["detail"].startswith("not a usable bundle: CorruptRecordError")


def test_a_bundle_with_a_forged_event_is_refused(home, tmp_path):
    home_dir, actors, paths = home
    bundle = tmp_path / "drawer.bundle"
    cli("chain", "export", actors[1], "-o", str(bundle), home=home_dir)
    data = bytearray(bundle.read_bytes())
    at = data.index(b"theater:simple/random/random-bytes") + len(b"theater:simple/random/random-bytes") + 2
    data[at] ^= 0x01
    bundle.write_bytes(bytes(data))
    done = cli("upgrade-check", str(paths["v1"]), str(bundle), home=tmp_path / "nowhere")
    assert done.returncode == 4
    assert "unchecked" in done.stdout and "not a usable bundle" in done.stdout


def test_no_targets_is_a_usage_error(home):
    home_dir, _actors, paths = home
    done = cli("upgrade-check", str(paths["v1"]), home=home_dir)
    assert done.returncode == 2 and "--all" in done.stderr


def test_a_new_component_that_does_not_exist_is_a_usage_error(home, tmp_path):
    home_dir, actors, _paths = home
    done = cli("upgrade-check", str(tmp_path / "missing.wasm"), actors[0], home=home_dir)
    assert done.returncode == 2 and "does not exist" in done.stderr


def test_all_with_a_name_checks_only_the_chains_of_that_name(home, tmp_path):
    home_dir, actors, paths = home
    (tmp_path / "other.wat").write_text(wat.counter_actor())
    (tmp_path / "other.toml").write_text('name = "other"\ncomponent = "other.wat"\n'
                                         '[[handlers]]\ntype = "message-server"\n')
    with Theater(home_dir, durability="buffered") as theater:
        other = theater.start(tmp_path / "other.toml")
        theater.send(other, b"+")
    named = json.loads(cli("upgrade-check", str(paths["v1"]), "--all", "--name", "drawer", "--json",
                           home=home_dir).stdout)
    assert sorted(c["actor"] for c in named["chains"]) == sorted(actors) and named["passed"]
    everything = cli("upgrade-check", str(paths["v1"]), "--all", "--json", home=home_dir)
    verdicts = {c["actor"]: c["verdict"] for c in json.loads(everything.stdout)["chains"]}
    # The counter only ever got a send (no answer to compare): v1 appends where it counted, a state-only change.
    assert len(verdicts) == 4 and verdicts[other] == "state-only" and everything.returncode == 3
