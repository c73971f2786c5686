"""A supervisor's children read from other threads while its own thread spawns and stops them.

The failure: ``Supervision.children`` (what ``Theater.actors``, passivation and the porcelain read, from any thread)
copied the supervisor's dict while the parent's thread changed it in place: a copy could fail (``dictionary
changed size during iteration``) or show a set of children the supervisor never had. Now the children are copied
on write (``theater.supervision.Supervisor``): every read sees one set the supervisor had, in start order.
"""

from __future__ import annotations

import threading
import uuid

from tests.components import supervisor_wat as sw
from tests.components import wat

MSG = ["message-server"]
ROUNDS = 12
PER_ROUND = 4
READERS = 4
WAIT = 10.0  # seconds any single wait may take before the test gives up


def test_children_read_while_the_parent_spawns_and_stops_them_are_never_torn(theater, manifest):
    parent = theater.start(manifest("parent", sw.supervisor_wat(request=sw.spawn()), ["supervisor", *MSG]))
    child = manifest("child", wat.echo_actor(), MSG)
    key = uuid.UUID(parent)
    done = threading.Event()
    errors: list[BaseException] = []
    seen: set[tuple[str, ...]] = set()
    reads = [0] * READERS
    guard = threading.Lock()

    def read(slot: int) -> None:
        mine: set[tuple[str, ...]] = set()
        try:
            while not done.is_set():
                if slot == 0:  # the API's view: the parent's row of ``actors``
                    [row] = [a for a in theater.actors() if a["id"] == parent]
                    mine.add(tuple(row["children"]))
                else:
                    mine.add(tuple(str(c) for c in theater.supervision.children(key)))
                reads[slot] += 1
        except BaseException as exc:  # any error in a reader is the failure under test
            errors.append(exc)
        with guard:
            seen.update(mine)

    readers = [threading.Thread(target=read, args=(slot,), name=f"reader-{slot}") for slot in range(READERS)]
    for thread in readers:
        thread.start()
    rounds: list[list[str]] = []
    try:
        for _ in range(ROUNDS):
            started: list[str] = []
            for _ in range(PER_ROUND):  # spawned on the parent's thread, in start order
                started.append(theater.start(child, parent=parent))
                assert [str(c) for c in theater.supervision.children(key)] == started
            rounds.append(list(started))
            while started:  # stopped and forgotten on the parent's thread, the last started first
                theater.stop(started[-1])
                started.pop()
                assert [str(c) for c in theater.supervision.children(key)] == started
    finally:
        done.set()
        for thread in readers:
            thread.join(WAIT)
    assert not any(thread.is_alive() for thread in readers)
    assert errors == []
    assert all(reads), f"every reader read at least once: {reads}"

    # Every snapshot is a set the supervisor had: a prefix, in start order, of the children of one round.
    place = {child_id: (n, i) for n, ids in enumerate(rounds) for i, child_id in enumerate(ids)}
    for snapshot in seen:
        where = [place.get(child_id) for child_id in snapshot]
        assert None not in where, f"a snapshot names an actor that is no child: {snapshot}"
        assert len({n for n, _ in where}) <= 1 and [i for _, i in where] == list(range(len(snapshot))), (
            f"a torn snapshot: {snapshot}")

