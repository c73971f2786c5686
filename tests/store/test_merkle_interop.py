"""Our Merkle log against an independent RFC 9162 implementation from PyPI (pymerkle, used only here).

pymerkle builds its own tree from the same event hashes: its roots must equal the roots our home signs, its
verifier must accept the inclusion paths our home hands out, and its consistency proofs must hold between the
roots our checkpoints sign.
"""

from __future__ import annotations

import base64
import uuid

import pytest
from pymerkle import InmemoryTree
from pymerkle.core import _inclusion_path_layout
from pymerkle.proof import InclusionProof, InvalidProof

from store.merkle import TreeView, leaf_hash


@pytest.fixture
def home(fast_store, append_chain):
    """A home with 3 actors' interleaved chains (77 events) and two checkpoints; (store, pymerkle tree)."""
    actors = [uuid.uuid4() for _ in range(3)]
    for count in (5, 7, 13):
        for actor in actors:
            append_chain(fast_store, actor, count)
        fast_store.audit.checkpoint()
    append_chain(fast_store, actors[0], 2)
    fast_store.audit.checkpoint()
    other = InmemoryTree(algorithm="sha256")
    for entry in fast_store.log.feed():
        other.append_entry(entry.hash)
    return fast_store, other


def test_roots_equal_an_independent_rfc9162_tree(home):
    store, other = home
    with store.env.read() as txn:
        tree = TreeView(txn, store.env.dbs)
        assert tree.size == other.get_size() == 77
        for size in range(1, tree.size + 1):
            assert tree.root(size) == other.get_root(size)
    for cp in store.audit.checkpoints():
        assert cp.root == other.get_root(cp.size)


def _as_pymerkle(index: int, size: int, leaf: bytes, path: list[bytes]) -> InclusionProof:
    rule, _ = _inclusion_path_layout(index + 1, size)  # pymerkle counts leaves from 1
    return InclusionProof("sha256", True, size, index + 1, rule, [leaf, *path])


def test_inclusion_proofs_verify_with_an_independent_verifier(home):
    store, _ = home
    cp = store.audit.get()
    for entry in store.log.feed():
        proof = store.audit.prove(entry.hash)
        leaf = leaf_hash(entry.hash)
        path = [base64.b64decode(p) for p in proof["path"]]
        _as_pymerkle(proof["leaf_index"], proof["tree_size"], leaf, path).verify(leaf, cp.root)
        with pytest.raises(InvalidProof):  # and it refuses the same path for another event
            _as_pymerkle(proof["leaf_index"], proof["tree_size"], leaf_hash(b"\x00" * 32), path).verify(
                leaf_hash(b"\x00" * 32), cp.root)


def test_independent_consistency_proofs_hold_between_our_signed_roots(home):
    store, other = home
    kept = store.audit.checkpoints()
    for old in kept:
        for new in kept:
            if old.size < new.size:
                other.prove_consistency(old.size, new.size).verify(old.root, new.root)
