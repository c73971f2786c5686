"""C2SP cosignatures (cosignature/v1) of checkpoints, the home keeping them, and the witness's compact range."""

from __future__ import annotations

import base64
import hashlib
import os
import uuid

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from store import Store
from store.checkpoint import (
    Cosigner,
    CosignerKey,
    VerifierKey,
    load_or_create_seed,
    open_cosignature,
    open_note,
    with_cosignatures,
)
from store.errors import CorruptRecordError, InvalidInputError, ProofError
from store.merkle import leaf_hash
from store.witness import CompactRange, page_from_cbor, page_to_cbor, read_feed_page


@pytest.fixture
def home(tmp_path):
    with Store(tmp_path / "store", durability="buffered") as store:
        yield store


def _grow(store: Store, n: int, payload: int = 64) -> None:
    from store import EMPTY, Head

    actor, head = uuid.uuid4(), EMPTY
    for i in range(n):
        event = store.log.append(actor, "test/event", {"i": i, "payload": os.urandom(payload)}, expected=head)
        head = Head(event.seq, event.hash)


def test_cosignature_is_c2sp_cosignature_v1_over_the_checkpoint_text(home):
    _grow(home, 3)
    cp = home.audit.checkpoint()
    private = Ed25519PrivateKey.generate()
    witness = Cosigner(private, "witness.example/w1")
    made = witness.cosign(cp.note, 1_700_000_000)
    # The line: "— <name> base64(key id (4) || timestamp (8, big-endian) || Ed25519 signature (64))".
    dash, name, b64 = made.line.split(" ")
    raw = base64.b64decode(b64)
    public = private.public_key().public_bytes_raw()
    assert (dash, name, len(raw)) == ("\u2014", "witness.example/w1", 76)
    assert raw[:4] == hashlib.sha256(b"witness.example/w1\n\x04" + public).digest()[:4]
    assert int.from_bytes(raw[4:12], "big") == 1_700_000_000
    text = cp.note.split("\n\n")[0] + "\n"
    Ed25519PublicKey.from_public_bytes(public).verify(raw[12:], b"cosignature/v1\ntime 1700000000\n" + text.encode())
    vkey = base64.b64encode(b"\x04" + public).decode()
    assert witness.key.text == f"witness.example/w1+{raw[:4].hex()}+{vkey}"
    assert CosignerKey.parse(witness.key.text) == witness.key
    # The cosigned note still opens with the home's key: the cosignature is one more signature line.
    cosigned = with_cosignatures(cp.note, [made.line])
    assert open_note(cosigned, home.audit.key()).root == cp.root
    assert open_cosignature(cosigned, made.line, [witness.key]).timestamp == 1_700_000_000


def test_home_keeps_a_checked_cosignature_and_serves_it_in_the_note(home):
    _grow(home, 2)
    cp = home.audit.checkpoint()
    witness = Cosigner(Ed25519PrivateKey.generate(), "w1")
    line = witness.cosign(cp.note, 1_700_000_001).line
    home.audit.cosign(cp.number, line, (witness.key,))
    assert home.audit.cosignatures(cp.number) == [line]
    assert home.audit.cosigned(cp.number)[1] == cp.note + line + "\n"
    newer = witness.cosign(cp.note, 1_700_000_002).line
    home.audit.cosign(cp.number, newer, (witness.key,))
    assert home.audit.cosignatures(cp.number) == [newer]  # one kept per witness: the newest
    assert home.audit.checkpoints()[-1].number == cp.number  # the cosignatures are not taken for checkpoints


def test_cosignature_by_an_unknown_key_is_refused(home):
    _grow(home, 2)
    cp = home.audit.checkpoint()
    listed = Cosigner(Ed25519PrivateKey.generate(), "w1")
    stranger = Cosigner(Ed25519PrivateKey.generate(), "w1")  # the same name, another key
    with pytest.raises(ProofError, match="not a witness key this home accepts"):
        home.audit.cosign(cp.number, stranger.cosign(cp.note, 5).line, (listed.key,))
    assert home.audit.cosignatures(cp.number) == []


def test_forged_cosignature_is_refused(home):
    _grow(home, 2)
    first = home.audit.checkpoint()
    _grow(home, 1)
    second = home.audit.checkpoint()
    witness = Cosigner(Ed25519PrivateKey.generate(), "w1")
    genuine = witness.cosign(first.note, 5).line
    _, name, b64 = genuine.split(" ")
    raw = bytearray(base64.b64decode(b64))
    raw[11] ^= 1  # another time than the one signed
    for forged in (genuine, f"\u2014 {name} {base64.b64encode(bytes(raw)).decode()}"):
        with pytest.raises(ProofError, match="does not verify"):
            home.audit.cosign(second.number if forged == genuine else first.number, forged, (witness.key,))
    for bad in ("not a line", "\u2014 w1 !!!", "\u2014 w1 " + base64.b64encode(b"x" * 68).decode()):
        with pytest.raises(ProofError):
            open_cosignature(first.note, bad, [witness.key])


def test_witness_key_of_another_kind_is_refused():
    home_key = VerifierKey.of(os.urandom(32))
    with pytest.raises(InvalidInputError, match="0x04"):
        CosignerKey.parse(home_key.text)  # a checkpoint-signing key (0x01) is not a cosigner key
    with pytest.raises(InvalidInputError):
        Cosigner(Ed25519PrivateKey.generate(), "a name with spaces")


def test_witness_key_file_is_created_readable_by_its_owner_only(tmp_path):
    path = tmp_path / "w" / "ed25519.key"
    first = load_or_create_seed(path)
    assert os.stat(path).st_mode & 0o777 == 0o600 and os.stat(path.parent).st_mode & 0o777 == 0o700
    assert load_or_create_seed(path).private_bytes_raw() == first.private_bytes_raw()
    os.chmod(path, 0o644)
    with pytest.raises(ProofError, match="its group or others can read it"):
        load_or_create_seed(path)


def test_compact_range_gives_the_roots_the_home_signs(home):
    tree = CompactRange()
    for n in range(1, 40):
        _grow(home, 1)
        cp = home.audit.checkpoint()
        tree.append(leaf_hash(home.log.feed(n - 1, 1)[0].hash))
        assert (tree.size, tree.root()) == (cp.size, cp.root)
        assert CompactRange(tree.size, tree.hashes).root() == cp.root  # as kept in the state and read back


def test_feed_page_is_bounded_and_carries_the_blobs_its_events_name(home):
    _grow(home, 50, payload=20_000)  # each event spills its payload to the blob store
    _grow(home, 1, payload=300_000)  # too large to travel inline
    page = read_feed_page(home, 0, None, limit=10)
    assert [e[0] for e in page.entries] == list(range(10)) and page.next == 10 and page.end == 51
    assert len(page.blobs) == 10 and not page.needs
    assert len(read_feed_page(home, 50, None).needs) == 1
    small = read_feed_page(home, 5, 20, max_bytes=1)
    assert len(small.entries) == 1 and small.entries[0][0] == 5  # always one entry
    assert read_feed_page(home, 20, 20).entries == []
    assert page_from_cbor(page_to_cbor(page), "page") == page
    with pytest.raises(CorruptRecordError, match="not a feed page"):
        page_from_cbor(b"\xa1\x67entries\x01", "page")
