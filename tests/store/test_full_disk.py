"""A store on a really full filesystem (a small tmpfs): every way a full disk surfaces is ``StoreFullError``, nothing
of a refused write is kept, and the store takes writes again once space is freed."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from store import EMPTY, Head, Store, verify_store
from store.errors import StoreFullError
from tests._full_disk import FullDisk, full_disk_at

BIG = 300_000  # bytes: more than the free pages LMDB may reuse, so the commit must grow the file


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[FullDisk]:
    with full_disk_at(tmp_path / "mnt", 8 << 20) as disk:
        yield disk


@pytest.fixture
def store_on_disk(full_disk: FullDisk) -> Iterator[Store]:
    with Store(full_disk.path / "store") as store:
        yield store


# ``leave``: 0 gives a write no byte (ENOSPC); 16 KiB lets LMDB write part of the commit, a short write it reports
# as EIO ("Input/output error"), which was a 503 StoreWriteError instead of a full disk.
@pytest.mark.parametrize("leave", [0, 16 << 10], ids=["no-space", "short-write"])
def test_full_disk_is_store_full_error(store_on_disk: Store, full_disk: FullDisk, leave: int) -> None:
    store_on_disk.blobs.put(b"before")
    full_disk.fill(leave=leave)
    with pytest.raises(StoreFullError, match=r"cannot take the write \(the disk is full.*\); nothing was written"):
        store_on_disk.blobs.put(os.urandom(BIG))


def test_full_disk_refused_append_leaves_the_chain_and_takes_appends_after_space_is_freed(
    store_on_disk: Store, full_disk: FullDisk
) -> None:
    actor = uuid.uuid4()
    first = store_on_disk.log.append(actor, "test/small", {"n": 1}, expected=EMPTY)
    after_first = Head(first.seq, first.hash)
    full_disk.fill()
    with pytest.raises(StoreFullError):
        store_on_disk.log.append(actor, "test/big", {"payload": os.urandom(BIG)}, expected=after_first)
    assert store_on_disk.log.head(actor) == after_first
    full_disk.free()
    second = store_on_disk.log.append(actor, "test/big", {"payload": os.urandom(BIG)}, expected=after_first)
    assert store_on_disk.log.head(actor) == Head(second.seq, second.hash)
    assert verify_store(store_on_disk).ok
