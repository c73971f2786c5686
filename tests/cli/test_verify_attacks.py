"""The proof commands under attack: corrupted blobs, forged records, crafted bundles and unknown ids each end in a
clear answer and a non-zero exit, never a traceback; interrupted calls are named by event."""

from __future__ import annotations

import json
import uuid

import blake3
import cbor2
import pytest

from store import Store
from tests._forge import Draft, forge
from tests.cli.conftest import run_cli

NOBODY = "00000000-0000-4000-8000-000000000000"
SEND = "theater:simple/message-server-client.handle-send"


def no_traceback(done) -> None:
    assert "Traceback" not in done.stderr, done.stderr


def genesis(home) -> dict:
    with Store(home / "store", readonly=True) as st:
        actor, _ = st.log.actors()[0]
        return st.log.at(actor, 0).data


def put_raw_blob(home, digest: bytes, data: bytes | None) -> None:
    """Overwrite (or delete) a blob behind the store's back, as anyone with the home's files could."""
    import lmdb

    env = lmdb.open(str(home / "store"), max_dbs=16)
    blobs = env.open_db(b"blobs")
    with env.begin(write=True) as txn:
        if data is None:
            txn.delete(digest, db=blobs)
        else:
            txn.put(digest, data, db=blobs)
    env.close()


# Referenced blobs.


def test_chain_verify_detects_corrupted_component_blob(recorded):
    home, actor = recorded
    component = genesis(home)["component"]
    put_raw_blob(home, component, b"(component)")
    done = run_cli("chain", "verify", actor, home=home, check=False)
    assert done.returncode == 1, done.stdout
    assert "seq 0 " in done.stdout and "blob checksum mismatch: component blob " + component.hex() in done.stdout
    done = run_cli("verify", actor, home=home, check=False)
    assert done.returncode == 1
    assert "integrity: BROKEN" in done.stdout and "component blob" in done.stdout
    no_traceback(done)


def test_verify_detects_missing_state_blob(recorded):
    home, actor = recorded
    events = json.loads(run_cli("events", actor, "--json", "--type", "wasm/result", home=home).stdout)
    state = bytes.fromhex(events[-1]["data"]["state"].removeprefix("hex:"))
    put_raw_blob(home, state, None)
    report = json.loads(run_cli("chain", "verify", actor, "--json", home=home, check=False).stdout)
    [chain] = report["chains"]
    assert chain["problem"]["kind"] == "missing blob"
    # The clock's state is the time: two calls in the same millisecond leave the same state, named first by the
    # earlier result.
    first = next(e for e in events if e["data"]["state"] == events[-1]["data"]["state"])
    assert chain["problem"]["seq"] == first["seq"]
    assert chain["problem"]["detail"] == f"state blob {state.hex()} is not in the store"


# Unknown ids.


@pytest.mark.parametrize("args", [
    ("chain", "verify", NOBODY), ("events", NOBODY), ("state", NOBODY), ("verify", NOBODY),
    ("chain", "export", NOBODY, "-o", "never-written.bundle"),
], ids=lambda args: " ".join(a for a in args if a != NOBODY)[:20])
def test_unknown_actor_is_not_found_and_fails(recorded, args):
    home, _ = recorded
    done = run_cli(*args, home=home, check=False)
    assert done.returncode == 1
    # One error for an unknown actor everywhere (the porcelain's; the API answers it with 404).
    assert done.stderr.startswith(f"ActorNotFound: no actor {NOBODY}"), done.stderr
    assert done.stdout == ""


def test_replay_of_unknown_event_is_not_found_and_fails(recorded):
    home, _ = recorded
    done = run_cli("replay", "ab" * 32, home=home, check=False)
    assert done.returncode == 1 and done.stderr.startswith("NotFoundError: no event ")


def test_events_from_a_negative_seq_is_a_usage_error(recorded):
    home, actor = recorded
    done = run_cli("events", actor, "--from", "-5", home=home, check=False)
    assert done.returncode == 2 and "-5 is not in the range" in done.stderr
    no_traceback(done)


# Forged records, as bundles and in a home.


@pytest.fixture
def forged_interrupted(recorded, tmp_path):
    """The recorded clock chain with a call invented after the second send: no end, then a resume."""
    home, actor = recorded
    with Store(home / "store", readonly=True) as st:
        def invent(drafts):
            results = [i for i, d in enumerate(drafts) if d.type == "wasm/result"]
            after = results[2] + 1
            state = drafts[results[2]].data["state"]
            drafts[after:after] = [
                Draft(type="wasm/call", data={"state": state, "export": SEND,
                                              "params": [b"transfer 1000000 to mallory"]}, ts=drafts[after].ts),
                Draft(type="wasm/instantiate", data={"fuel": drafts[1].data["fuel"], "state": state,
                                                     "reason": "resume"}, ts=drafts[after].ts),
            ]
            return after

        forged = forge(st, uuid.UUID(actor), invent, tmp_path / "forged")
    return forged


def test_verify_names_interrupted_calls_by_event(forged_interrupted, tmp_path):
    with Store(forged_interrupted.store_path, readonly=True) as st:
        invented = next(e for e in st.log.events(forged_interrupted.actor) if e.type == "wasm/call"
                        and e.data["params"] == [b"transfer 1000000 to mallory"])
    done = run_cli("verify", str(forged_interrupted.bundle), home=tmp_path / "none")
    assert "interrupted: 1 call with no recorded end" in done.stdout
    assert f"  event {invented.seq} ({invented.hash.hex()[:16]})  {SEND}  resumed at event {invented.seq + 1}" \
        in done.stdout
    report = json.loads(run_cli("verify", str(forged_interrupted.actor), "--json",
                                home=forged_interrupted.home).stdout)
    assert report["ok"] is True
    assert report["replay"]["interrupted"] == [{"seq": invented.seq, "hash": invented.hash.hex(), "export": SEND,
                                                "resumed_at": invented.seq + 1}]


def test_verify_of_a_bundle_with_a_state_jump_fails_and_says_where(recorded, tmp_path):
    home, actor = recorded
    forged_state = (424242).to_bytes(8, "little")
    with Store(home / "store", readonly=True) as st:
        def jump(drafts):
            last = [i for i, d in enumerate(drafts) if d.type == "wasm/call"][-1]
            drafts[last].data["state"] = blake3.blake3(forged_state).digest()
            return last

        forged = forge(st, uuid.UUID(actor), jump, tmp_path / "forged", blobs=[forged_state])
    done = run_cli("verify", str(forged.bundle), home=tmp_path / "none", check=False)
    assert done.returncode == 1
    assert "integrity: ok" in done.stdout
    assert "replay: the record contradicts itself at event " in done.stdout
    assert f"state passed to {SEND}" in done.stdout
    report = json.loads(run_cli("verify", str(forged.bundle), "--json", home=tmp_path / "none", check=False).stdout)
    assert report["replay"]["divergence"]["kind"] == "continuity"
    assert report["replay"]["divergence"]["expected"] == "hex:" + blake3.blake3(forged_state).hexdigest()


# Crafted bundles.


def test_crafted_bundle_from_seq_string_is_a_clear_error_on_the_command_line(recorded, tmp_path):
    home, actor = recorded
    bundle = tmp_path / "clock.bundle"
    run_cli("chain", "export", actor, "-o", str(bundle), home=home)
    bundle.write_bytes(cbor2.dumps({**cbor2.loads(bundle.read_bytes()), "from_seq": "3"}, canonical=True))
    done = run_cli("verify", str(bundle), home=tmp_path / "none", check=False)
    assert done.returncode == 1
    assert done.stderr.startswith("CorruptRecordError: ") and "from_seq '3'" in done.stderr
    no_traceback(done)


def test_verify_refuses_recorded_fuel_above_its_maximum_until_raised(recorded, tmp_path):
    home, actor = recorded
    with Store(home / "store", readonly=True) as st:
        def lavish(drafts):
            drafts[0].data["limits"]["fuel_per_call"] = 10**15

        forged = forge(st, uuid.UUID(actor), lavish, tmp_path / "forged")
    done = run_cli("verify", str(forged.bundle), home=tmp_path / "none", check=False)
    assert done.returncode == 1
    assert done.stderr.startswith("LimitRefused: cannot replay: the chain records fuel_per_call = "
                                  "1,000,000,000,000,000, above this verifier's maximum of 1,000,000,000,000")
    no_traceback(done)
    assert "replay: ok" in run_cli("verify", str(forged.bundle), "--max-fuel", str(10**15),
                                   home=tmp_path / "none").stdout
