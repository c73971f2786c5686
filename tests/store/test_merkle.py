"""The home's Merkle log: RFC 9162 proofs against a recursive reference, the writer's incremental tree, old homes."""

from __future__ import annotations

import hashlib
import uuid

import lmdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from store import Store
from store.merkle import (
    SIZE_KEY,
    TreeView,
    consistency_path,
    inclusion_path,
    leaf_hash,
    node_hash,
    subtree_root,
    verify_consistency,
    verify_inclusion,
)

# The reference: RFC 9162 section 2.1 written as the recursive definitions, over a plain list of leaf data.


def ref_mth(data: list[bytes]) -> bytes:
    if not data:
        return hashlib.sha256(b"").digest()
    if len(data) == 1:
        return hashlib.sha256(b"\x00" + data[0]).digest()
    k = 1
    while k * 2 < len(data):
        k *= 2
    return hashlib.sha256(b"\x01" + ref_mth(data[:k]) + ref_mth(data[k:])).digest()


def ref_path(m: int, data: list[bytes]) -> list[bytes]:
    if len(data) == 1:
        return []
    k = 1
    while k * 2 < len(data):
        k *= 2
    if m < k:
        return ref_path(m, data[:k]) + [ref_mth(data[k:])]
    return ref_path(m - k, data[k:]) + [ref_mth(data[:k])]


def ref_subproof(m: int, data: list[bytes], whole: bool) -> list[bytes]:
    n = len(data)
    if m == n:
        return [] if whole else [ref_mth(data)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return ref_subproof(m, data[:k], whole) + [ref_mth(data[k:])]
    return ref_subproof(m - k, data[k:], False) + [ref_mth(data[:k])]


def ref_proof(m: int, data: list[bytes]) -> list[bytes]:
    return [] if m in (0, len(data)) else ref_subproof(m, data, True)


def memory_reader(data: list[bytes]):
    """A node reader over a list of leaves: (level, index) -> the perfect subtree's hash."""

    def read(level: int, index: int) -> bytes:
        width = 1 << level
        chunk = data[index * width : (index + 1) * width]
        assert len(chunk) == width, "only perfect, aligned subtrees are read"
        return ref_mth(chunk)

    return read


def leaves(n: int, salt: int = 0) -> list[bytes]:
    return [hashlib.sha256(f"{salt}:{i}".encode()).digest() for i in range(n)]


sizes = st.integers(min_value=1, max_value=300)


@settings(max_examples=60, deadline=None)
@given(sizes, st.data())
def test_inclusion_proofs_match_the_rfc_definition_and_verify(n, data):
    tree = leaves(n)
    read = memory_reader(tree)
    index = data.draw(st.integers(0, n - 1))
    root = ref_mth(tree)
    assert subtree_root(read, 0, n) == root
    path = inclusion_path(read, index, n)
    assert path == ref_path(index, tree)
    assert verify_inclusion(leaf_hash(tree[index]), index, n, path, root)


@settings(max_examples=60, deadline=None)
@given(sizes, st.data())
def test_consistency_proofs_match_the_rfc_definition_and_verify(n, data):
    tree = leaves(n)
    read = memory_reader(tree)
    m = data.draw(st.integers(0, n))
    path = consistency_path(read, m, n)
    assert path == ref_proof(m, tree)
    assert verify_consistency(m, n, path, ref_mth(tree[:m]), ref_mth(tree))


@settings(max_examples=60, deadline=None)
@given(sizes, st.data())
def test_inclusion_proof_for_a_tampered_event_is_refused(n, data):
    tree = leaves(n)
    read = memory_reader(tree)
    index = data.draw(st.integers(0, n - 1))
    path = inclusion_path(read, index, n)
    forged = hashlib.sha256(b"not the event").digest()
    assert not verify_inclusion(leaf_hash(forged), index, n, path, ref_mth(tree))
    # The right event claimed at another index fails too. (The size is not bound by the path, only by the root:
    # check_proof takes it from the signed checkpoint.)
    if n > 1:
        other = (index + 1) % n
        assert not verify_inclusion(leaf_hash(tree[index]), other, n, path, ref_mth(tree))


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 300), st.data())
def test_rewritten_history_fails_consistency_with_the_old_root(n, data):
    """A log whose leaf ``changed`` was replaced (and everything re-hashed) is not consistent with the old root."""
    m = data.draw(st.integers(1, n - 1))
    changed = data.draw(st.integers(0, m - 1))
    honest = leaves(n)
    rewritten = list(honest)
    rewritten[changed] = hashlib.sha256(b"rewritten").digest()
    path = consistency_path(memory_reader(rewritten), m, n)
    assert not verify_consistency(m, n, path, ref_mth(honest[:m]), ref_mth(rewritten))


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 300), st.data())
def test_tampered_proof_node_is_refused(n, data):
    tree = leaves(n)
    read = memory_reader(tree)
    index = data.draw(st.integers(0, n - 1))
    path = inclusion_path(read, index, n)
    at = data.draw(st.integers(0, len(path) - 1))
    path[at] = node_hash(path[at], path[at])
    assert not verify_inclusion(leaf_hash(tree[index]), index, n, path, ref_mth(tree))


def test_consistency_proof_with_a_missing_or_extra_node_is_refused():
    tree = leaves(37)
    read = memory_reader(tree)
    path = consistency_path(read, 13, 37)
    old, new = ref_mth(tree[:13]), ref_mth(tree)
    assert verify_consistency(13, 37, path, old, new)
    assert not verify_consistency(13, 37, path[:-1], old, new)
    assert not verify_consistency(13, 37, [*path, path[0]], old, new)
    assert not verify_consistency(13, 37, [], old, new)
    assert not verify_consistency(37, 13, path, new, old)


# The writer's tree, in a real home.


def _feed_hashes(store: Store) -> list[bytes]:
    return [entry.hash for entry in store.log.feed()]


def _check_against_reference(store: Store) -> None:
    hashes = _feed_hashes(store)
    with store.env.read() as txn:
        tree = TreeView(txn, store.env.dbs)
        assert tree.size == len(hashes)
        for size in range(len(hashes) + 1):
            assert tree.root(size) == ref_mth(hashes[:size])
        n = len(hashes)
        for index in range(n):
            assert tree.inclusion(index, n) == ref_path(index, hashes)
        for m in range(n + 1):
            assert tree.consistency(m, n) == ref_proof(m, hashes)


def test_every_committed_event_is_a_leaf_in_feed_order(fast_store, append_chain):
    actors = [uuid.uuid4() for _ in range(3)]
    for count in (1, 2, 5, 1, 17, 40):  # batches of different sizes, several actors in each
        pending = []
        for actor in actors:
            head = fast_store.log.head(actor)
            for _ in range(count):
                p = fast_store.log.append_async(actor, "t", {"n": head.seq + 1}, expected=head, timestamp_ms=1)
                head = type(head)(p.event.seq, p.event.hash)
                pending.append(p)
        for p in pending:
            p.wait(30)
    _check_against_reference(fast_store)
    fast_store.audit.checkpoint()  # writes the records that find an event's leaf
    with fast_store.env.read() as txn:
        tree = TreeView(txn, fast_store.env.dbs)
        for entry in fast_store.log.feed():
            assert tree.position(entry.actor, entry.seq, entry.hash) == entry.position


def test_event_not_in_the_log_has_no_position(fast_store, append_chain):
    from store.errors import NotFoundError

    actor = uuid.uuid4()
    events = append_chain(fast_store, actor, 3)
    with fast_store.env.read() as txn:  # not in a checkpoint yet: not looked up
        with pytest.raises(NotFoundError):
            TreeView(txn, fast_store.env.dbs).position(actor, 1, events[1].hash)
    fast_store.audit.checkpoint()
    with fast_store.env.read() as txn:
        assert TreeView(txn, fast_store.env.dbs).position(actor, 1, events[1].hash) == 1
        with pytest.raises(NotFoundError):
            TreeView(txn, fast_store.env.dbs).position(actor, 1, b"\x07" * 32)
        with pytest.raises(NotFoundError):
            TreeView(txn, fast_store.env.dbs).position(uuid.uuid4(), 0, b"\x07" * 32)


def _drop_the_tree(path) -> None:
    """Make the home look like one written before the Merkle log: no ``merkle`` database, no size."""
    env = lmdb.open(str(path), max_dbs=16)
    with env.begin(write=True) as txn:
        txn.drop(env.open_db(b"merkle", txn=txn), delete=True)
        txn.delete(SIZE_KEY, db=env.open_db(b"meta", txn=txn))
    env.close()


def test_home_written_before_the_log_gets_its_tree_from_the_feed(store_path, append_chain):
    actors = [uuid.uuid4() for _ in range(4)]
    with Store(store_path, durability="buffered") as store:
        for i, actor in enumerate(actors):
            append_chain(store, actor, 5 + 3 * i)
    _drop_the_tree(store_path)
    with Store(store_path, readonly=True) as old:
        assert "merkle" not in old.env.dbs
        assert old.audit.checkpoints() == []
        with old.env.read() as txn:
            assert TreeView(txn, old.env.dbs).size == 0
    with Store(store_path, durability="buffered") as store:
        append_chain(store, actors[0], 2)  # the first commit catches the tree up, then adds its own appends
        _check_against_reference(store)
        store.audit.checkpoint()
        with store.env.read() as txn:
            tree = TreeView(txn, store.env.dbs)
            for entry in store.log.feed():
                assert tree.position(entry.actor, entry.seq, entry.hash) == entry.position


def test_long_catch_up_finds_every_event_of_an_old_home(store_path, append_chain):
    """A catch-up and a first checkpoint longer than one lookup chunk: every event's leaf is found, the root is the
    reference."""
    actors = [uuid.uuid4() for _ in range(3)]
    with Store(store_path, durability="buffered") as store:
        for actor in actors:
            append_chain(store, actor, 1500)
    _drop_the_tree(store_path)
    with Store(store_path, durability="buffered") as store:
        append_chain(store, actors[1], 1)
        store.audit.checkpoint()
        feed = store.log.feed()
        with store.env.read() as txn:
            tree = TreeView(txn, store.env.dbs)
            assert tree.size == len(feed) == 4501
            assert tree.root() == ref_mth([entry.hash for entry in feed])
            for entry in feed:
                assert tree.position(entry.actor, entry.seq, entry.hash) == entry.position


def test_tree_after_a_commit_that_failed_past_the_merkle_step_is_the_feeds(fast_store, append_chain):
    """The writer keeps the tree's frontier between commits; a batch that fails after extending the tree (its
    transaction aborted) must not leave the next commit building on the frontier of leaves never stored."""
    from store._commit import Pending
    from store.errors import StoreWriteError

    actor = uuid.uuid4()
    append_chain(fast_store, actor, 3)

    class FailsLate(Pending[None]):
        def apply(self, txn, ctx) -> None:
            def boom(txn) -> None:
                raise RuntimeError("a late step of this commit failed")

            ctx.late.append(boom)

    head = fast_store.log.head(actor)
    doomed = fast_store.log.prepare(actor, "t", {"n": "lost"}, expected=head, timestamp_ms=1)
    fast_store.submit([doomed, FailsLate(None)])
    with pytest.raises(StoreWriteError):
        doomed.wait(30)
    assert fast_store.log.head(actor) == head
    append_chain(fast_store, actor, 20)
    _check_against_reference(fast_store)


def test_tree_stays_the_feeds_when_another_process_appends_between_our_commits(store_path, append_chain):
    """The writer takes the tree's size from the frontier it kept instead of reading it; a commit by another
    process in between (its tree grew too) must make it read the stored tree again, not build on a stale edge."""
    import subprocess
    import sys

    actor = uuid.uuid4()
    with Store(store_path, durability="buffered") as store:
        append_chain(store, actor, 5)  # the writer now keeps a frontier of 5 leaves
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys, uuid, store\n"
                "with store.Store(sys.argv[1], durability='buffered') as s:\n"
                "    other = uuid.UUID(int=7)\n"
                "    for i in range(3):\n"
                "        s.log.append(other, 't', i, expected=s.log.head(other))\n",
                str(store_path),
            ],
            check=True,
            timeout=60,
        )
        append_chain(store, actor, 4)
        assert len(_feed_hashes(store)) == 12
        _check_against_reference(store)
