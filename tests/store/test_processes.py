"""Several processes on one home: a read-only reader sees consistent snapshots while a writer appends (and grows
the map); a second writer process neither loses the first one's feed entries nor slips past its head checks."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from store import EMPTY, FeedEntry, Head, StaleHeadError, Store, verify_store

HERE = Path(__file__).parent
MIB = 1 << 20
WAIT = 30.0
WRITE_WAIT = 10.0  # short: a writer thread that died leaves waiters waiting forever
MAX_CHECKS = 1000  # snapshot checks before a reader that never sees the writer's appends is given up on


@pytest.mark.parametrize("map_size", [1 << 30, MIB], ids=["roomy-map", "growing-map"])
def test_readonly_process_sees_consistent_snapshots_while_the_writer_appends(tmp_path, map_size: int) -> None:
    path = tmp_path / "s"
    actors = [uuid.UUID(int=i + 1) for i in range(4)]
    with Store(path, map_size=map_size, durability="buffered", spill_threshold=1024) as s:
        heads = {a: Head(s.log.append(a, "t", {"i": 0}, expected=EMPTY).seq, s.log.head(a).hash) for a in actors}
        with subprocess.Popen(
            [sys.executable, str(HERE / "_snapshot_reader.py"), str(path), str(map_size)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as child:
            try:
                assert child.stdout.readline().split()[0] == "ready", child.stderr.read()
                stop = threading.Event()  # enough checks were taken while the writer wrote
                abandon = threading.Event()  # the writer did not get there in time: stop it anyway
                written = {"events": 0}
                page = s.env.env.stat()["psize"]

                def grown() -> bool:
                    # The chains reach past the first map, so a reader must adopt the grown one (LMDB tells it so
                    # only once the data goes past the map it has mapped, not when the map alone grew).
                    return map_size != MIB or s.env.env.info()["last_pgno"] + 1 > MIB // page

                def writer() -> None:
                    # Appends to every chain, some events with 30 KB payloads (so a small map grows), until stopped
                    # and, for the small map, until the chains have outgrown it: how much is written while the
                    # reader checks depends on how the machine shares its cores, so the growth is waited for.
                    i = 0
                    while not (stop.is_set() and (grown() or abandon.is_set())):
                        i += 1
                        pending = []
                        for a in actors:
                            data = {"i": i, "file": os.urandom(30_000)} if i % 4 == 0 else {"i": i}
                            p = s.log.append_async(a, "t", data, expected=heads[a])
                            heads[a] = Head(p.event.seq, p.event.hash)
                            pending.append(p)
                        for p in pending:
                            p.wait(WRITE_WAIT)
                        written["events"] += len(pending)

                thread = threading.Thread(target=writer)
                thread.start()
                replies = []

                def check() -> int:
                    child.stdin.write("check\n")
                    child.stdin.flush()
                    replies.append(child.stdout.readline().strip())
                    return int(replies[-1].split()[2]) if replies[-1].startswith("ok ") else -1

                try:
                    # Each reply is one full snapshot check, taken while the writer writes: at least 25, and until
                    # one has seen the chains move (the first checks may all come before the writer's first commit).
                    seen = {check()}
                    while len(replies) < 25 or (len(seen) < 2 and len(replies) < MAX_CHECKS):
                        seen.add(check())
                finally:
                    stop.set()
                    thread.join(WAIT)
                    if thread.is_alive():
                        abandon.set()
                        thread.join(WAIT)
                child.stdin.write("check\n")
                child.stdin.close()
                replies.append(child.stdout.readline().strip())
                assert child.wait(WAIT) == 0, child.stderr.read()
            finally:
                if child.poll() is None:
                    child.kill()

        bad = [r for r in replies if not r.startswith("ok ")]
        assert not bad, bad
        counts = [int(r.split()[2]) for r in replies]
        assert counts == sorted(counts)  # snapshots only move forward
        assert counts[-1] == 4 + written["events"]  # the last check, after the writer stopped, sees everything
        assert len(set(counts)) > 1  # it did read while the writer was writing
        if map_size == MIB:
            assert s.env.env.info()["map_size"] > MIB
            assert int(replies[-1].split()[3]) > MIB  # the reader adopted the map the writer grew
        assert verify_store(s).ok


def test_appends_from_a_second_writer_process_do_not_lose_feed_entries(tmp_path) -> None:
    path = tmp_path / "s"
    a, b, c = (uuid.UUID(int=i) for i in (1, 2, 3))
    with Store(path, durability="buffered") as s:
        first = s.log.append(a, "t", "first", expected=EMPTY)
        # Another process (a CLI, a second server) opens the same home for writing and appends.
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys, uuid, store\n"
                "with store.Store(sys.argv[1], durability='buffered') as s:\n"
                "    s.log.append(uuid.UUID(int=2), 't', 'other process', expected=store.EMPTY)\n",
                str(path),
            ],
            check=True,
            timeout=WAIT,
        )
        third = s.log.append(c, "t", "third", expected=EMPTY)

        feed = s.log.feed()

        other = s.log.at(b, 0)
        assert feed == [
            FeedEntry(position=0, actor=a, hash=first.hash, seq=first.seq),
            FeedEntry(position=1, actor=b, hash=other.hash, seq=other.seq),
            FeedEntry(position=2, actor=c, hash=third.hash, seq=third.seq),
        ]
        assert s.log.feed_end() == 3


class CommitInterleaver:
    """Stands in for the store's ``lmdb.Environment``: right after the first write transaction that commits
    after ``arm()``, runs ``action`` (before the writer does anything else). This lets another process commit
    in exactly the window between this process's commit and its bookkeeping of that commit."""

    def __init__(self, real, action) -> None:
        self._real = real
        self._action = action
        self._armed = False

    def arm(self) -> None:
        self._armed = True

    def begin(self, *args, **kwargs):
        txn = self._real.begin(*args, **kwargs)
        return _Interleaved(self, txn) if kwargs.get("write") else txn

    def __getattr__(self, name):
        return getattr(self._real, name)


class _Interleaved:
    def __init__(self, owner: CommitInterleaver, txn) -> None:
        self._owner = owner
        self._txn = txn

    def commit(self) -> None:
        self._txn.commit()
        if self._owner._armed:
            self._owner._armed = False
            self._owner._action()

    def __getattr__(self, name):
        return getattr(self._txn, name)


def test_a_commit_by_another_process_right_after_ours_is_not_overlooked(tmp_path) -> None:
    path = tmp_path / "s"
    a, b = uuid.UUID(int=1), uuid.UUID(int=2)

    def other_process_appends() -> None:
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys, uuid, store\n"
                "with store.Store(sys.argv[1], durability='buffered') as s:\n"
                "    a = uuid.UUID(int=1)\n"
                "    s.log.append(a, 't', 'other process', expected=s.log.head(a))\n"
                "    s.log.append(uuid.UUID(int=2), 't', 'other process', expected=store.EMPTY)\n",
                str(path),
            ],
            check=True,
            timeout=WAIT,
        )

    with Store(path, durability="buffered") as s:
        interleaver = CommitInterleaver(s.env.env, other_process_appends)
        s.env.env = interleaver
        interleaver.arm()
        first = s.log.append(a, "t", "first", expected=EMPTY)  # the other process commits right after this
        other = s.log.at(a, 1)

        message = (
            f"stale head for actor {a}: expected seq 0 {first.hash.hex()[:16]}, "
            f"the chain is at seq 1 {other.hash.hex()[:16]}"
        )
        with pytest.raises(StaleHeadError, match=message):
            s.log.append(a, "t", "stale", expected=Head(first.seq, first.hash))
        third = s.log.append(a, "t", "third", expected=Head(other.seq, other.hash))

        assert [e.data for e in s.log.events(a)] == ["first", "other process", "third"]
        assert [(e.position, e.actor) for e in s.log.feed()] == [(0, a), (1, a), (2, b), (3, a)]
        assert s.log.feed(3)[0].hash == third.hash
        assert verify_store(s).ok
