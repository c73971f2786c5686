"""The hash index's tail: entries the writer left to the feed under load, found, verified and merged.

A tail is made the way a crash leaves one: appends are in the events and the feed, their index entries are not,
and the watermark in ``meta`` names the first feed position without one. Read-only stores never merge, so the
tail stays put while the readers are checked; a writable store merges it when idle or closing.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid
from pathlib import Path

import lmdb
import pytest

from store import EMPTY, AmbiguousPrefixError, Head, Store, verify_chain, verify_store
from store import _commit, _index
from store._index import WATERMARK_KEY, TailIndex, feed_end

ROOT = Path(__file__).resolve().parents[2]
A = uuid.UUID("00000000-0000-4000-8000-00000000000a")
B = uuid.UUID("00000000-0000-4000-8000-00000000000b")


def make_tail(path: Path, append_chain, count: int, tail: int) -> list:
    """Append ``count`` events to A and B alternately, then cut the last ``tail`` out of the index."""
    with Store(path, durability="buffered") as s:
        events = []
        for _ in range(count // 2):
            events += append_chain(s, A, 1) + append_chain(s, B, 1)
    env = lmdb.open(str(path), max_dbs=10)
    dbs = {n: env.open_db(n.encode()) for n in ("meta", "event_index", "feed")}
    with env.begin(write=True) as txn:
        for e in events[-tail:]:
            assert txn.delete(e.hash, db=dbs["event_index"])
        txn.put(WATERMARK_KEY, (len(events) - tail).to_bytes(8, "big"), db=dbs["meta"])
    env.close()
    return events


def raw_put(path: Path, db: str, key: bytes, value: bytes) -> None:
    """Write one record behind the store's back (no Store may be open on ``path`` in this process)."""
    env = lmdb.open(str(path), max_dbs=10)
    with env.begin(write=True) as txn:
        txn.put(key, value, db=env.open_db(db.encode(), txn=txn))
    env.close()


def index_keys(s: Store) -> set[bytes]:
    with s.env.read() as txn:
        return set(txn.cursor(db=s.env.dbs["event_index"]).iternext(keys=True, values=False))


def watermark(s: Store) -> bytes | None:
    with s.env.read() as txn:
        return txn.get(WATERMARK_KEY, db=s.env.dbs["meta"])


def test_events_in_the_tail_are_found_by_hash_and_prefix_and_verify(store_path, append_chain) -> None:
    events = make_tail(store_path, append_chain, 40, 15)
    with Store(store_path, readonly=True) as s:
        assert not {e.hash for e in events[-15:]} & index_keys(s)
        for e in events:
            assert s.log.get(e.hash) == e
            assert s.log.resolve(e.hash.hex()[:12]) == e.hash
        assert [f.seq for f in s.log.feed()] == [e.seq for e in events]
        report = verify_store(s)
        assert report.ok and report.events == 40


def test_the_writer_merges_the_tail_when_idle_and_the_index_is_complete_again(store_path, append_chain) -> None:
    events = make_tail(store_path, append_chain, 40, 15)
    with Store(store_path) as s:
        more = append_chain(s, A, 3)  # a small batch after a tail is deferred too: the tail is not a prefix gap
        s.close()
    with Store(store_path, readonly=True) as s:
        assert watermark(s) is None
        assert index_keys(s) == {e.hash for e in events + more}
        assert verify_store(s).ok


def test_a_tail_entry_that_names_the_wrong_seq_is_an_index_mismatch(store_path, append_chain) -> None:
    events = make_tail(store_path, append_chain, 20, 6)
    victim = events[-3]
    position = len(events) - 3
    raw_put(store_path, "feed", position.to_bytes(8, "big"),
            victim.actor.bytes + victim.hash + (victim.seq + 7).to_bytes(8, "big"))
    with Store(store_path, readonly=True) as s:
        assert s.log.feed(position, 1)[0].hash == victim.hash
        report = verify_chain(s, victim.actor)
        assert report.problem is not None
        problem = (report.problem.kind, report.problem.seq, report.problem.hash)
        assert problem == ("index mismatch", victim.seq, victim.hash)


def test_an_index_entry_wins_over_the_tail_and_a_wrong_one_is_reported(store_path, append_chain) -> None:
    events = make_tail(store_path, append_chain, 20, 6)
    victim = events[-2]
    raw_put(store_path, "event_index", victim.hash, A.bytes + (99).to_bytes(8, "big"))
    with Store(store_path, readonly=True) as s:
        report = verify_chain(s, victim.actor)
        assert report.problem is not None and report.problem.kind == "index mismatch"
        assert report.problem.hash == victim.hash


def test_a_prefix_shared_by_an_indexed_event_and_a_tail_event_is_ambiguous(store_path, append_chain) -> None:
    events = make_tail(store_path, append_chain, 20, 6)
    indexed, tailed = events[0], events[-1]
    # Plant an index entry whose hash shares 6 bytes (and no more) with the tail event's.
    twin = tailed.hash[:6] + bytes(b ^ 0xFF for b in tailed.hash[6:])
    raw_put(store_path, "event_index", twin, indexed.actor.bytes + indexed.seq.to_bytes(8, "big"))
    with Store(store_path, readonly=True) as s:
        with pytest.raises(AmbiguousPrefixError):
            s.log.resolve(tailed.hash.hex()[:12])
        assert s.log.resolve(tailed.hash.hex()[:14]) == tailed.hash


def test_an_older_snapshot_still_sees_its_own_tail_after_a_merge(store_path, append_chain) -> None:
    events = make_tail(store_path, append_chain, 20, 6)
    with Store(store_path, readonly=True) as s:
        tail = TailIndex(s.env.dbs)
        old = s.env.env.begin()
        try:
            assert tail.lookup(old, events[-1].hash) is not None
            # Another process opens the home for writing: its writer merges the tail while we hold ``old``.
            subprocess.run([sys.executable, "-c", "import sys, store; store.Store(sys.argv[1]).close()",
                            str(store_path)], check=True, timeout=60, cwd=ROOT)
            with s.env.read() as new:
                assert new.get(WATERMARK_KEY, db=s.env.dbs["meta"]) is None
                assert tail.lookup(new, events[-1].hash) is None  # merged: the index has it now
                assert feed_end(new, s.env.dbs) == 20
            key = events[-1].actor.bytes + events[-1].seq.to_bytes(8, "big")
            assert tail.lookup(old, events[-1].hash) == key
        finally:
            old.abort()


def test_a_feed_written_before_entries_held_the_seq_is_still_read(store_path, append_chain) -> None:
    with Store(store_path) as s:
        events = append_chain(s, A, 3)
    env = lmdb.open(str(store_path), max_dbs=10)
    feed = env.open_db(b"feed")
    with env.begin(write=True) as txn:
        for key, value in list(txn.cursor(db=feed)):
            txn.put(key, value[:48], db=feed)
    env.close()
    with Store(store_path, readonly=True) as s:
        assert [(f.hash, f.seq) for f in s.log.feed()] == [(e.hash, e.seq) for e in events]


def test_appends_under_load_defer_their_index_entries_and_merge_in_chunks(
    store_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_index, "MERGE_AT", 300)
    monkeypatch.setattr(_index, "MERGE_CHUNK", 64)
    merges: list[int] = []
    real_step = _index._merge_step

    def counting_step(txn, dbs, mark, feed_next, merge):
        result = real_step(txn, dbs, mark, feed_next, merge)
        merges.append(0 if merge is None else merge.done)
        return result

    monkeypatch.setattr(_index, "_merge_step", counting_step)
    actors = [uuid.uuid4() for _ in range(8)]
    appended: list = []
    lock = threading.Lock()

    def work(actor: uuid.UUID) -> None:
        head, mine, log = EMPTY, [], s_holder[0].log
        for i in range(250):
            p = log.append_async(actor, "t", {"i": i}, expected=head)
            head = Head(p.event.seq, p.event.hash)
            mine.append(p)
        with lock:
            appended.extend(p.wait(30) for p in mine)

    s_holder: list[Store] = []
    with Store(store_path, durability="buffered") as s:
        s_holder.append(s)
        threads = [threading.Thread(target=work, args=(a,)) for a in actors]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for e in appended:
            assert s.log.get(e.hash) == e  # found in the index or its tail, whichever holds it now
        assert verify_store(s).ok
    assert len(appended) == 2000
    assert any(done > 0 for done in merges), "no merge ever ran past its first chunk"
    with Store(store_path, readonly=True) as s:
        assert watermark(s) is None
        assert index_keys(s) == {e.hash for e in appended}


def submit_batch(s: Store, actor: uuid.UUID, count: int) -> list:
    """``count`` appends to ``actor`` handed to the writer together (one commit), once they are committed."""
    head, writes = s.log.head(actor), []
    for i in range(count):
        write = s.log.prepare(actor, "t", {"i": i}, expected=head)
        head = Head(write.event.seq, write.event.hash)
        writes.append(write)
    s.submit(writes)
    return [write.wait(30) for write in writes]


def merged_event(s: Store) -> threading.Event:
    """An event set after the first commit that leaves no tail."""
    merged = threading.Event()
    s.add_commit_listener(lambda: merged.set() if watermark(s) is None else None)
    return merged


def test_a_batch_of_fewer_appends_than_the_threshold_writes_its_index_entries_at_once(store_path) -> None:
    with Store(store_path, durability="buffered") as s:
        merged = merged_event(s)
        first = submit_batch(s, A, 1)  # a chain's first append: left to the tail, merged once the writer is idle
        assert merged.wait(30), "the idle writer never merged the tail"
        events = submit_batch(s, A, _commit.DIRECT_INDEX_BELOW_OPS - 1)
        assert watermark(s) is None
        assert {e.hash for e in first + events} <= index_keys(s)


def test_a_batch_starting_a_chain_leaves_its_index_entries_to_the_tail_however_small(
    store_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_commit, "IDLE_MERGE_AFTER_S", 3600.0)  # the writer is never idle long enough here
    with Store(store_path, durability="buffered") as s:
        started = submit_batch(s, A, 2)  # an actor's start: its first appends, in one small batch
        assert watermark(s) is not None
        assert not {e.hash for e in started} & index_keys(s)
        for e in started:
            assert s.log.get(e.hash) == e  # found in the tail
            assert s.log.resolve(e.hash.hex()[:12]) == e.hash
        assert verify_store(s).ok
    with Store(store_path, readonly=True) as s:  # closing merged it
        assert watermark(s) is None
        assert index_keys(s) == {e.hash for e in started}


def test_a_batch_of_many_appends_leaves_its_index_entries_to_the_tail_until_the_store_closes(
    store_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_commit, "IDLE_MERGE_AFTER_S", 3600.0)  # the writer is never idle long enough here
    with Store(store_path, durability="buffered") as s:
        events = submit_batch(s, A, _commit.DIRECT_INDEX_BELOW_OPS)
        assert watermark(s) is not None
        assert not {e.hash for e in events} & index_keys(s)
        for e in events:
            assert s.log.get(e.hash) == e  # found in the tail
        more = submit_batch(s, B, 2)  # a small batch behind a tail is deferred too
        assert not {e.hash for e in more} & index_keys(s)
    with Store(store_path, readonly=True) as s:  # closing merged it
        assert watermark(s) is None
        assert index_keys(s) >= {e.hash for e in events + more}
        assert verify_store(s).ok


def test_an_idle_writer_merges_the_tail_without_being_closed(store_path) -> None:
    merged, marks = threading.Event(), []

    def after_commit() -> None:
        marks.append(watermark(s))
        if marks[-1] is None:
            merged.set()

    with Store(store_path, durability="buffered") as s:
        s.add_commit_listener(after_commit)
        events = submit_batch(s, A, _commit.DIRECT_INDEX_BELOW_OPS)
        assert merged.wait(30), "the idle writer never merged the tail"
        assert marks[0] is not None  # the batch's own commit left a tail
        assert index_keys(s) >= {e.hash for e in events}
