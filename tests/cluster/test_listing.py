"""Listing a key-value bucket (the leases, the actors, the nodes) on a real three-server JetStream cluster: every
live key, none deleted, whatever the listing process is doing meanwhile.

nats-py's ``KeyValue.keys()`` ended its listing when the server said nothing was pending, which the server says
as soon as it has *sent* the entries: a loaded process that had not read them yet listed some or none (CI showed
``theater cluster status`` with no leases at all, twice). ``Link.entries`` counts the entries with a pull consumer
before any is sent and reads until that many arrived.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from theater.cluster.config import ACTORS, LEASES, ClusterConfig
from theater.cluster.link import LIST_BATCH, Link

pytestmark = [pytest.mark.slow, pytest.mark.cluster]


@pytest.fixture
def link(nats_cluster):
    opened = Link(ClusterConfig.parse(nats_cluster.urls, "lister")).open()
    yield opened
    opened.close()


def test_a_listing_of_more_entries_than_one_fetch_has_every_live_key_and_no_deleted_one(link):
    keys = [f"k{i}" for i in range(LIST_BATCH * 2 + 7)]

    async def fill() -> None:
        await asyncio.gather(*(link.actors.put(key, key.encode()) for key in keys))
        await asyncio.gather(*(link.actors.delete(key) for key in keys[::10]))
        await link.actors.purge(keys[1])

    link.call(fill(), 120)
    gone = set(keys[::10]) | {keys[1]}
    listed = link.call(link.entries(ACTORS), 60)
    assert listed == {key: key.encode() for key in keys if key not in gone}
    assert link.call(link.entries(ACTORS, values=False), 60) == {key: b"" for key in keys if key not in gone}


def test_an_empty_bucket_lists_nothing_at_once(link):
    started = time.monotonic()
    assert link.call(link.entries(LEASES), 30) == {}
    assert time.monotonic() - started < 5  # no fetch waits out its timeout for entries that do not exist


def test_a_listing_process_too_busy_to_read_what_the_server_sent_still_lists_every_key(link):
    """The failure seen in CI: the process reads the server's answers late. Here the loop thread is held for a
    while at every step of the listing (a callback that blocks it, again and again), and writes go on meanwhile."""
    keys = [f"busy{i}" for i in range(300)]

    async def fill() -> None:
        await asyncio.gather(*(link.actors.put(key, b"n") for key in keys))

    link.call(fill(), 60)
    stop = threading.Event()

    async def hog() -> None:
        while not stop.is_set():
            time.sleep(0.003)  # holds the loop: what arrives meanwhile waits in the socket
            await asyncio.sleep(0)

    hogs = [link.spawn(hog()) for _ in range(10)]
    try:
        writes = 0
        for round_ in range(10):
            link.call(link.actors.put(f"late{round_}", b"n"), 30)  # written before the listing: must be in it
            writes += 1
            listed = link.call(link.entries(ACTORS, values=False), 60)
            assert set(keys) | {f"late{i}" for i in range(writes)} <= set(listed), round_
    finally:
        stop.set()
        for future in hogs:
            future.result(10)
