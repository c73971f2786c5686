"""Passivation at scale: 20,000 component-text actors started, messaged, passivated, brought back by their next
message and passivated again, and a sample of their chains verified by replay.

Each actor is passivated right after its message: a runtime that gives every live actor a thread cannot hold
20,000 at once (``can't start new thread`` near 9,000 on the reference machine), and a passivated top-level actor
leaves memory, thread and all.
"""

from __future__ import annotations

import random
import uuid

import pytest

from replay import Replayer
from store import verify_chain
from tests.components import wat
from theater.runtime import Theater
from theater.status import ActorStatus

ACTORS = 20_000
SAMPLE = 40


def le64(n: int) -> bytes:
    return n.to_bytes(8, "little")


@pytest.mark.slow
def test_twenty_thousand_actors_passivate_come_back_and_replay(tmp_path, manifest):
    path = manifest("counter", wat.counter_actor(), ["message-server"])
    with Theater(tmp_path / "home", durability="buffered", request_timeout=30.0) as theater:
        ids = []
        for _ in range(ACTORS):
            actor = theater.start(path)
            theater.send(actor, b"+")
            assert theater.passivate(actor)
            ids.append(actor)
        assert theater.router.count() == 0  # every one of them left memory
        assert theater.passivation.evicted == ACTORS

        for actor in ids:
            assert theater.request(actor, b"+") == le64(2)
            assert theater.passivate(actor)
        assert theater.router.count() == 0

        listed = theater.actors(limit=ACTORS)
        assert sorted(ids) == [row["id"] for row in listed]
        assert {row["status"] for row in listed} == {ActorStatus.PASSIVATED}

        for actor in random.Random(14).sample(ids, SAMPLE):
            key = uuid.UUID(actor)
            assert verify_chain(theater.store, key).ok
            report = Replayer(theater.store).replay(key)
            assert report.ok, (actor, report.divergence)
            reasons = [e.data["reason"] for e in theater.store.log.events(key) if e.type == "wasm/instantiate"]
            assert reasons == ["start", "activate"]
