"""Signed checkpoints and proofs of a home: the key, the C2SP notes, and the attacks they stop."""

from __future__ import annotations

import base64
import os
import shutil
import uuid

import pytest

from store import Store
from store.audit import check_proof
from store.checkpoint import KEY_DIR, KEY_FILE, VerifierKey, checkpoint_body, key_id, open_note
from store.errors import InvalidInputError, NotFoundError, ProofError


def _key_path(store: Store):
    return store.path / KEY_DIR / KEY_FILE


def test_signing_key_is_created_on_first_use_readable_by_its_owner_only(fast_store):
    key = fast_store.audit.key()
    path = _key_path(fast_store)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert os.stat(path.parent).st_mode & 0o777 == 0o700
    assert fast_store.audit.key() == key  # the same key every time
    assert VerifierKey.parse(key.text) == key


def test_checkpoint_is_a_c2sp_signed_note_over_the_log(fast_store, append_chain):
    append_chain(fast_store, uuid.uuid4(), 5)
    cp = fast_store.audit.checkpoint()
    key = fast_store.audit.key()
    lines = cp.note.split("\n")
    assert lines[0] == key.name and lines[1] == "5" and base64.b64decode(lines[2]) == cp.root
    assert lines[3] == ""
    assert lines[4].startswith("\u2014 " + key.name + " ")
    signature = base64.b64decode(lines[4].split(" ")[2])
    assert signature[:4] == key_id(key.name, key.public) and len(signature) == 68
    assert cp.note.endswith("\n") and lines[5] == ""
    opened = open_note(cp.note, key)
    assert (opened.size, opened.root) == (5, cp.root)


def test_every_checkpoint_is_kept_in_order(fast_store, append_chain):
    actor = uuid.uuid4()
    made = []
    for _ in range(3):
        append_chain(fast_store, actor, 2)
        made.append(fast_store.audit.checkpoint())
    kept = fast_store.audit.checkpoints()
    assert [c.number for c in kept] == [1, 2, 3]
    assert [(c.size, c.note) for c in kept] == [(c.size, c.note) for c in made] == [
        (2, made[0].note), (4, made[1].note), (6, made[2].note)
    ]
    assert fast_store.audit.get().number == 3
    with pytest.raises(NotFoundError):
        fast_store.audit.get(4)


def test_group_readable_signing_key_is_refused(fast_store):
    fast_store.audit.key()
    os.chmod(_key_path(fast_store), 0o640)
    with pytest.raises(ProofError, match="0640"):
        fast_store.audit.key()
    with pytest.raises(ProofError, match="group or others"):
        fast_store.audit.checkpoint()


def test_replaced_signing_key_is_refused(fast_store, append_chain):
    append_chain(fast_store, uuid.uuid4(), 1)
    fast_store.audit.checkpoint()  # records the public key in the home
    path = _key_path(fast_store)
    path.unlink()
    with pytest.raises(ProofError, match="recorded"):  # a new key file is made, and refused at once
        fast_store.audit.key(create=True)
    assert path.exists()
    with pytest.raises(ProofError, match="recorded"):
        fast_store.audit.key()
    with pytest.raises(ProofError, match="replaced"):
        fast_store.audit.checkpoint()
    assert len(fast_store.audit.checkpoints()) == 1


def test_inclusion_proof_of_every_event_verifies_with_only_the_key(fast_store, append_chain):
    actors = [uuid.uuid4() for _ in range(3)]
    events = [e for actor in actors for e in append_chain(fast_store, actor, 7)]
    fast_store.audit.checkpoint()
    key = VerifierKey.parse(fast_store.audit.key().text)
    for event in events:
        result = check_proof(fast_store.audit.prove(event.hash), key)
        assert result.event == event.hash


def test_proof_against_an_older_checkpoint(fast_store, append_chain):
    actor = uuid.uuid4()
    first = append_chain(fast_store, actor, 3)
    fast_store.audit.checkpoint()
    later = append_chain(fast_store, actor, 3)
    fast_store.audit.checkpoint()
    key = fast_store.audit.key()
    assert check_proof(fast_store.audit.prove(first[1].hash, 1), key).checkpoints[0].size == 3
    with pytest.raises(ProofError, match="newer checkpoint"):
        fast_store.audit.prove(later[0].hash, 1)


def test_proof_for_a_tampered_event_is_refused(fast_store, append_chain):
    events = append_chain(fast_store, uuid.uuid4(), 9)
    fast_store.audit.checkpoint()
    proof = fast_store.audit.prove(events[4].hash)
    proof["event"] = bytes(32).hex()
    with pytest.raises(ProofError, match="not leaf 4"):
        check_proof(proof, fast_store.audit.key())


def test_proof_for_an_event_not_in_the_log_is_refused(fast_store, append_chain):
    append_chain(fast_store, uuid.uuid4(), 4)
    fast_store.audit.checkpoint()
    with pytest.raises(NotFoundError):
        fast_store.audit.prove(b"\x01" * 32)


def test_checkpoint_signed_by_another_key_is_refused(tmp_path, fast_store, append_chain):
    events = append_chain(fast_store, uuid.uuid4(), 3)
    fast_store.audit.checkpoint()
    proof = fast_store.audit.prove(events[0].hash)
    with Store(tmp_path / "other", durability="buffered") as other:
        stranger = other.audit.key()
    with pytest.raises(ProofError, match="no signature by"):
        check_proof(proof, stranger)
    # A stranger's key that claims the home's name still does not verify.
    home = fast_store.audit.key()
    impostor = VerifierKey(name=home.name, key_id=home.key_id, public=stranger.public)
    with pytest.raises(ProofError, match="does not verify"):
        check_proof(proof, impostor)


def test_checkpoint_with_a_changed_size_or_root_is_refused(fast_store, append_chain):
    events = append_chain(fast_store, uuid.uuid4(), 6)
    cp = fast_store.audit.checkpoint()
    key = fast_store.audit.key()
    body, _, signature = cp.note.partition("\n\n")
    forged = checkpoint_body(key.name, 5, cp.root) + "\n" + signature
    with pytest.raises(ProofError, match="does not verify"):
        open_note(forged, key)
    proof = fast_store.audit.prove(events[0].hash)
    proof["checkpoint"] = forged
    with pytest.raises(ProofError):
        check_proof(proof, key)
    proof = fast_store.audit.prove(events[0].hash)
    proof["tree_size"] = 5
    with pytest.raises(ProofError, match="claims tree size 5"):
        check_proof(proof, key)


def test_consistency_between_checkpoints_verifies(fast_store, append_chain):
    actor = uuid.uuid4()
    for n in (1, 4, 9):
        append_chain(fast_store, actor, n)
        fast_store.audit.checkpoint()
    key = fast_store.audit.key()
    for old, new in ((1, 2), (1, 3), (2, 3), (3, 3)):
        result = check_proof(fast_store.audit.consistency(old, new), key)
        assert [c.size for c in result.checkpoints] == [
            fast_store.audit.get(old).size, fast_store.audit.get(new).size
        ]
    with pytest.raises(InvalidInputError, match="older one first"):
        fast_store.audit.consistency(3, 1)


def test_chain_truncated_and_reappended_fails_consistency_with_the_old_checkpoint(tmp_path, append_chain):
    """Whoever holds the home and its key rewrites an actor's history and signs a new checkpoint: an auditor who
    kept the old checkpoint sees the new one is not consistent with it, whatever proof the home hands out."""
    actor = uuid.uuid4()
    honest_path, forged_path = tmp_path / "honest", tmp_path / "forged"
    with Store(honest_path, durability="buffered") as honest:
        append_chain(honest, actor, 10)
        old = honest.audit.checkpoint()
        key = honest.audit.key()
    # The attacker's home: the same key, the same first 5 events, then a different history, re-hashed.
    forged_path.mkdir()
    shutil.copytree(honest_path / KEY_DIR, forged_path / KEY_DIR)
    with Store(forged_path, durability="buffered") as forged:
        append_chain(forged, actor, 5)
        append_chain(forged, actor, 5, data=lambda seq: {"rewritten": seq})
        forged.audit.checkpoint()
        append_chain(forged, actor, 3, data=lambda seq: {"rewritten": seq})
        forged.audit.checkpoint()
        assert forged.audit.key() == key
        # The proof the forged home makes (from size 10 to 13 of its own tree).
        proof = forged.audit.consistency(1, 2)
    assert (proof["old_size"], proof["new_size"]) == (10, 13)
    check_proof(proof, key)  # between its own checkpoints the forged log is consistent ...
    proof["old"] = old.note  # ... but not with the checkpoint of size 10 the auditor kept
    with pytest.raises(ProofError, match="does not extend"):
        check_proof(proof, key)


def test_event_changed_and_everything_after_rehashed_fails_consistency(tmp_path, append_chain):
    actor = uuid.uuid4()
    honest_path, forged_path = tmp_path / "honest", tmp_path / "forged"
    with Store(honest_path, durability="buffered") as honest:
        append_chain(honest, actor, 12)
        old = honest.audit.checkpoint()
        key = honest.audit.key()
    forged_path.mkdir()
    shutil.copytree(honest_path / KEY_DIR, forged_path / KEY_DIR)
    with Store(forged_path, durability="buffered") as forged:
        append_chain(forged, actor, 3)
        append_chain(forged, actor, 9, data=lambda seq: {"n": seq, "changed": seq == 3})
        forged.audit.checkpoint()
        append_chain(forged, actor, 2)
        forged.audit.checkpoint()
        proof = forged.audit.consistency(1, 2)
    assert proof["old_size"] == old.size == 12
    check_proof(proof, key)
    proof["old"] = old.note
    with pytest.raises(ProofError, match="does not extend"):
        check_proof(proof, key)


def test_checkpoint_committed_with_appends_signs_them(fast_store, append_chain):
    from store.checkpoint import PendingCheckpoint, load_or_create_key

    actor = uuid.uuid4()
    append_chain(fast_store, actor, 2)
    head = fast_store.log.head(actor)
    writes = []
    for n in range(5):
        p = fast_store.log.prepare(actor, "t", {"n": n}, expected=head, timestamp_ms=1)
        head = type(head)(p.event.seq, p.event.hash)
        writes.append(p)
    cp_write = PendingCheckpoint(load_or_create_key(fast_store.path))
    fast_store.submit([*writes, cp_write])  # one batch: the appends and the checkpoint
    cp = cp_write.wait(30)
    assert cp is not None and cp.size == 7
    result = check_proof(fast_store.audit.prove(writes[-1].event.hash), fast_store.audit.key())
    assert result.leaf_index == 6


def test_intact_home_verifies(fast_store, append_chain):
    for _ in range(3):
        append_chain(fast_store, uuid.uuid4(), 11)
        fast_store.audit.checkpoint()
    report = fast_store.audit.verify()
    assert report.ok, report.problems
    assert (report.leaves, report.checkpoints) == (33, 3)


def test_chain_truncated_and_reappended_in_place_is_found_by_verify(fast_store, append_chain, raw):
    """The attacker holds the home: cuts an actor's chain after seq 3 in LMDB and appends another history through
    the writer. The log only grew (the next checkpoint is consistent with the last), but its leaves for seq 4..9
    name events the chain no longer has."""
    from store.recorder import event_key

    actor = uuid.uuid4()
    events = append_chain(fast_store, actor, 10)
    fast_store.audit.checkpoint()
    for event in events[4:]:
        raw.delete(fast_store, "events", event_key(actor, event.seq))
    raw.put(fast_store, "heads", actor.bytes, (3).to_bytes(8, "big") + events[3].hash)
    append_chain(fast_store, actor, 6, data=lambda seq: {"rewritten": seq})
    fast_store.audit.checkpoint()
    report = fast_store.audit.verify()
    assert not report.ok
    rewritten = [p for p in report.problems if "its chain was rewritten" in p]
    assert len(rewritten) == 6 and f"leaf 4: event {events[4].hash.hex()}" in rewritten[0]


def test_checkpoint_forged_in_the_home_is_found_by_verify(fast_store, append_chain, raw):
    from store.checkpoint import CHECKPOINT_PREFIX

    append_chain(fast_store, uuid.uuid4(), 5)
    cp = fast_store.audit.checkpoint()
    append_chain(fast_store, uuid.uuid4(), 3)
    body, _, signature = cp.note.partition("\n\n")
    forged = checkpoint_body(cp.origin, 6, cp.root) + "\n" + signature  # a size the signature does not cover
    raw.put(fast_store, "merkle", CHECKPOINT_PREFIX + (1).to_bytes(8, "big"), forged.encode())
    report = fast_store.audit.verify()
    assert any(p.startswith("checkpoint 1:") and "does not verify" in p for p in report.problems)
    assert any("checkpoint 1 signs a root" in p for p in report.problems)
