"""The CLI's proof commands: verify (actors and bundles), replay, chain export/import, events, state."""

import base64
import json
import uuid

import lmdb
import pytest

from store import Store
from store.codec import encode_event
from tests.cli.conftest import run_cli
from tests.components import wat
from theater.errors import ErrAnswered
from theater.runtime import Theater


def test_verify_of_an_intact_chain_exits_zero_and_says_why(recorded):
    home, actor = recorded
    done = run_cli("verify", actor, home=home)
    assert "integrity: ok (14 events" in done.stdout
    assert "replay: ok" in done.stdout and "3 host calls" in done.stdout


def test_verify_json_report(recorded):
    home, actor = recorded
    report = json.loads(run_cli("verify", actor, "--json", home=home).stdout)
    assert report["ok"] is True
    assert report["integrity"]["events"] == 14
    assert report["replay"]["calls"] == 4 and report["replay"]["host_calls"] == 3


def _rewrite_clock_result(home, actor, new_time: int) -> int:
    """Change the recorded result of the first timing/now call and re-hash the chain from there."""
    with Store(home / "store") as st:
        events = list(st.log.events(uuid.UUID(actor)))
    target = next(e for e in events if e.type == "theater:simple/timing/now")
    env = lmdb.open(str(home / "store"), max_dbs=16)
    dbs = {name: env.open_db(name.encode()) for name in ("events", "event_index", "heads", "feed")}
    with env.begin(write=True) as txn:
        parent = target.parent
        for event in events[target.seq:]:
            data = dict(event.data)
            if event.seq == target.seq:
                data["result"] = new_time
            enc = encode_event(actor=event.actor, seq=event.seq, parent=parent, timestamp_ms=event.timestamp_ms,
                               type=event.type, data=data)
            key = event.actor.bytes + event.seq.to_bytes(8, "big")
            txn.delete(event.hash, db=dbs["event_index"])
            txn.put(key, enc.hash + enc.body, db=dbs["events"])
            txn.put(enc.hash, key, db=dbs["event_index"])
            parent = enc.hash
        txn.put(uuid.UUID(actor).bytes, events[-1].seq.to_bytes(8, "big") + parent, db=dbs["heads"])
    env.close()
    return target.seq


def test_verify_catches_a_rehashed_host_result_by_re_execution(recorded):
    home, actor = recorded
    seq = _rewrite_clock_result(home, actor, 12345)
    done = run_cli("verify", actor, home=home, check=False)
    assert done.returncode == 1
    assert "integrity: ok" in done.stdout
    # The altered value is consumed by the call: its result (the new state) no longer follows.
    assert f"replay: DIVERGED at event {seq + 1}" in done.stdout
    assert "result of theater:simple/message-server-client.handle-send" in done.stdout


def test_bundle_exported_from_one_home_verifies_with_no_home(recorded, tmp_path):
    home, actor = recorded
    bundle = tmp_path / "clock.bundle"
    run_cli("chain", "export", actor, "-o", str(bundle), home=home)
    nowhere = tmp_path / "no-home-here"
    done = run_cli("verify", str(bundle), home=nowhere)
    assert "integrity: ok" in done.stdout and "replay: ok" in done.stdout
    assert not nowhere.exists()


def test_bundle_with_one_byte_changed_fails_and_says_where(recorded, tmp_path):
    home, actor = recorded
    bundle = tmp_path / "clock.bundle"
    run_cli("chain", "export", actor, "-o", str(bundle), home=home)
    data = bytearray(bundle.read_bytes())
    at = data.index(b"theater:simple/timing/now") + len("theater:simple/timing/now") + 2
    data[at] ^= 0x01
    bundle.write_bytes(bytes(data))
    done = run_cli("verify", str(bundle), home=tmp_path / "none", check=False)
    assert done.returncode == 1
    assert "CorruptRecordError" in done.stderr or "ChecksumMismatch" in done.stderr
    assert "event" in done.stderr


def test_bundle_imports_into_an_empty_home_and_verifies_there(recorded, tmp_path):
    home, actor = recorded
    bundle = tmp_path / "clock.bundle"
    run_cli("chain", "export", actor, "-o", str(bundle), home=home)
    other = tmp_path / "other"
    assert run_cli("chain", "import", str(bundle), home=other).stdout.strip() == actor
    assert "replay: ok" in run_cli("verify", actor, home=other).stdout
    # Importing again changes nothing.
    run_cli("chain", "import", str(bundle), home=other)
    assert "14 events" in run_cli("verify", actor, home=other).stdout


def test_replay_of_an_event_shows_its_call_and_host_results(recorded):
    home, actor = recorded
    events = json.loads(run_cli("events", actor, "--json", home=home).stdout)
    now = next(e for e in events if e["type"] == "theater:simple/timing/now")
    done = run_cli("replay", now["hash"][:10], home=home)
    assert "theater:simple/message-server-client.handle-send" in done.stdout
    assert f"host -> {now['seq']:>5}  theater:simple/timing/now" in done.stdout
    assert "the record is reproduced" in done.stdout
    report = json.loads(run_cli("replay", now["hash"], "--json", home=home).stdout)
    assert report["reproduced"] is True
    assert report["call"]["host_calls"][0]["data"]["result"] == now["data"]["result"]


def test_the_same_replay_twice_gives_identical_reports(recorded):
    home, actor = recorded
    first = run_cli("verify", actor, "--json", home=home).stdout
    assert run_cli("verify", actor, "--json", home=home).stdout == first


def test_state_at_an_earlier_event_comes_from_the_record(recorded):
    home, actor = recorded
    events = json.loads(run_cli("events", actor, "--json", "--type", "wasm/result", home=home).stdout)
    first_send = events[1]
    state = json.loads(run_cli("state", actor, "--seq", str(first_send["seq"]), "--json", home=home).stdout)
    assert state["seq"] == first_send["seq"]
    with Store(home / "store", readonly=True) as st:
        recorded_state = st.blobs.get(bytes.fromhex(first_send["data"]["state"].removeprefix("hex:")))
    # A state is a payload, in the one form the API uses too.
    assert state["state"] == {"base64": base64.b64encode(recorded_state).decode(), "text": None, "size": 8}
    later = json.loads(run_cli("state", actor, "--json", home=home).stdout)
    assert later["seq"] == events[-1]["seq"] and later["state"] != state["state"]


def test_unknown_event_prefix_is_a_clear_error(recorded):
    home, _ = recorded
    done = run_cli("replay", "ffffffffff", home=home, check=False)
    assert done.returncode == 1
    assert done.stderr.startswith("NotFoundError: no event ffffffffff")


def test_events_filters_by_type_and_range(recorded):
    home, actor = recorded
    events = json.loads(run_cli("events", actor, "--json", "--type", "wasm/*", "--from", "2", "--limit", "3",
                                home=home).stdout)
    assert [e["seq"] for e in events] == [2, 3, 4]
    assert all(e["type"].startswith("wasm/") for e in events)


def test_replay_verify_and_state_of_an_answered_err_from_the_cli(tmp_path):
    component = wat.actor_wat(send=wat.match_msg({b"fail": wat.seq(wat.count(), wat.fail("bad input"))},
                                                 wat.count()))
    (tmp_path / "c.wat").write_text(component)
    (tmp_path / "c.toml").write_text('name = "c"\ncomponent = "c.wat"\n')
    home = tmp_path / "home"
    with Theater(home) as theater:
        actor = theater.start(tmp_path / "c.toml")
        theater.send(actor, b"tick")
        with pytest.raises(ErrAnswered):
            theater.send(actor, b"fail")
        theater.send(actor, b"tick")
        theater.stop(actor)
    events = json.loads(run_cli("events", actor, "--json", home=home).stdout)
    answer = next(e for e in events if e["type"] == "wasm/err-answer")
    done = run_cli("replay", answer["hash"], home=home)
    assert f"err     {answer['seq']:>5}  answered: bad input  (the actor went on, its state unchanged)" in done.stdout
    assert "the record is reproduced" in done.stdout
    assert "replay: ok" in run_cli("verify", actor, home=home).stdout
    state = json.loads(run_cli("state", actor, "--seq", str(answer["seq"]), "--json", home=home).stdout)
    assert base64.b64decode(state["state"]["base64"]) == (1).to_bytes(8, "little")
