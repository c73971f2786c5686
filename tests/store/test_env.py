"""The LMDB environment: the map grows by itself while writers write and readers read."""

from __future__ import annotations

import os
import threading
import uuid

from store import EMPTY, Head, Store, blob_digest, verify_store

A = uuid.UUID(int=0xA)
B = uuid.UUID(int=0xB)
MIB = 1 << 20
WAIT = 10.0  # short: a writer thread that died leaves waiters waiting forever


def test_map_grows_from_one_mib_to_take_20_mb_while_readers_read(tmp_path) -> None:
    rng_blobs = [os.urandom(100_000) for _ in range(100)]  # 10 MB of blobs
    with Store(tmp_path / "s", map_size=MIB, spill_threshold=1024) as s:
        assert s.env.env.info()["map_size"] == MIB
        seed = s.log.append(A, "t", {"seed": True}, expected=EMPTY)
        stop = threading.Event()
        reads = {"count": 0}
        failures: list[BaseException] = []

        def reader() -> None:
            try:
                while not stop.is_set():
                    assert s.log.at(A, 0) == seed
                    head = s.log.head(A)
                    assert len(list(s.log.events(A, max(0, head.seq - 5), head.seq + 1))) == min(6, head.seq + 1)
                    for digest in list(s.blobs)[:5]:
                        s.blobs.get(digest)
                    reads["count"] += 1
            except BaseException as exc:  # reported by the test thread
                failures.append(exc)

        readers = [threading.Thread(target=reader) for _ in range(2)]
        for r in readers:
            r.start()
        try:
            puts = [s.blobs.put_async(b) for b in rng_blobs]
            head = Head(seed.seq, seed.hash)
            appends = []
            for i in range(200):  # 10 MB of events, their 50 KB payloads spilled to blobs
                p = s.log.append_async(A, "t", {"i": i, "file": os.urandom(50_000)}, expected=head)
                head = Head(p.event.seq, p.event.hash)
                appends.append(p)
            digests = [p.wait(WAIT) for p in puts]
            events = [p.wait(WAIT) for p in appends]
        finally:
            stop.set()
            for r in readers:
                r.join(WAIT)
        assert not failures, failures
        assert reads["count"] > 0

        assert s.env.env.info()["map_size"] >= 32 * MIB
        assert digests == [blob_digest(b) for b in rng_blobs]
        assert all(s.blobs.get(d) == b for d, b in zip(digests, rng_blobs))
        assert s.log.head(A) == head
        assert [e.hash for e in s.log.events(A, 1)] == [e.hash for e in events]
        report = verify_store(s)
        assert report.ok, report.problems
        assert report.events == 201


def test_map_growth_in_the_middle_of_a_batch_keeps_every_blob_of_the_batch(tmp_path, writer_held) -> None:
    # Eight 200 KB blobs do not fit a 1 MiB map together: the batch that holds them hits the map's end
    # part way through, the map grows, and the batch is applied again from the start.
    blobs = [bytes([i]) * 200_000 for i in range(8)]
    with Store(tmp_path / "s", map_size=MIB) as s:
        with writer_held(s):
            pending = [s.blobs.put_async(b) for b in blobs]

        digests = [p.wait(WAIT) for p in pending]

        assert s.env.env.info()["map_size"] > MIB
        for digest, data in zip(digests, blobs):
            assert s.blobs.size(digest) == len(data)
            assert s.blobs.get(digest) == data


def test_map_growth_in_the_middle_of_a_batch_keeps_every_append_of_the_batch(tmp_path, writer_held) -> None:
    with Store(tmp_path / "s", map_size=MIB, spill_threshold=1024) as s:
        head = EMPTY
        pending = []
        with writer_held(s):
            for i in range(8):
                p = s.log.append_async(A, "t", {"i": i, "file": bytes([i]) * 200_000}, expected=head)
                head = Head(p.event.seq, p.event.hash)
                pending.append(p)
            other = s.log.append_async(B, "t", "small", expected=EMPTY)

        events = [p.wait(WAIT) for p in pending]
        other.wait(WAIT)

        assert s.env.env.info()["map_size"] > MIB
        assert [e.data["i"] for e in s.log.events(A)] == list(range(8))
        assert s.log.head(A) == Head(events[-1].seq, events[-1].hash)
        assert s.log.at(B, 0).data == "small"
        assert verify_store(s).ok


def test_a_blob_larger_than_twice_the_map_grows_it_as_often_as_needed(tmp_path) -> None:
    data = os.urandom(5 * MIB)
    with Store(tmp_path / "s", map_size=MIB) as s:
        digest = s.blobs.put(data)

        assert s.blobs.size(digest) == len(data)
        assert s.blobs.get(digest) == data
        assert s.env.env.info()["map_size"] >= 5 * MIB


def test_store_reopened_with_a_smaller_map_than_its_data_still_reads_and_writes(tmp_path) -> None:
    path = tmp_path / "s"
    data = os.urandom(3 * MIB)
    with Store(path, map_size=MIB) as s:
        digest = s.blobs.put(data)
    with Store(path, map_size=MIB) as s:
        assert s.blobs.get(digest) == data
        assert s.env.env.info()["map_size"] >= 3 * MIB
        more = s.blobs.put(os.urandom(2 * MIB))
        assert s.blobs.size(more) == 2 * MIB


def test_a_single_append_larger_than_the_map_grows_it(tmp_path) -> None:
    payload = os.urandom(5 * MIB)
    with Store(tmp_path / "s", map_size=MIB) as s:
        pending = s.log.append_async(A, "t", {"file": payload}, expected=EMPTY)

        event = pending.wait(WAIT)

        assert s.log.at(A, 0).data == {"file": payload}
        assert s.log.head(A) == Head(0, event.hash)
        assert verify_store(s).ok
