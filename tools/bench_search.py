"""Event search (``store.search``) on a home of N events, each figure next to a plain sequential read of the same
events measured in the same run.

    .venv/bin/python tools/bench_search.py                    # 100,000 events
    .venv/bin/python tools/bench_search.py --events 1000000   # 1,000,000 events

Figures: building the index from scratch (the first search of a home that was never searched), a search page
after it (time, type, actor + time range, text), and paging through a whole type filter. The floor is reading
every event of the home in commit order and decoding it (what a search without an index would do). Ratios hold on
a noisy machine; absolute times do not. Nothing here is asserted by the tests.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from store import Head, Store  # noqa: E402
from store.search import Query, catch_up, search  # noqa: E402
from theater.porcelain.search import text_matcher  # noqa: E402

TYPES = ("wasm/call", "wasm/result", "theater:simple/runtime/log", "theater:simple/message-server-host/send",
         "theater:simple/timing/now", "wasm/instantiate")


def fill(store: Store, count: int, actors: int) -> None:
    ids = [uuid.UUID(int=n + 1) for n in range(actors)]
    heads = {a: store.log.head(a) for a in ids}
    pending = None
    for i in range(count):
        actor = ids[(i * 7) % actors]
        data = {"params": [f"message {i}", i], "result": {"ok": f"answer {i % 977}"}}
        pending = store.log.append_async(actor, TYPES[i % len(TYPES)], data, expected=heads[actor],
                                         timestamp_ms=1_700_000_000_000 + i)
        heads[actor] = Head(pending.event.seq, pending.event.hash)
        if i % 50_000 == 49_999:
            pending.wait()
    if pending is not None:
        pending.wait()


def sequential_read(store: Store) -> float:
    """The floor: every event of the home read and decoded, chain by chain (``EventLog.events``, pages of 4,096
    from one snapshot each: the fastest plain read the store has)."""
    started = time.perf_counter()
    for actor, _ in store.log.actors():
        for _ in store.log.events(actor):
            pass
    return time.perf_counter() - started


def timed(fn: object) -> tuple[float, object]:
    started = time.perf_counter()
    value = fn()  # type: ignore[operator]
    return time.perf_counter() - started, value


def line(name: str, seconds: float, floor: float) -> None:
    print(f"{name:<62} {seconds * 1000:>10,.1f} ms   floor (sequential read of every event) "
          f"{floor * 1000:,.1f} ms   ratio {seconds / floor:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--actors", type=int, default=50)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-search-"))
    try:
        with Store(root / "store", durability="buffered") as store:
            started = time.perf_counter()
            fill(store, args.events, args.actors)
            print(f"{args.events:,} events over {args.actors} actors written in {time.perf_counter() - started:.1f} s")
            floor = sequential_read(store)
            build, _ = timed(lambda: catch_up(store))
            line(f"index built from scratch ({args.events:,} events)", build, floor)
            n = args.events
            mid = 1_700_000_000_000 + n // 2
            actor = uuid.UUID(int=3)
            cases = [
                ("page of 100, no filter", Query(), None),
                ("page of 100, one type", Query(types=("theater:simple/timing/now",)), None),
                ("page of 100, type prefix, from the middle", Query(types=("wasm/*",), since_ms=mid), None),
                ("page of 100, one actor + time range", Query(actors=(actor,), since_ms=mid, until_ms=mid + n // 4),
                 None),
                ("page of 100, text 'answer 976' (matches 1 in 977)", Query(text="answer 976"), "answer 976"),
                ("page of 100, text that matches nothing (bounded)", Query(text="zzz-none"), "zzz-none"),
            ]
            for name, query, text in cases:
                match = text_matcher(text) if text else None
                seconds, page = timed(lambda q=query, m=match: search(store, q, match=m, limit=100))
                line(f"{name}: {len(page.events)} events{', partial' if page.partial else ''}",  # type: ignore[attr-defined]
                     seconds, floor)
            query = Query(types=("theater:simple/runtime/log",))

            def page_all() -> int:
                total, after = 0, None
                while True:
                    page = search(store, query, limit=1000, after=after)
                    total += len(page.events)
                    if page.next is None:
                        return total
                    after = page.next

            seconds, total = timed(page_all)
            line(f"every page of one type ({total:,} events, 1,000 a page)", seconds, floor)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
