"""The content-addressed blob store: put/get/has/size/iteration, checked reads, prefix lookup and labels."""

from __future__ import annotations

import os
import re

import pytest

from store import (
    AmbiguousPrefixError,
    ChecksumMismatch,
    InvalidInputError,
    NotFoundError,
    Store,
    blob_digest,
)


def colliding_contents(prefix_digits: int = 4) -> tuple[bytes, bytes]:
    """Two distinct contents whose digests share their first ``prefix_digits`` hex digits (found by search)."""
    seen: dict[str, bytes] = {}
    for i in range(1_000_000):
        content = b"blob %d" % i
        prefix = blob_digest(content).hex()[:prefix_digits]
        if prefix in seen:
            return seen[prefix], content
        seen[prefix] = content
    raise AssertionError("no collision found")


# Put, get, has, size, iteration.


def test_put_returns_the_blake3_digest_and_get_returns_the_bytes(store: Store) -> None:
    digest = store.blobs.put(b"hello theater")

    assert digest == blob_digest(b"hello theater")
    assert len(digest) == 32
    assert store.blobs.get(digest) == b"hello theater"
    assert store.blobs.has(digest)
    assert store.blobs.size(digest) == len(b"hello theater")


def test_has_is_false_for_an_unknown_blob(store: Store) -> None:
    assert not store.blobs.has(blob_digest(b"never stored"))


def test_same_bytes_are_stored_once(store: Store, raw) -> None:
    first = store.blobs.put(b"twice")
    second = store.blobs.put(bytearray(b"twice"))
    third = store.blobs.put(memoryview(b"twice"))

    assert first == second == third
    assert list(store.blobs) == [first]
    assert raw.keys(store, "blobs") == [first]


def test_empty_blob_is_stored_and_read_back(store: Store) -> None:
    digest = store.blobs.put(b"")

    assert digest == blob_digest(b"")
    assert store.blobs.has(digest)
    assert store.blobs.get(digest) == b""
    assert store.blobs.size(digest) == 0


@pytest.mark.parametrize("size", [1024, 1024 * 1024], ids=["1KB", "1MB"])
def test_blob_of_size_round_trips(store: Store, size: int) -> None:
    data = os.urandom(size)

    digest = store.blobs.put(data)

    assert store.blobs.get(digest) == data
    assert store.blobs.size(digest) == size


@pytest.mark.slow
def test_100mb_blob_round_trips(store: Store) -> None:
    data = os.urandom(100 * 1024 * 1024)

    digest = store.blobs.put(data)

    assert digest == blob_digest(data)
    assert store.blobs.size(digest) == len(data)
    assert store.blobs.get(digest) == data


def test_put_async_returns_the_digest_once_committed(store: Store) -> None:
    pending = [store.blobs.put_async(b"async %d" % i) for i in range(50)]

    digests = [p.wait(30) for p in pending]

    assert all(p.done() for p in pending)
    assert digests == [blob_digest(b"async %d" % i) for i in range(50)]
    assert all(store.blobs.get(d) == b"async %d" % i for i, d in enumerate(digests))


def test_iteration_yields_every_digest_in_key_order(store: Store) -> None:
    digests = {store.blobs.put(b"item %d" % i) for i in range(20)}

    listed = list(store.blobs)

    assert listed == sorted(digests)


def test_blobs_survive_reopening(store_path) -> None:
    with Store(store_path) as first:
        digest = first.blobs.put(b"persistent")
    with Store(store_path) as second:
        assert second.blobs.get(digest) == b"persistent"


# Checked reads.


def test_get_detects_bytes_changed_inside_lmdb_and_names_both_hashes(store: Store, raw) -> None:
    digest = store.blobs.put(b"original bytes")
    raw.put(store, "blobs", digest, b"tampered bytes")
    actual = blob_digest(b"tampered bytes")

    message = f"^blob checksum mismatch: stored under {digest.hex()} but the bytes hash to {actual.hex()}$"
    with pytest.raises(ChecksumMismatch, match=message) as info:
        store.blobs.get(digest)

    assert info.value.expected == digest
    assert info.value.actual == actual


def test_get_detects_a_truncated_blob(store: Store, raw) -> None:
    data = os.urandom(4096)
    digest = store.blobs.put(data)
    raw.put(store, "blobs", digest, data[:-1])

    message = f"stored under {digest.hex()} but the bytes hash to {blob_digest(data[:-1]).hex()}"
    with pytest.raises(ChecksumMismatch, match=message):
        store.blobs.get(digest)


def test_get_of_an_unknown_digest_raises_not_found(store: Store) -> None:
    digest = blob_digest(b"absent")

    with pytest.raises(NotFoundError, match=f"^no blob {digest.hex()}$"):
        store.blobs.get(digest)


def test_size_of_an_unknown_digest_raises_not_found(store: Store) -> None:
    digest = blob_digest(b"absent")

    with pytest.raises(NotFoundError, match=f"^no blob {digest.hex()}$"):
        store.blobs.size(digest)


BAD_DIGESTS = [
    pytest.param("ab" * 32, id="hex-string"),
    pytest.param(b"\x00" * 31, id="31-bytes"),
    pytest.param(b"\x00" * 33, id="33-bytes"),
    pytest.param(b"", id="empty"),
    pytest.param(bytearray(32), id="bytearray"),
    pytest.param(None, id="none"),
    pytest.param(42, id="int"),
]


@pytest.mark.parametrize("bad", BAD_DIGESTS)
@pytest.mark.parametrize("method", ["get", "has", "size"])
def test_reads_reject_a_digest_that_is_not_32_raw_bytes(store: Store, method: str, bad: object) -> None:
    with pytest.raises(InvalidInputError, match=re.escape(f"invalid blob hash {bad!r}: expected 32 raw bytes")):
        getattr(store.blobs, method)(bad)


# Prefix lookup.


def test_resolve_finds_the_one_blob_with_a_prefix(store: Store) -> None:
    digest = store.blobs.put(b"unique")
    store.blobs.put(b"other")
    text = digest.hex()

    assert store.blobs.resolve(text) == digest
    assert store.blobs.resolve(text[:12]) == digest
    assert store.blobs.resolve(text[:7]) == digest  # odd length
    assert store.blobs.resolve(text[:10].upper()) == digest


def test_resolve_rejects_a_prefix_shared_by_two_blobs(store: Store) -> None:
    one, two = colliding_contents()
    digests = sorted([store.blobs.put(one), store.blobs.put(two)])
    prefix = digests[0].hex()[:4]
    shown = ", ".join(d.hex()[:16] for d in digests)

    message = f"blob prefix '{prefix}' is ambiguous: it matches {shown}; give more hex digits"
    with pytest.raises(AmbiguousPrefixError, match=re.escape(message)) as info:
        store.blobs.resolve(prefix)

    assert info.value.candidates == [d.hex() for d in digests]
    assert isinstance(info.value, NotFoundError)
    # Enough digits to tell them apart resolve each one.
    assert store.blobs.resolve(digests[0].hex()) == digests[0]
    assert store.blobs.resolve(digests[1].hex()) == digests[1]


def test_resolve_of_an_unknown_prefix_raises_not_found(store: Store) -> None:
    digest = store.blobs.put(b"something")
    absent = "0000" if not digest.hex().startswith("0000") else "ffff"

    with pytest.raises(NotFoundError, match=f"^no blob {absent}$"):
        store.blobs.resolve(absent)


def test_resolve_in_an_empty_store_raises_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError, match="^no blob abcd$"):
        store.blobs.resolve("ABCD")


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("abc", "between 4 and 64 hex digits"),
        ("a" * 65, "between 4 and 64 hex digits"),
        ("", "hexadecimal digits"),
        ("abcg", "hexadecimal digits"),
        ("ab cd", "hexadecimal digits"),
        ("0x1234", "hexadecimal digits"),
        (b"abcd", "hexadecimal digits"),
    ],
)
def test_resolve_rejects_a_malformed_prefix(store: Store, prefix: object, expected: str) -> None:
    with pytest.raises(InvalidInputError, match=re.escape(f"invalid blob hash {prefix!r}: expected {expected}")):
        store.blobs.resolve(prefix)  # type: ignore[arg-type]


# Labels.


def test_label_points_at_a_blob_and_can_be_repointed(store: Store) -> None:
    first = store.blobs.put(b"v1")
    second = store.blobs.put(b"v2")

    store.blobs.set_label("counter/latest", first)
    assert store.blobs.get_label("counter/latest") == first

    store.blobs.set_label("counter/latest", second)
    assert store.blobs.get_label("counter/latest") == second


def test_labels_are_listed_by_prefix_in_name_order(store: Store) -> None:
    blob = store.blobs.put(b"x")
    for name in ["b/2", "a/1", "b/1", "ba", "c", "é/unicode"]:
        store.blobs.set_label(name, blob)

    assert [n for n, _ in store.blobs.labels()] == ["a/1", "b/1", "b/2", "ba", "c", "é/unicode"]
    assert store.blobs.labels("b/") == [("b/1", blob), ("b/2", blob)]
    assert [n for n, _ in store.blobs.labels("b")] == ["b/1", "b/2", "ba"]
    assert store.blobs.labels("é") == [("é/unicode", blob)]
    assert store.blobs.labels("zzz") == []


def test_labels_of_an_empty_store_is_empty(store: Store) -> None:
    assert store.blobs.labels() == []


def test_removed_label_is_gone(store: Store) -> None:
    blob = store.blobs.put(b"x")
    store.blobs.set_label("gone", blob)
    store.blobs.set_label("kept", blob)

    store.blobs.remove_label("gone")

    assert store.blobs.labels() == [("kept", blob)]
    with pytest.raises(NotFoundError, match="^no label gone$"):
        store.blobs.get_label("gone")
    assert store.blobs.get(blob) == b"x"  # the blob stays


def test_label_to_a_missing_blob_raises_not_found_and_writes_nothing(store: Store) -> None:
    digest = blob_digest(b"never stored")

    with pytest.raises(NotFoundError, match=f"^no blob {digest.hex()}$"):
        store.blobs.set_label("dangling", digest)

    assert store.blobs.labels() == []


def test_removing_a_missing_label_raises_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError, match="^no label nothing-here$"):
        store.blobs.remove_label("nothing-here")


def test_label_may_point_at_a_blob_put_in_the_same_batch(store: Store, writer_held) -> None:
    with writer_held(store):
        pending = store.blobs.put_async(b"fresh")
    digest = pending.wait(30)

    store.blobs.set_label("fresh", digest)

    assert store.blobs.get_label("fresh") == digest


def test_label_name_may_be_400_bytes(store: Store) -> None:
    blob = store.blobs.put(b"x")

    store.blobs.set_label("n" * 400, blob)

    assert store.blobs.get_label("n" * 400) == blob


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("", "a non-empty name without control characters"),
        ("line\nbreak", "a non-empty name without control characters"),
        ("tab\there", "a non-empty name without control characters"),
        ("nul\x00", "a non-empty name without control characters"),
        (b"bytes", "a non-empty name without control characters"),
        (None, "a non-empty name without control characters"),
        ("n" * 401, "at most 400 bytes"),
        ("é" * 201, "at most 400 bytes"),
    ],
    ids=["empty", "newline", "tab", "nul", "bytes", "none", "401-ascii", "402-utf8-bytes"],
)
@pytest.mark.parametrize("operation", ["set_label", "get_label", "remove_label"])
def test_label_operations_reject_bad_names(store: Store, operation: str, name: object, expected: str) -> None:
    blob = store.blobs.put(b"x")
    args = (name, blob) if operation == "set_label" else (name,)

    with pytest.raises(InvalidInputError, match=re.escape(f"invalid label {name!r}: expected {expected}")):
        getattr(store.blobs, operation)(*args)

    assert store.blobs.labels() == []


def test_set_label_rejects_a_hex_digest(store: Store) -> None:
    blob = store.blobs.put(b"x")

    with pytest.raises(InvalidInputError, match=re.escape(f"invalid blob hash {blob.hex()!r}: expected 32 raw bytes")):
        store.blobs.set_label("hex", blob.hex())  # type: ignore[arg-type]
