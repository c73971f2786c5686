"""Many threads appending at once: per-chain order, group commit, the feed, and compare-and-append races."""

from __future__ import annotations

import threading
import uuid
from collections import Counter

import pytest

from store import EMPTY, Head, StaleHeadError, Store, verify_store

WAIT = 60.0


def run_threads(targets) -> None:
    """Run each target in its own thread; re-raise the first failure in the test's thread."""
    errors: list[BaseException] = []

    def guarded(target):
        try:
            target()
        except BaseException as exc:  # handed to the test thread below
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(t,)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
        assert not t.is_alive(), "a worker thread did not finish"
    if errors:
        raise errors[0]


def test_eight_threads_appending_to_a_hundred_chains_keep_each_threads_order(store: Store) -> None:
    chains = [uuid.UUID(int=i + 1) for i in range(100)]
    owned = {t: chains[t::8] for t in range(8)}
    submitted: dict[int, list[tuple[uuid.UUID, bytes]]] = {t: [] for t in range(8)}
    rounds = 6

    def worker(t: int) -> None:
        heads = {actor: EMPTY for actor in owned[t]}
        counter = 0
        for r in range(rounds):
            for i, actor in enumerate(owned[t]):
                if (r + i) % 2:  # three pipelined appends, then wait for them
                    pending = []
                    for _ in range(3):
                        p = store.log.append_async(actor, "t", {"thread": t, "n": counter}, expected=heads[actor])
                        heads[actor] = Head(p.event.seq, p.event.hash)
                        submitted[t].append((actor, p.event.hash))
                        pending.append(p)
                        counter += 1
                    for p in pending:
                        p.wait(WAIT)
                else:  # one append, waited for at once
                    event = store.log.append(actor, "t", {"thread": t, "n": counter}, expected=heads[actor])
                    heads[actor] = Head(event.seq, event.hash)
                    submitted[t].append((actor, event.hash))
                    counter += 1

    run_threads([lambda t=t: worker(t) for t in range(8)])

    total = sum(len(s) for s in submitted.values())
    for t, actors in owned.items():
        for actor in actors:
            events = list(store.log.events(actor))
            assert [e.hash for e in events] == [h for a, h in submitted[t] if a == actor]
            counters = [e.data["n"] for e in events]
            assert counters == sorted(counters)
            assert {e.data["thread"] for e in events} == {t}
    report = verify_store(store)
    assert report.ok, report.problems
    assert report.events == total
    assert len(report.chains) == 100
    feed = store.log.feed()
    assert [e.position for e in feed] == list(range(total))
    assert Counter((e.actor, e.hash) for e in feed) == Counter(pair for s in submitted.values() for pair in s)
    for t, actors in owned.items():
        for actor in actors:
            assert [e.hash for e in feed if e.actor == actor] == [h for a, h in submitted[t] if a == actor]
    assert store.log.feed_end() == total


def test_two_threads_racing_on_one_chain_exactly_one_wins_each_seq(store: Store) -> None:
    actor = uuid.UUID(int=42)
    rounds = 40
    barrier = threading.Barrier(2, timeout=WAIT)
    outcomes: dict[int, list] = {r: [] for r in range(rounds)}

    def racer(name: str) -> None:
        for r in range(rounds):
            barrier.wait()  # both have seen the previous round finish
            head = store.log.head(actor)
            barrier.wait()  # both read the same head before either appends
            try:
                event = store.log.append(actor, "t", {"round": r, "by": name}, expected=head)
                outcomes[r].append(("won", name, head, event))
            except StaleHeadError as exc:
                outcomes[r].append(("lost", name, head, exc))

    run_threads([lambda: racer("left"), lambda: racer("right")])

    events = list(store.log.events(actor))
    assert len(events) == rounds
    for r in range(rounds):
        results = sorted(outcomes[r], key=lambda o: o[0])
        assert [o[0] for o in results] == ["lost", "won"], f"round {r}: {results}"
        (_, loser, seen, error), (_, winner, _, event) = results
        assert seen == Head(r - 1, events[r - 1].hash if r else None)
        assert event == events[r]
        assert event.data == {"round": r, "by": winner}
        assert error.expected == (seen.seq, seen.hash)
        assert error.actual == (r, event.hash)
        assert str(error) == (
            f"stale head for actor {actor}: expected "
            f"{'empty chain' if r == 0 else f'seq {r - 1} {seen.hash.hex()[:16]}'}, "
            f"the chain is at seq {r} {event.hash.hex()[:16]}"
        )
    assert verify_store(store).ok


def test_two_racing_pipelines_on_one_chain_one_wins_whole(store: Store) -> None:
    actor = uuid.UUID(int=43)
    barrier = threading.Barrier(2, timeout=WAIT)
    results: dict[str, list] = {}

    def pipeline(name: str) -> None:
        head = EMPTY
        pending = []
        barrier.wait()
        for i in range(20):
            p = store.log.append_async(actor, "t", {"by": name, "i": i}, expected=head)
            head = Head(p.event.seq, p.event.hash)
            pending.append(p)
        outcome = []
        for p in pending:
            try:
                outcome.append(p.wait(WAIT))
            except StaleHeadError as exc:
                outcome.append(exc)
        results[name] = outcome

    run_threads([lambda: pipeline("left"), lambda: pipeline("right")])

    won = [name for name, outcome in results.items() if all(not isinstance(o, Exception) for o in outcome)]
    lost = [name for name, outcome in results.items() if all(isinstance(o, StaleHeadError) for o in outcome)]
    assert len(won) == 1 and len(lost) == 1, results
    assert [e.data for e in store.log.events(actor)] == [{"by": won[0], "i": i} for i in range(20)]
    assert len(store.log.feed()) == 20


@pytest.mark.parametrize("durability", ["sync", "buffered"])
def test_concurrent_blob_puts_of_the_same_bytes_store_them_once(tmp_path, durability: str) -> None:
    with Store(tmp_path / "s", durability=durability) as s:
        digests: list[bytes] = []
        lock = threading.Lock()

        def putter() -> None:
            for i in range(50):
                d = s.blobs.put(b"shared %d" % (i % 10))
                with lock:
                    digests.append(d)

        run_threads([putter for _ in range(6)])

        assert len(digests) == 300
        assert sorted(s.blobs) == sorted(set(digests))
        assert len(set(digests)) == 10
