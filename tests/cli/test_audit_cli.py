"""``theater audit``: keys, checkpoints and proofs through the real CLI, checked offline with only the key."""

from __future__ import annotations

import json
import os
import uuid

import cbor2

from store import EMPTY, Store
from tests.cli.conftest import run_cli


def _append(home, count: int) -> None:
    with Store(home / "store", durability="buffered") as store:
        actor, head = uuid.uuid4(), EMPTY
        for n in range(count):
            event = store.log.append(actor, "test.event", {"n": n}, expected=head)
            head = type(head)(event.seq, event.hash)


def test_prove_an_actor_and_check_it_offline_with_only_the_key(recorded, tmp_path):
    home, actor = recorded
    key = run_cli("audit", "key", home=home).stdout.strip()
    made = run_cli("audit", "checkpoint", home=home)
    assert made.stdout.split("\n")[0].startswith("theater-home/")
    proof_file = tmp_path / "proof.json"
    run_cli("audit", "prove", str(actor), "-o", str(proof_file), home=home)
    proof = json.loads(proof_file.read_text())
    with Store(home / "store", readonly=True) as store:
        head = store.log.head(uuid.UUID(str(actor)))
    assert proof["event"] == head.hash.hex() and proof["actor"] == str(actor) and proof["seq"] == head.seq
    # The auditor has no home at all: an empty directory, the proof file and the key.
    done = run_cli("audit", "check", str(proof_file), "--key", key, "--event", head.hash.hex(),
                   home=tmp_path / "nowhere")
    assert done.stdout.startswith("ok: event ")
    assert not (tmp_path / "nowhere").exists()
    key_file = tmp_path / "home.vkey"
    key_file.write_text(key + "\n")
    assert run_cli("audit", "verify-proof", str(proof_file), "--key", str(key_file), home=tmp_path).returncode == 0


def test_check_of_a_tampered_proof_exits_non_zero_naming_it(recorded, tmp_path):
    home, actor = recorded
    key = run_cli("audit", "key", home=home).stdout.strip()
    run_cli("audit", "checkpoint", home=home)
    proof_file = tmp_path / "proof.json"
    run_cli("audit", "prove", str(actor)[:8], "-o", str(proof_file), home=home)
    proof = json.loads(proof_file.read_text())
    proof["event"] = "00" * 32
    proof_file.write_text(json.dumps(proof))
    done = run_cli("audit", "check", str(proof_file), "--key", key, home=tmp_path, check=False)
    assert done.returncode == 1
    assert done.stderr.startswith("ProofError: inclusion proof does not hold")
    assert "Traceback" not in done.stderr


def test_check_with_another_homes_key_is_refused(recorded, tmp_path):
    home, actor = recorded
    run_cli("audit", "checkpoint", home=home)
    proof_file = tmp_path / "proof.json"
    run_cli("audit", "prove", str(actor), "-o", str(proof_file), home=home)
    other = run_cli("audit", "key", home=tmp_path / "other").stdout.strip()
    done = run_cli("audit", "check", str(proof_file), "--key", other, home=tmp_path, check=False)
    assert done.returncode == 1 and "no signature by" in done.stderr


def test_consistency_between_checkpoints_checks_offline(recorded, tmp_path):
    home, _ = recorded
    key = run_cli("audit", "key", home=home).stdout.strip()
    run_cli("audit", "checkpoint", home=home)
    _append(home, 5)
    run_cli("audit", "checkpoint", home=home)
    listed = run_cli("audit", "checkpoints", "--json", home=home)
    sizes = [c["size"] for c in json.loads(listed.stdout)]
    assert len(sizes) == 2 and sizes[1] == sizes[0] + 5
    proof_file = tmp_path / "consistency.json"
    run_cli("audit", "consistency", "1", "2", "-o", str(proof_file), home=home)
    done = run_cli("audit", "check", str(proof_file), "--key", key, home=tmp_path)
    assert done.stdout.startswith(f"ok: the log of {sizes[1]} events extends the one of {sizes[0]}")


def test_prove_before_any_checkpoint_is_a_clear_error(recorded, tmp_path):
    home, actor = recorded
    done = run_cli("audit", "prove", str(actor), "-o", str(tmp_path / "p.json"), home=home, check=False)
    assert done.returncode == 1
    assert done.stderr.startswith("NotFoundError: no checkpoint")
    assert not (tmp_path / "p.json").exists()


def test_world_readable_signing_key_is_refused_by_the_cli(recorded):
    home, _ = recorded
    run_cli("audit", "key", home=home)
    os.chmod(home / "store" / "audit" / "ed25519.key", 0o644)
    done = run_cli("audit", "checkpoint", home=home, check=False)
    assert done.returncode == 1
    assert done.stderr.startswith("ProofError: signing key") and "0644" in done.stderr
    assert "Traceback" not in done.stderr


def test_audit_verify_exits_non_zero_when_a_logged_event_was_rewritten(recorded):
    home, actor = recorded
    run_cli("audit", "checkpoint", home=home)
    assert run_cli("audit", "verify", home=home).stdout.endswith("checkpoints, ok\n")
    with Store(home / "store") as store:  # the attacker changes the chain's last event in place
        actor_id = uuid.UUID(str(actor))
        head = store.log.head(actor_id)
        key = actor_id.bytes + head.seq.to_bytes(8, "big")
        with store.env.env.begin(write=True) as txn:
            value = bytes(txn.get(key, db=store.env.dbs["events"]))
            txn.put(key, bytes(32) + value[32:], db=store.env.dbs["events"])
    done = run_cli("audit", "verify", "--json", home=home, check=False)
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert not report["ok"] and "its chain was rewritten" in report["problems"][0]


def _bundle(home, actor, path, *extra):
    run_cli("chain", "export", str(actor), "-o", str(path), *extra, home=home)
    return cbor2.loads(path.read_bytes())


def test_bundle_with_a_proof_verifies_its_origin_with_only_the_key(recorded, tmp_path):
    home, actor = recorded
    key = run_cli("audit", "key", home=home).stdout.strip()
    run_cli("audit", "checkpoint", home=home)
    bundle = _bundle(home, actor, tmp_path / "a.bundle", "--proof")
    assert bundle["audit"]["event"] == bundle["events"][-1][:32].hex()
    done = run_cli("verify", str(tmp_path / "a.bundle"), "--key", key, home=tmp_path / "nowhere")
    assert done.stdout.startswith("origin: ok (its last event ")
    assert "replay: ok" in done.stdout


def test_bundle_whose_checkpoint_was_forged_is_refused(recorded, tmp_path):
    home, actor = recorded
    key = run_cli("audit", "key", home=home).stdout.strip()
    run_cli("audit", "checkpoint", home=home)
    bundle = _bundle(home, actor, tmp_path / "a.bundle", "--proof")
    origin, size, root = bundle["audit"]["checkpoint"].split("\n")[:3]
    bundle["audit"]["checkpoint"] = bundle["audit"]["checkpoint"].replace(f"\n{size}\n", f"\n{int(size) + 1}\n", 1)
    bundle["audit"]["tree_size"] = int(size) + 1
    (tmp_path / "forged.bundle").write_bytes(cbor2.dumps(bundle, canonical=True))
    done = run_cli("verify", str(tmp_path / "forged.bundle"), "--key", key, home=tmp_path, check=False)
    assert done.returncode == 1 and done.stderr.startswith("ProofError: checkpoint does not hold")
    assert "does not verify" in done.stderr


def test_bundle_without_a_proof_or_with_another_events_proof_is_refused_under_key(recorded, tmp_path):
    home, actor = recorded
    key = run_cli("audit", "key", home=home).stdout.strip()
    run_cli("audit", "checkpoint", home=home)
    _bundle(home, actor, tmp_path / "plain.bundle")
    done = run_cli("verify", str(tmp_path / "plain.bundle"), "--key", key, home=tmp_path, check=False)
    assert done.returncode == 1 and "carries no proof of origin" in done.stderr
    bundle = _bundle(home, actor, tmp_path / "a.bundle", "--proof")
    bundle["events"] = bundle["events"][:-1]  # a shorter chain with the proof of the full one
    bundle["to_seq"] -= 1
    (tmp_path / "short.bundle").write_bytes(cbor2.dumps(bundle, canonical=True))
    done = run_cli("verify", str(tmp_path / "short.bundle"), "--key", key, home=tmp_path, check=False)
    assert done.returncode == 1 and "is not for its last event" in done.stderr
    other = run_cli("audit", "key", home=tmp_path / "other").stdout.strip()
    done = run_cli("verify", str(tmp_path / "a.bundle"), "--key", other, home=tmp_path, check=False)
    assert done.returncode == 1 and "no signature by" in done.stderr
