"""Search over a home's events (``store.search``): exact pages in time order over a 100,000-event home, the index
and its tail, the bounds on one call's work, and cursors that cannot be forged."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from store import Event, Head, Store
from store.search import (
    MAX_LIMIT,
    Query,
    SearchCursorError,
    SearchPage,
    catch_up,
    read_watermark,
    search,
)

WAIT = 30.0
TYPES = ("wasm/call", "wasm/result", "theater:simple/runtime/log", "theater:simple/message-server-host/send")
ACTORS = tuple(uuid.UUID(int=n + 1) for n in range(7))


def _fill(store: Store, count: int, start: int = 0) -> None:
    """Append ``count`` events spread over ``ACTORS`` and ``TYPES``, with timestamps that are not in commit
    order (each event's is its number with a jitter of up to 40 ms either way)."""
    heads = {a: store.log.head(a) for a in ACTORS}
    pending = None
    for i in range(start, start + count):
        actor = ACTORS[(i * 5) % len(ACTORS)]
        ts = 1_000_000 + i + ((i * 7919) % 81) - 40
        data = {"params": [f"item {i}"], "result": {"ok": i % 3 == 0}}
        pending = store.log.append_async(actor, TYPES[i % len(TYPES)], data, expected=heads[actor], timestamp_ms=ts)
        heads[actor] = Head(pending.event.seq, pending.event.hash)
    assert pending is not None
    pending.wait(WAIT)


def _expected(store: Store, keep: Callable[[Event], bool]) -> list[bytes]:
    """The hashes of every event ``keep`` accepts, in (timestamp, feed position) order, read the plain way."""
    rows = []
    for entry in store.log.feed():
        event = store.log.at(entry.actor, entry.seq)
        if keep(event):
            rows.append((event.timestamp_ms, entry.position, event.hash))
    return [h for _, _, h in sorted(rows)]


def _pages(store: Store, query: Query, **kw: Any) -> Iterator[SearchPage]:
    after = None
    while True:
        page = search(store, query, after=after, **kw)
        yield page
        if page.next is None:
            return
        after = page.next


def _all(store: Store, query: Query, **kw: Any) -> list[bytes]:
    return [e.hash for page in _pages(store, query, **kw) for e in page.events]


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """A home of 100,000 events, the last 3,000 of them appended after the index was brought up to date."""
    with Store(tmp_path_factory.mktemp("search") / "store", durability="buffered") as store:
        _fill(store, 97_000)
        catch_up(store)
        _fill(store, 3_000, start=97_000)
        yield store


def test_search_pages_through_100k_events_in_time_order_without_duplicates_or_gaps(big: Store) -> None:
    expected = _expected(big, lambda e: True)
    assert len(expected) == 100_000
    found = _all(big, Query(), limit=MAX_LIMIT)
    assert found == expected


def test_search_by_actors_types_and_time_range_returns_exactly_the_matching_events(big: Store) -> None:
    actors = (ACTORS[1], ACTORS[4])
    query = Query(actors=actors, types=("wasm/*", TYPES[2]), since_ms=1_020_000, until_ms=1_060_000)

    def keep(e: Event) -> bool:
        return (e.actor in actors and (e.type.startswith("wasm/") or e.type == TYPES[2])
                and 1_020_000 <= e.timestamp_ms < 1_060_000)

    expected = _expected(big, keep)
    assert 5_000 < len(expected) < 30_000
    assert _all(big, query, limit=333) == expected


def test_search_by_type_alone_merges_every_type_under_a_prefix(big: Store) -> None:
    expected = _expected(big, lambda e: e.type.startswith("theater:simple/") and e.timestamp_ms >= 1_095_000)
    assert _all(big, Query(types=("theater:simple/*",), since_ms=1_095_000), limit=500) == expected


def test_text_search_stops_at_its_bound_and_its_cursor_continues_exactly(big: Store) -> None:
    def match(e: Event) -> bool:
        return str(e.data["params"][0]).endswith("77")

    query = Query(since_ms=1_090_000, text="77")
    pages = list(_pages(big, query, match=match, limit=50, max_decode=1_000))
    assert any(p.partial for p in pages)  # the bound, not the limit, ended some pages
    assert all(p.scanned <= 1_001 for p in pages)  # 1,000 decoded, and the previous page's last entry
    found = [e.hash for p in pages for e in p.events]
    assert found == _expected(big, lambda e: e.timestamp_ms >= 1_090_000 and match(e))


def test_scan_bound_holds_when_no_entry_matches(big: Store) -> None:
    pages = list(_pages(big, Query(actors=(ACTORS[0],), types=("no/such-type",)), max_scan=4_000))
    assert all(p.events == () for p in pages)
    assert all(p.scanned <= 4_000 for p in pages)
    assert len(pages) > 3 and pages[-1].next is None


def test_events_appended_between_pages_are_neither_repeated_nor_skipped(tmp_path: Path) -> None:
    with Store(tmp_path / "store", durability="buffered") as store:
        _fill(store, 2_000)
        first = search(store, Query(types=("wasm/call",)), limit=100)
        assert first.next is not None
        _fill(store, 2_000, start=2_000)  # later timestamps: after the cursor
        rest = _all_after(store, Query(types=("wasm/call",)), first.next)
        found = [e.hash for e in first.events] + rest
        assert found == _expected(store, lambda e: e.type == "wasm/call")


def _all_after(store: Store, query: Query, after: str) -> list[bytes]:
    out: list[bytes] = []
    cursor: str | None = after
    while cursor is not None:
        page = search(store, query, after=cursor, limit=100)
        out.extend(e.hash for e in page.events)
        cursor = page.next
    return out


def test_read_only_store_searches_the_unindexed_tail_from_the_feed(tmp_path: Path) -> None:
    path = tmp_path / "store"
    with Store(path, durability="buffered") as store:
        _fill(store, 1_500)
        catch_up(store)
        _fill(store, 700, start=1_500)
    with Store(path, readonly=True) as store:
        with store.env.read() as txn:
            assert read_watermark(txn, store.env.dbs) == 1_500  # nothing indexed the last 700
        assert _all(store, Query(actors=(ACTORS[3],)), limit=64) == _expected(store, lambda e: e.actor == ACTORS[3])


def test_hostile_type_names_cannot_break_the_index(tmp_path: Path) -> None:
    long_type = "x/" + "y" * 2_000
    nul_type = "wasm/call\x00evil"
    with Store(tmp_path / "store", durability="buffered") as store:
        _fill(store, 50)
        actor = ACTORS[0]
        head = store.log.head(actor)
        for type_ in (long_type, nul_type, "wasm/call\x01"):
            event = store.log.append(actor, type_, {"n": 1}, expected=head, timestamp_ms=1_000_010)
            head = Head(event.seq, event.hash)
        assert [store.log.get(h).type for h in _all(store, Query(types=(long_type,)))] == [long_type]
        assert [store.log.get(h).type for h in _all(store, Query(types=(nul_type,)))] == [nul_type]
        exact = _all(store, Query(types=("wasm/call",)))
        assert exact == _expected(store, lambda e: e.type == "wasm/call")
        under = _all(store, Query(types=("wasm/call*",)))
        assert under == _expected(store, lambda e: e.type.startswith("wasm/call"))


def test_altered_cursor_is_refused(tmp_path: Path) -> None:
    with Store(tmp_path / "store", durability="buffered") as store:
        _fill(store, 300)
        page = search(store, Query(), limit=10)
        assert page.next is not None
        raw = bytearray(base64.urlsafe_b64decode(page.next + "=" * (-len(page.next) % 4)))
        raw[9] ^= 1  # a later feed position: skip events the client was not meant to skip
        forged = base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
        with pytest.raises(SearchCursorError, match="check does not match"):
            search(store, Query(), after=forged)
        with pytest.raises(SearchCursorError, match="not base64url|wrong length"):
            search(store, Query(), after="not a cursor!")


def test_cursor_of_another_search_is_refused(tmp_path: Path) -> None:
    with Store(tmp_path / "store", durability="buffered") as store:
        _fill(store, 300)
        page = search(store, Query(types=("wasm/call",)), limit=10)
        assert page.next is not None
        with pytest.raises(SearchCursorError, match="belongs to another search"):
            search(store, Query(types=("wasm/result",)), after=page.next)


def test_deliveries_are_found_by_the_cause_they_name(tmp_path: Path) -> None:
    sender, receiver = ACTORS[0], ACTORS[1]
    with Store(tmp_path / "store", durability="buffered") as store:
        _fill(store, 200)
        sent = store.log.append(sender, "theater:simple/message-server-host/send", {"params": ["x", b"m"]},
                                expected=store.log.head(sender), timestamp_ms=1_000_100)
        catch_up(store)  # one delivery indexed, one in the tail
        head = store.log.head(receiver)
        for n in range(2):
            data = {"cause": sent.hash, "state": None, "export": "handle-send", "params": [b"m"]}
            event = store.log.append(receiver, "wasm/call", data, expected=head, timestamp_ms=1_000_200 + n)
            head = Head(event.seq, event.hash)
            if n == 0:
                catch_up(store)
        found = _all(store, Query(cause=sent.hash))
        assert found == _expected(store, lambda e: e.type == "wasm/call" and e.data.get("cause") == sent.hash)
        assert len(found) == 2
        assert _all(store, Query(cause=bytes(32))) == []
