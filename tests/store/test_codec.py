"""Property tests of the event codec: round trip, canonical form, and the fast link reader."""

from __future__ import annotations

import uuid

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from store import CorruptRecordError
from store.codec import (
    BlobRef,
    decode_body,
    decode_stored,
    encode_event,
    event_hash,
    read_link,
)

NO_SPILL = 1 << 62

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary()
)
cbor_data = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=25,
)

def _canonical_order(d: dict) -> dict:
    def key(item):
        encoded = item[0].encode("utf-8", "surrogatepass")
        return len(encoded), encoded

    return dict(sorted(d.items(), key=key))


# Data whose maps are already in canonical key order (the encoder's fast path takes those).
sorted_data = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text() | st.binary(),
    lambda children: st.lists(children, max_size=40)
    | st.dictionaries(st.text(max_size=8), children, max_size=5).map(_canonical_order),
    max_leaves=40,
)
digests = st.binary(min_size=32, max_size=32)
actors = st.uuids()
seqs = st.integers(min_value=0, max_value=2**64 - 1)
timestamps = st.integers(min_value=-(2**63), max_value=2**64 - 1)
types = st.text(min_size=1, max_size=20)


def encode(data, *, actor=uuid.UUID(int=1), seq=0, parent=None, ts=0, type="t", spill_threshold=NO_SPILL):
    return encode_event(
        actor=actor, seq=seq, parent=parent, timestamp_ms=ts, type=type, data=data, spill_threshold=spill_threshold
    )


@given(data=cbor_data, actor=actors, seq=seqs, parent=st.none() | digests, ts=timestamps, type_=types)
def test_decode_inverts_encode(same, data, actor, seq, parent, ts, type_) -> None:
    encoded = encode(data, actor=actor, seq=seq, parent=parent, ts=ts, type=type_)

    stored_hash, fields = decode_stored(encoded.hash + encoded.body, where="test")

    assert stored_hash == encoded.hash == event_hash(encoded.body)
    assert fields[:6] == [1, actor.bytes, seq, parent, ts, type_]
    assert same(fields[6], data)
    assert encoded.spilled == ()


@given(
    data=cbor_data | sorted_data,
    actor=actors,
    seq=seqs | st.sampled_from([23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32]) | st.booleans(),
    parent=st.none() | digests | st.binary(max_size=40),
    ts=timestamps | st.booleans(),
    type_=types | st.text(min_size=24, max_size=300) | st.sampled_from(["\ud800", "x" * 70_000]),
)
def test_the_hand_written_header_is_byte_for_byte_what_cbor2_writes(data, actor, seq, parent, ts, type_) -> None:
    # encode_event writes the six fixed fields itself (cbor2 spends ~1.5 us on them), and encodes already-sorted
    # data without cbor2's canonical mode; the result must be the very canonical CBOR cbor2 writes for the whole
    # array, or encoding must fail the same way.
    try:
        expected = cbor2.dumps([1, actor.bytes, seq, parent, ts, type_, data], canonical=True)
    except (cbor2.CBOREncodeError, UnicodeEncodeError, ValueError):
        with pytest.raises(TypeError):
            encode(data, actor=actor, seq=seq, parent=parent, ts=ts, type=type_)
        return
    assert encode(data, actor=actor, seq=seq, parent=parent, ts=ts, type=type_).body == expected


@given(data=cbor_data)
def test_encoding_is_a_function_of_the_value(data) -> None:
    first = encode(data)
    decoded = decode_body(first.body, where="test")[6]

    assert encode(decoded) == first


def reordered(value, draw):
    """The same value with every dict's items inserted in a drawn order."""
    if isinstance(value, dict):
        items = draw(st.permutations(list(value.items())))
        return {k: reordered(v, draw) for k, v in items}
    if isinstance(value, list):
        return [reordered(v, draw) for v in value]
    return value


@given(data=cbor_data, draw=st.data())
def test_dict_insertion_order_does_not_change_the_hash(data, draw) -> None:
    shuffled = reordered(data, lambda s: draw.draw(s))

    assert shuffled == data
    assert encode(shuffled).body == encode(data).body
    assert encode(shuffled).hash == encode(data).hash


def test_dicts_with_the_same_items_in_different_order_hash_the_same() -> None:
    one = {"b": 1, "a": [{"y": 2, "x": 3}], "ccc": None, "dd": b""}
    two = {"dd": b"", "ccc": None, "a": [{"x": 3, "y": 2}], "b": 1}

    assert list(one) != list(two)
    assert encode(one).hash == encode(two).hash


@given(data=cbor_data, other=cbor_data)
def test_different_data_gives_a_different_hash(same, data, other) -> None:
    if not same(data, other):
        assert encode(data).hash != encode(other).hash


@given(actor=actors, seq=seqs, parent=st.none() | digests, ts=timestamps, type_=types, data=cbor_data)
def test_read_link_agrees_with_the_full_decode(actor, seq, parent, ts, type_, data) -> None:
    body = encode(data, actor=actor, seq=seq, parent=parent, ts=ts, type=type_).body

    fields = decode_body(body, where="test")

    assert read_link(body) == (fields[1], fields[2], fields[3]) == (actor.bytes, seq, parent)
    assert read_link(memoryview(body)) == (actor.bytes, seq, parent)


@pytest.mark.parametrize("seq", [0, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**64 - 1])
@pytest.mark.parametrize("parent", [None, bytes(range(32))], ids=["genesis", "parent"])
def test_read_link_reads_every_width_of_seq(seq, parent) -> None:
    body = encode(None, actor=uuid.UUID(int=7), seq=seq, parent=parent).body

    assert read_link(body) == (uuid.UUID(int=7).bytes, seq, parent)


@given(body=st.binary(max_size=80))
def test_read_link_never_disagrees_with_the_decoder_on_arbitrary_bytes(body) -> None:
    link = read_link(body)
    try:
        fields = decode_body(body, where="test")
    except CorruptRecordError:
        return
    assert link is None or link == (fields[1], fields[2], fields[3])


@given(big=st.binary(min_size=65, max_size=300), small=st.binary(max_size=64), data=cbor_data)
def test_spilled_payloads_come_back_as_blob_refs_of_their_digest(big, small, data) -> None:
    encoded = encode({"big": big, "small": small, "other": data}, spill_threshold=64)

    fields = decode_body(encoded.body, where="test")

    (digest, payload), *_ = encoded.spilled
    assert payload == big
    assert fields[6]["big"] == BlobRef(digest=digest)
    assert fields[6]["small"] == small
    assert big not in encoded.body


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\xff", "undecodable CBOR"),
        (b"\x83\x01\x02\x03", "an event must be a CBOR array of 7 fields"),
        (encode(None).body.replace(b"\x87\x01", b"\x87\x02", 1), "unknown event format version 2"),
    ],
    ids=["not-cbor", "three-fields", "version-2"],
)
def test_decode_rejects_a_body_that_is_not_an_event(body, reason) -> None:
    with pytest.raises(CorruptRecordError, match=f"^corrupt record at here: {reason}"):
        decode_body(body, where="here")


def test_decode_stored_rejects_a_record_too_short_for_an_event() -> None:
    message = "^corrupt record at there: record is 32 bytes, too short for an event$"
    with pytest.raises(CorruptRecordError, match=message):
        decode_stored(bytes(32), where="there")


def test_sorted_plain_data_takes_the_fast_path_and_unsorted_or_float_data_does_not() -> None:
    from store.codec import _plain

    sorted_maps = {"b": [1, b"x", None, True], "zz": {"": -5, "ok": "y"}, "aaa": 2**70}
    assert _plain(sorted_maps)
    assert not _plain({"zz": 1, "b": 2})  # "b" is shorter: canonical order puts it first
    assert not _plain({"a": 1.5})
    assert not _plain({"é": 1})  # non-ASCII keys go the general way
    assert not _plain(list(range(33)))  # long containers too
    deep: list = [1]
    for _ in range(40):
        deep = [deep]
    assert not _plain(deep)  # past the depth limit: the canonical path (which also handles cycles)
    for data in (sorted_maps, {"zz": 1, "b": 2}, {"a": 1.5}, deep):
        body = encode(data, actor=uuid.UUID(int=7), seq=3, parent=None, ts=9, type="t").body
        assert body == cbor2.dumps([1, uuid.UUID(int=7).bytes, 3, None, 9, "t", data], canonical=True)
