"""Child process of test_processes.py: opens a store read-only and checks a snapshot every time it is asked.

Usage: python _snapshot_reader.py STORE_PATH MAP_SIZE

Prints ``ready <map_size>`` once open. Then for every line read on stdin it reads every chain up to the head it
sees, checks that chain is a valid prefix (every stored hash recomputed, every parent link and seq followed, the
last event being the head, spilled payloads read back and checked), and prints
``ok <chains> <events> <map_size>`` or ``bad <description>``. It exits at the end of stdin.
"""

from __future__ import annotations

import sys
import uuid

from store import Store, StoreError
from store.codec import decode_stored, event_hash


def check_prefix(store: Store, actor: uuid.UUID) -> int:
    head = store.log.head(actor)
    parent = None
    count = 0
    for seq, value in store.log.raw_events(actor, 0, head.seq + 1):
        stored_hash, fields = decode_stored(value, where=f"{actor} #{seq}")
        if seq != count or fields[2] != seq:
            raise AssertionError(f"{actor}: seq {seq} where {count} was expected")
        if event_hash(bytes(value[32:])) != stored_hash:
            raise AssertionError(f"{actor} #{seq}: hash mismatch")
        if fields[1] != actor.bytes or fields[3] != parent:
            raise AssertionError(f"{actor} #{seq}: broken link")
        parent = stored_hash
        count += 1
    if count != head.seq + 1 or parent != head.hash:
        raise AssertionError(f"{actor}: read {count} events ending at {parent!r}, the head is {head}")
    for event in store.log.events(actor, max(0, head.seq - 2), head.seq + 1):  # spilled payloads, checked
        assert event.data is not None
    return count


def main() -> None:
    path, map_size = sys.argv[1], int(sys.argv[2])
    with Store(path, readonly=True, map_size=map_size) as store:
        print("ready", store.env.env.info()["map_size"], flush=True)
        for _ in sys.stdin:
            try:
                actors = store.log.actors()
                events = sum(check_prefix(store, actor) for actor, _ in actors)
                print("ok", len(actors), events, store.env.env.info()["map_size"], flush=True)
            except (AssertionError, StoreError) as exc:
                print("bad", type(exc).__name__, str(exc).replace("\n", " "), flush=True)


if __name__ == "__main__":
    main()
