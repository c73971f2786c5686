"""Child process of test_crash.py: appends under load until it is killed.

Usage: python _crash_writer.py STORE_PATH DURABILITY SEED ACTOR_HEX...

Opens the store, reads every chain's head (so each run continues the chains the last run left), prints
``ready``, then appends from three threads, each owning some of the chains, mixing single appends and pipelines.
For every append whose ``wait()`` returned (durable) it prints ``<actor hex> <seq> <hash hex>``, flushed.
"""

from __future__ import annotations

import random
import sys
import threading
import uuid

from store import Head, Store

THREADS = 3


def main() -> None:
    path, durability, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    actors = [uuid.UUID(hex=h) for h in sys.argv[4:]]
    out = threading.Lock()

    def report(event) -> None:
        with out:
            sys.stdout.write(f"{event.actor.hex} {event.seq} {event.hash.hex()}\n")
            sys.stdout.flush()

    store = Store(path, durability=durability, spill_threshold=512)
    heads = {actor: store.log.head(actor) for actor in actors}

    def worker(index: int) -> None:
        rng = random.Random(seed * 100 + index)
        mine = actors[index::THREADS]
        while True:
            actor = rng.choice(mine)
            pending = []
            for _ in range(rng.choice([1, 1, 2, 5, 12])):
                data = {"seed": seed, "n": rng.getrandbits(32)}
                if rng.random() < 0.2:
                    data["file"] = rng.randbytes(rng.randint(513, 4000))  # spilled to a blob
                p = store.log.append_async(actor, "crash.test", data, expected=heads[actor])
                heads[actor] = Head(p.event.seq, p.event.hash)
                pending.append(p)
            for p in pending:
                report(p.wait())

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(THREADS)]
    print("ready", flush=True)
    for t in threads:
        t.start()
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
