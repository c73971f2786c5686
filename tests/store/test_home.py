"""Opening a home (and refusing what is not one), read-only stores, closing, and actor ids."""

from __future__ import annotations

import os
import random
import re
import uuid
from pathlib import Path

import lmdb
import pytest

from store import (
    DURABILITY_MODES,
    EMPTY,
    InvalidInputError,
    ReadOnlyError,
    StoreClosedError,
    StoreError,
    StoreOpenError,
    Store,
    TheaterError,
    blob_digest,
    new_actor_id,
    parse_actor_id,
    verify_store,
)

A = uuid.UUID("00000000-0000-4000-8000-0000000000aa")


NO_MAGIC = "not a Theater store (meta/magic is missing or wrong)"


def cannot_open(path: Path, reason: str) -> str:
    return "^" + re.escape(f"cannot open the store at {path}: {reason}")


# Opening.


def test_opening_creates_the_directory_and_its_parents(tmp_path: Path) -> None:
    path = tmp_path / "home" / "deep" / "store"

    with Store(path) as s:
        assert s.path == path
        assert (path / "data.mdb").is_file()
        assert not s.readonly


@pytest.mark.parametrize("durability", DURABILITY_MODES)
def test_both_durability_modes_open_and_write(tmp_path: Path, durability: str) -> None:
    with Store(tmp_path / "s", durability=durability) as s:
        s.log.append(A, "t", durability, expected=EMPTY)
    with Store(tmp_path / "s") as s:
        assert s.log.at(A, 0).data == durability


def test_unknown_durability_is_invalid_input(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=re.escape("invalid durability 'fast': expected sync or buffered")):
        Store(tmp_path / "s", durability="fast")

    assert not (tmp_path / "s").exists()


def test_truncated_data_file_is_refused(store_path: Path, append_chain) -> None:
    with Store(store_path, durability="buffered") as s:
        append_chain(s, A, 2000, data=lambda seq: {"seq": seq, "pad": "x" * 200})
    data = store_path / "data.mdb"
    size = data.stat().st_size
    os.truncate(data, size // 2)

    for readonly in (False, True):
        reason = f"data.mdb is truncated: {size // 2} bytes, its last transaction needs "
        with pytest.raises(StoreOpenError, match=cannot_open(store_path, reason)):
            Store(store_path, readonly=readonly)


def test_data_file_shorter_than_two_pages_is_refused(store_path: Path) -> None:
    store_path.mkdir()
    (store_path / "data.mdb").write_bytes(b"\x00" * 100)

    reason = "data.mdb is 100 bytes, too short for an LMDB file"
    with pytest.raises(StoreOpenError, match=cannot_open(store_path, reason)):
        Store(store_path)


@pytest.mark.parametrize("content", ["random", "zeros", "text"])
def test_garbage_data_file_is_not_an_lmdb_file(store_path: Path, content: str) -> None:
    store_path.mkdir()
    garbage = {
        "random": random.Random(7).randbytes(64 * 1024),
        "zeros": bytes(64 * 1024),
        "text": b"this is not a database\n" * 3000,
    }[content]
    (store_path / "data.mdb").write_bytes(garbage)

    for readonly in (False, True):
        reason = "data.mdb is not an LMDB file (corrupt or foreign)"
        with pytest.raises(StoreOpenError, match=cannot_open(store_path, reason)):
            Store(store_path, readonly=readonly)

    assert (store_path / "data.mdb").read_bytes() == garbage


def test_path_that_is_a_file_is_not_a_directory(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("not a store")

    for readonly in (False, True):
        with pytest.raises(StoreOpenError, match=cannot_open(path, "not a directory") + "$"):
            Store(path, readonly=readonly)


def test_path_under_a_file_cannot_be_created(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    path = tmp_path / "file" / "store"

    with pytest.raises(StoreOpenError, match=cannot_open(path, "cannot create the directory: Not a directory")):
        Store(path)


def test_readonly_open_of_a_missing_directory_is_refused_and_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "missing"

    reason = "no such directory (create it by opening the home for writing)"
    with pytest.raises(StoreOpenError, match=cannot_open(path, reason)):
        Store(path, readonly=True)

    assert not path.exists()


def test_readonly_open_of_an_empty_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreOpenError, match=cannot_open(tmp_path, f"{tmp_path}: No such file or directory")):
        Store(tmp_path, readonly=True)


def foreign_env(path: Path, *, named: bool) -> None:
    """A valid LMDB environment that some other program made: one named database, or keys in the main one."""
    env = lmdb.open(str(path), max_dbs=4)
    db = env.open_db(b"other") if named else None
    with env.begin(write=True) as txn:
        txn.put(b"key", b"value", db=db)
    env.close()


@pytest.mark.parametrize("named", [True, False], ids=["named-db", "main-db"])
@pytest.mark.parametrize("readonly", [True, False], ids=["readonly", "writable"])
def test_lmdb_environment_that_is_not_a_theater_store_is_refused_and_left_alone(
    tmp_path: Path, readonly: bool, named: bool
) -> None:
    path = tmp_path / "foreign"
    foreign_env(path, named=named)
    before = (path / "data.mdb").read_bytes()

    reason = "not a Theater store (an LMDB environment holding other data)"
    with pytest.raises(StoreOpenError, match=cannot_open(path, reason) + "$"):
        Store(path, readonly=readonly)

    assert (path / "data.mdb").read_bytes() == before


def rewrite_meta(path: Path, key: bytes, value: bytes | None) -> None:
    env = lmdb.open(str(path), max_dbs=16)
    meta = env.open_db(b"meta", create=False)
    with env.begin(write=True) as txn:
        if value is None:
            txn.delete(key, db=meta)
        else:
            txn.put(key, value, db=meta)
    env.close()


@pytest.mark.parametrize("readonly", [True, False], ids=["readonly", "writable"])
def test_store_of_another_format_is_refused(store_path: Path, readonly: bool) -> None:
    Store(store_path).close()
    rewrite_meta(store_path, b"format", b"2")

    reason = "store format b'2' is not supported (this build reads 1)"
    with pytest.raises(StoreOpenError, match=cannot_open(store_path, reason)):
        Store(store_path, readonly=readonly)


@pytest.mark.parametrize("magic", [b"other-program", None], ids=["wrong", "missing"])
def test_store_with_wrong_or_missing_magic_is_refused_readonly(store_path: Path, magic: bytes | None) -> None:
    Store(store_path).close()
    rewrite_meta(store_path, b"magic", magic)

    with pytest.raises(StoreOpenError, match=cannot_open(store_path, NO_MAGIC)):
        Store(store_path, readonly=True)


def test_store_with_wrong_magic_is_refused_writable(store_path: Path) -> None:
    Store(store_path).close()
    rewrite_meta(store_path, b"magic", b"other-program")

    with pytest.raises(StoreOpenError, match=cannot_open(store_path, NO_MAGIC)):
        Store(store_path)


def test_open_errors_are_store_errors() -> None:
    assert issubclass(StoreOpenError, StoreError)
    assert issubclass(StoreError, TheaterError)
    assert issubclass(InvalidInputError, ValueError)


# Read-only stores.


@pytest.fixture
def written(store_path: Path, append_chain) -> Path:
    with Store(store_path) as s:
        append_chain(s, A, 3)
        digest = s.blobs.put(b"blob")
        s.blobs.set_label("name", digest)
    return store_path


def test_readonly_store_reads_what_was_written(written: Path) -> None:
    with Store(written, readonly=True) as s:
        assert s.readonly
        assert s.log.head(A).seq == 2
        assert [e.data for e in s.log.events(A)] == [{"n": 0}, {"n": 1}, {"n": 2}]
        assert s.blobs.get(s.blobs.get_label("name")) == b"blob"
        assert len(s.log.feed()) == 3
        assert verify_store(s).ok


@pytest.mark.parametrize(
    "write",
    [
        lambda s: s.log.append(A, "t", 1, expected=s.log.head(A)),
        lambda s: s.log.append_async(A, "t", 1, expected=s.log.head(A)),
        lambda s: s.blobs.put(b"new"),
        lambda s: s.blobs.put_async(b"new"),
        lambda s: s.blobs.set_label("other", blob_digest(b"blob")),
        lambda s: s.blobs.remove_label("name"),
    ],
    ids=["append", "append_async", "put", "put_async", "set_label", "remove_label"],
)
def test_write_to_a_readonly_store_raises_readonly_error(written: Path, write) -> None:
    with Store(written, readonly=True) as s:
        message = f"the store at {written} is open read-only; open it for writing to change it"
        with pytest.raises(ReadOnlyError, match=f"^{re.escape(message)}$"):
            write(s)

    with Store(written, readonly=True) as s:
        assert s.log.head(A).seq == 2
        assert [name for name, _ in s.blobs.labels()] == ["name"]
        assert not s.blobs.has(blob_digest(b"new"))


# Closing.


def test_close_commits_queued_appends(store_path: Path) -> None:
    s = Store(store_path)
    head = EMPTY
    pending = []
    for i in range(300):
        p = s.log.append_async(A, "t", i, expected=head)
        head = type(head)(p.event.seq, p.event.hash)
        pending.append(p)
    blob = s.blobs.put_async(b"queued blob")

    s.close()

    assert all(p.done() for p in pending) and blob.done()
    assert pending[-1].wait(0).seq == 299
    with Store(store_path) as reopened:
        assert reopened.log.head(A) == head
        assert [e.data for e in reopened.log.events(A)] == list(range(300))
        assert reopened.blobs.get(blob_digest(b"queued blob")) == b"queued blob"


def test_closing_twice_is_fine(store_path: Path) -> None:
    s = Store(store_path)
    s.close()
    s.close()
    with s:
        pass


def test_readonly_store_closes_twice(written: Path) -> None:
    s = Store(written, readonly=True)
    s.close()
    s.close()


@pytest.mark.parametrize(
    "use",
    [
        lambda s: s.log.head(A),
        lambda s: s.log.at(A, 0),
        lambda s: list(s.log.events(A)),
        lambda s: s.log.actors(),
        lambda s: s.log.feed(),
        lambda s: s.log.feed_end(),
        lambda s: s.log.resolve("abcd"),
        lambda s: s.log.append(A, "t", 1, expected=EMPTY),
        lambda s: s.log.append_async(A, "t", 1, expected=EMPTY),
        lambda s: s.blobs.put(b"x"),
        lambda s: s.blobs.get(blob_digest(b"blob")),
        lambda s: s.blobs.has(blob_digest(b"blob")),
        lambda s: list(s.blobs),
        lambda s: s.blobs.labels(),
        lambda s: s.blobs.set_label("n", blob_digest(b"blob")),
        lambda s: verify_store(s),
    ],
    ids=[
        "head", "at", "events", "actors", "feed", "feed_end", "resolve", "append", "append_async",
        "put", "get", "has", "iter", "labels", "set_label", "verify_store",
    ],
)
def test_using_a_closed_store_raises_store_closed_error(written: Path, use) -> None:
    s = Store(written)
    s.close()

    with pytest.raises(StoreClosedError, match="^the store is closed$"):
        use(s)


def test_context_manager_closes_the_store(written: Path) -> None:
    with Store(written) as s:
        pass

    with pytest.raises(StoreClosedError):
        s.log.head(A)


# Actor ids.


@pytest.mark.parametrize(
    "text",
    [
        "1b4e28ba-2fa1-11d2-883f-0016d3cca427",
        "1b4e28ba2fa111d2883f0016d3cca427",
        "1B4E28BA-2FA1-11D2-883F-0016D3CCA427",
    ],
)
def test_parse_actor_id_accepts_a_uuid_with_or_without_hyphens(text: str) -> None:
    assert parse_actor_id(text) == uuid.UUID("1b4e28ba-2fa1-11d2-883f-0016d3cca427")


def test_parse_actor_id_passes_a_uuid_through() -> None:
    actor = uuid.uuid4()

    assert parse_actor_id(actor) is actor


@pytest.mark.parametrize(
    "text", ["", "not-a-uuid", "1b4e28ba-2fa1-11d2-883f", "1b4e28ba-2fa1-11d2-883f-0016d3cca427ff", "g" * 32]
)
def test_parse_actor_id_rejects_text_that_is_not_a_uuid(text: str) -> None:
    message = f"invalid actor id {text!r}: expected a UUID such as 1b4e28ba-2fa1-11d2-883f-0016d3cca427"
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        parse_actor_id(text)


@pytest.mark.parametrize("value", [None, 42, b"\x00" * 16])
def test_parse_actor_id_rejects_a_value_that_is_not_a_string(value: object) -> None:
    with pytest.raises(InvalidInputError, match=re.escape(f"invalid actor id {value!r}: expected a UUID string")):
        parse_actor_id(value)  # type: ignore[arg-type]


def test_new_actor_ids_are_random_version_4_uuids() -> None:
    ids = {new_actor_id() for _ in range(100)}

    assert len(ids) == 100
    assert all(a.version == 4 for a in ids)
