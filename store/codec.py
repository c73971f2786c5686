"""Encoding and decoding of stored events, as a pair.

A stored event is ``hash (32 bytes) || body`` where ``body`` is canonical CBOR of the array::

    [version, actor (16 bytes), seq, parent (32 bytes or null), timestamp_ms, type, data]

and ``hash = blake3(EVENT_DOMAIN || body)``. The body carries the actor id, the parent hash and every field, so
any change to any stored byte changes either the body (and so its hash) or the stored hash itself. Fields are in
this order so that the parent hash sits at a fixed offset that verification can read without decoding the rest.

Byte strings inside ``data`` longer than the spill threshold are moved to the blob store: the body holds
``CBORTag(BLOB_TAG, digest)`` instead, so the event hash still covers the payload (through its content hash).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, NamedTuple

import blake3
import cbor2

from store.errors import CorruptRecordError

FORMAT_VERSION = 1
EVENT_DOMAIN = b"theater/event/v1\x00"
BLOB_TAG = 29_800  # private-use CBOR tag: "this value is the blob with this blake3 digest"
DIGEST_SIZE = 32
DEFAULT_SPILL_THRESHOLD = 16 * 1024

# Byte offsets inside a body: 0x87 (array of 7), 0x01 (version 1), 0x50 (bstr of 16), then the actor id.
_ACTOR_AT = 3
_SEQ_AT = _ACTOR_AT + 16
BLOB_TAG_BYTES = cbor2.dumps(cbor2.CBORTag(BLOB_TAG, b""))[:3]


@dataclass(frozen=True, slots=True, kw_only=True)
class BlobRef:
    """A payload that was spilled to the blob store; ``digest`` is its blake3 hash."""

    digest: bytes


class Event(NamedTuple):
    """One event of an actor's chain, as read back from the store (immutable).

    ``data`` is the structured payload with spilled payloads already brought back from the blob store.
    A named tuple rather than a frozen dataclass: every append builds one, and a frozen dataclass costs 1.75 us
    to construct (one ``object.__setattr__`` per field) against 0.5 us.
    """

    hash: bytes
    actor: uuid.UUID
    seq: int
    parent: bytes | None
    timestamp_ms: int
    type: str
    data: Any
    version: int = FORMAT_VERSION


class EncodedEvent(NamedTuple):
    """An event ready to store: its hash, its body, and the payloads that go to the blob store with it."""

    hash: bytes
    body: bytes
    spilled: tuple[tuple[bytes, bytes], ...]  # (digest, payload)


def event_hash(body: bytes) -> bytes:
    """Return the domain-separated blake3 hash of an event body."""
    return blake3.blake3(EVENT_DOMAIN + body).digest()


def encode_event(
    *,
    actor: uuid.UUID,
    seq: int,
    parent: bytes | None,
    timestamp_ms: int,
    type: str,
    data: Any,
    spill_threshold: int = DEFAULT_SPILL_THRESHOLD,
) -> EncodedEvent:
    """Encode an event canonically and hash it.

    Raises:
        TypeError: ``data`` holds a value CBOR cannot encode (it names the type).
    """
    return encode_fields(actor.bytes, seq, parent, timestamp_ms, type, data, spill_threshold)


def encode_fields(
    actor: bytes,
    seq: int,
    parent: bytes | None,
    timestamp_ms: int,
    type: str,
    data: Any,
    spill_threshold: int,
    plain: bool = False,
) -> EncodedEvent:
    """``encode_event`` with positional arguments and the actor id as bytes (the append path calls this).

    ``plain`` says the caller knows ``data`` passes ``_plain`` (or holds only values whose default CBOR encoding is
    their canonical one: no floats, every map in canonical key order), so the check is skipped; the bytes are the
    same either way.
    """
    header = _header(actor, seq, parent, timestamp_ms, type)
    if header is None:  # unusual field values: let cbor2 encode (or reject) the whole array
        body = _dumps([FORMAT_VERSION, actor, seq, parent, timestamp_ms, type, data])
    elif plain or _plain(data):
        try:
            body = header + cbor2.dumps(data)
        except (cbor2.CBOREncodeError, UnicodeEncodeError, ValueError) as exc:
            raise TypeError(f"event data cannot be encoded as CBOR: {exc}") from None
    else:
        body = header + _dumps(data)
    spilled: list[tuple[bytes, bytes]] = []
    if len(body) > spill_threshold:
        fields = [FORMAT_VERSION, actor, seq, parent, timestamp_ms, type, _spill(data, spill_threshold, spilled)]
        if spilled:
            body = _dumps(fields)
    return EncodedEvent(blake3.blake3(EVENT_DOMAIN + body).digest(), body, tuple(spilled))


def uint_head(n: int) -> bytes:
    """The canonical CBOR head of an unsigned integer (major type 0)."""
    if n < 24:
        return bytes((n,))
    if n < 0x100:
        return bytes((0x18, n))
    if n < 0x10000:
        return b"\x19" + n.to_bytes(2, "big")
    if n < 0x100000000:
        return b"\x1a" + n.to_bytes(4, "big")
    return b"\x1b" + n.to_bytes(8, "big")


_HEADER_START = bytes((0x87, FORMAT_VERSION, 0x50))

# Reading bodies in place (verification's fast path). The width of a CBOR unsigned integer (head included) by its
# head byte, 0 for anything else; ``INT_WIDTH`` the same for any integer, negative ones (major type 1) too.
UINT_WIDTH = tuple(1 if h < 24 else 1 + (1 << (h - 24)) if h < 28 else 0 for h in range(256))
INT_WIDTH = tuple(UINT_WIDTH[h] or (UINT_WIDTH[h - 0x20] if 0x20 <= h < 0x3C else 0) for h in range(256))
NOT_IN_PLACE = object()  # what ``bytes_in_place`` gives when the value is not where canonical order puts it


def actor_prefix(actor: bytes) -> bytes:
    """The first bytes of the body of every event of ``actor`` (array head, version, actor id)."""
    return _HEADER_START + actor


def link_prefix(start: bytes, seq: int, parent: bytes | None) -> bytes:
    """The first bytes of the body of the event at ``seq`` after ``parent``: ``start`` (``actor_prefix``), the
    seq and the parent, canonically encoded. A body that starts with them names that actor, seq and parent."""
    if seq < 24:
        seq_head = bytes((seq,))
    elif 65536 <= seq < 4294967296:
        seq_head = b"\x1a" + seq.to_bytes(4, "big")
    else:
        seq_head = uint_head(seq)
    return start + seq_head + (b"\xf6" if parent is None else b"\x58\x20" + parent)


def text_item(text: str) -> bytes:
    """The canonical CBOR encoding of a text string.

    Raises:
        ValueError: ``text`` cannot be encoded as UTF-8.
    """
    encoded = _type_head(text)
    if encoded is None:
        raise ValueError(f"{text!r} is not encodable as UTF-8")
    return encoded


def bytes_in_place(body: bytes, at: int, key: bytes, after: bytes | None = None) -> bytes | None | object:
    """The 32-byte string stored under ``key`` in the canonical CBOR map that starts at ``at``, read without
    decoding: None when the value is null, ``NOT_IN_PLACE`` when ``key`` is not the map's first key (or its
    second, right after ``after`` with an unsigned integer value) or the value is neither.

    ``key`` and ``after`` are encoded keys (``text_item``).
    """
    try:
        if not 0xA1 <= body[at] <= 0xB7:
            return NOT_IN_PLACE
        at += 1
        if after is not None and body.startswith(after, at):
            width = UINT_WIDTH[body[at + len(after)]]
            if not width:
                return NOT_IN_PLACE
            at += len(after) + width
        if not body.startswith(key, at):
            return NOT_IN_PLACE
        at += len(key)
        if body[at] == 0xF6:
            return None
        if body[at] == 0x58 and body[at + 1] == DIGEST_SIZE and len(body) >= at + 2 + DIGEST_SIZE:
            return body[at + 2 : at + 2 + DIGEST_SIZE]
    except IndexError:
        pass
    return NOT_IN_PLACE


_TYPE_HEADS: dict[str, bytes] = {}  # event type -> its CBOR text encoding; there are few types, so few entries
_TYPE_HEADS_MAX = 4096


def _type_head(type_: str) -> bytes | None:
    encoded = _TYPE_HEADS.get(type_)
    if encoded is None:
        try:
            name = type_.encode()
        except UnicodeEncodeError:
            return None
        size = len(name)
        head = bytes((0x60 | size,)) if size < 24 else bytes((0x60 | uint_head(size)[0] & 0x1F,)) + uint_head(size)[1:]
        encoded = head + name
        if len(_TYPE_HEADS) < _TYPE_HEADS_MAX and size <= 256:
            _TYPE_HEADS[type_] = encoded
    return encoded


def _header(actor: bytes, seq: int, parent: bytes | None, timestamp_ms: int, type_: str) -> bytes | None:
    """The canonical CBOR of the array head and its first six fields, written directly; None when a field is not
    of the usual type or range (the caller then encodes everything with cbor2).

    cbor2 spends ~1.5 us per event on these fixed-layout fields; tests check byte equality with cbor2's output.
    Exact type checks: a bool or an int subclass goes the general way.
    """
    if type(seq) is not int or type(timestamp_ms) is not int or type(type_) is not str:
        return None
    if 65536 <= seq < 4294967296:
        seq_head = b"\x1a" + seq.to_bytes(4, "big")
    elif 0 <= seq < 1 << 64:
        seq_head = uint_head(seq)
    else:
        return None
    if 4294967296 <= timestamp_ms < 1 << 64:  # every timestamp in milliseconds since 1970-02-19
        ts_head = b"\x1b" + timestamp_ms.to_bytes(8, "big")
    elif 0 <= timestamp_ms < 4294967296:
        ts_head = uint_head(timestamp_ms)
    else:
        return None
    if parent is None:
        link = b"\xf6"
    elif type(parent) is bytes and len(parent) == DIGEST_SIZE:
        link = b"\x58\x20" + parent
    else:
        return None
    name = _type_head(type_)
    if name is None:
        return None
    return b"".join((_HEADER_START, actor, seq_head, link, ts_head, name))


_PLAIN_TYPES = frozenset({str, bytes, int, bool, type(None)})
_PLAIN_MAX_ITEMS = 32
_PLAIN_MAX_DEPTH = 16


def _plain(value: Any, depth: int = 0) -> bool:
    """True when cbor2's default encoding of ``value`` is already its canonical encoding.

    That holds for strings, byte strings, integers, booleans and null, in lists and in maps whose keys are ASCII
    strings already in canonical order (shorter first, then bytewise). cbor2's canonical mode costs 5.0 us on a
    small two-map payload against 2.3 us without it, mostly in sorting maps that are often already sorted;
    this walk costs under 1 us and gives up on anything else (floats, tags, other keys, long containers), which
    then takes the canonical path. Tests compare both paths byte for byte.
    """
    kind = type(value)
    if kind in _PLAIN_TYPES:
        return True
    if depth > _PLAIN_MAX_DEPTH:  # deep (or cyclic: cbor2 then names the problem)
        return False
    depth += 1
    if kind is list or kind is tuple:
        if len(value) > _PLAIN_MAX_ITEMS:
            return False
        for item in value:
            if type(item) not in _PLAIN_TYPES and not _plain(item, depth):
                return False
        return True
    if kind is dict:
        if len(value) > _PLAIN_MAX_ITEMS:
            return False
        last = None
        for key, item in value.items():
            if type(key) is not str or not key.isascii():
                return False
            if last is not None and (len(key) < len(last) or (len(key) == len(last) and key <= last)):
                return False
            last = key
            if type(item) not in _PLAIN_TYPES and not _plain(item, depth):
                return False
        return True
    return False


def _dumps(value: Any, *, canonical: bool = True) -> bytes:
    try:
        return cbor2.dumps(value, canonical=canonical)
    except (cbor2.CBOREncodeError, UnicodeEncodeError, ValueError) as exc:
        raise TypeError(f"event data cannot be encoded as CBOR: {exc}") from None


def _spill(value: Any, threshold: int, out: list[tuple[bytes, bytes]]) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)) and len(value) > threshold:
        payload = bytes(value)
        digest = blake3.blake3(payload).digest()
        out.append((digest, payload))
        return cbor2.CBORTag(BLOB_TAG, digest)
    if isinstance(value, dict):
        return {k: _spill(v, threshold, out) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_spill(v, threshold, out) for v in value]
    return value


def _tag_hook(*args: Any) -> Any:
    # cbor2 5 calls tag_hook(decoder, tag); cbor2 6 calls tag_hook(tag, immutable).
    tag = next(a for a in args if isinstance(a, cbor2.CBORTag))
    if tag.tag == BLOB_TAG and isinstance(tag.value, bytes) and len(tag.value) == DIGEST_SIZE:
        return BlobRef(digest=tag.value)
    return tag


def decode_body(body: bytes, *, where: str) -> list[Any]:
    """Decode an event body into its seven fields; spilled payloads come back as ``BlobRef``.

    Raises:
        CorruptRecordError: the body is not a well-formed event of a known version.
    """
    try:
        fields = cbor2.loads(body, tag_hook=_tag_hook)
    except (cbor2.CBORDecodeError, ValueError, TypeError, EOFError) as exc:
        raise CorruptRecordError(where, f"undecodable CBOR: {exc}") from None
    if not isinstance(fields, list) or len(fields) != 7:
        raise CorruptRecordError(where, "an event must be a CBOR array of 7 fields")
    version, actor, seq, parent, ts, type_, _ = fields
    if version != FORMAT_VERSION:
        raise CorruptRecordError(where, f"unknown event format version {version!r}")
    if not (isinstance(actor, bytes) and len(actor) == 16):
        raise CorruptRecordError(where, "actor id is not 16 bytes")
    if not (isinstance(seq, int) and seq >= 0 and isinstance(ts, int) and isinstance(type_, str)):
        raise CorruptRecordError(where, "seq, timestamp or type has the wrong type")
    if parent is not None and not (isinstance(parent, bytes) and len(parent) == DIGEST_SIZE):
        raise CorruptRecordError(where, "parent is neither null nor a 32-byte hash")
    return fields


def decode_stored(value: bytes, *, where: str) -> tuple[bytes, list[Any]]:
    """Split a stored value into (stored hash, decoded fields)."""
    if len(value) <= DIGEST_SIZE:
        raise CorruptRecordError(where, f"record is {len(value)} bytes, too short for an event")
    return bytes(value[:DIGEST_SIZE]), decode_body(bytes(value[DIGEST_SIZE:]), where=where)


def read_link(body: bytes | memoryview) -> tuple[bytes, int, bytes | None] | None:
    """Read (actor, seq, parent) from a body without decoding it; None when the layout is not the usual one.

    Verification uses this fast path and falls back to a full decode when it returns None.
    """
    if len(body) < _SEQ_AT + 2 or body[0] != 0x87 or body[1] != FORMAT_VERSION or body[2] != 0x50:
        return None
    actor = bytes(body[_ACTOR_AT:_SEQ_AT])
    head = body[_SEQ_AT]
    if head < 0x18:
        seq, at = head, _SEQ_AT + 1
    elif 0x18 <= head <= 0x1B:
        width = 1 << (head - 0x18)
        seq = int.from_bytes(body[_SEQ_AT + 1 : _SEQ_AT + 1 + width], "big")
        at = _SEQ_AT + 1 + width
    else:
        return None
    marker = body[at] if len(body) > at else None
    if marker == 0xF6:
        return actor, seq, None
    if marker == 0x58 and len(body) >= at + 2 + DIGEST_SIZE and body[at + 1] == DIGEST_SIZE:
        return actor, seq, bytes(body[at + 2 : at + 2 + DIGEST_SIZE])
    return None


def collect_blob_refs(value: Any, out: list[bytes]) -> None:
    """Append the digest of every ``BlobRef`` inside a decoded value to ``out``."""
    if isinstance(value, BlobRef):
        out.append(value.digest)
    elif isinstance(value, dict):
        for v in value.values():
            collect_blob_refs(v, out)
    elif isinstance(value, (list, tuple)):
        for v in value:
            collect_blob_refs(v, out)
