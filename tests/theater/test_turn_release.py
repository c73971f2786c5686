"""The operations of one scheduler turn share their release (``Actor.run_slice``), and nothing is held back by it:
a reply owed by an earlier operation of the turn goes out while a later one runs long or waits."""

from __future__ import annotations

import threading

import pytest

from replay.errors import GuestFault
from tests.components import wat
from theater.errors import ActorNotRunning

MSG = ["message-server"]
WAIT_S = 30


def hold(theater, actor_id):
    """Queue an operation that keeps the actor's worker until the returned event is set, so what is queued next
    runs in the same turn."""
    gate, taken = threading.Event(), threading.Event()
    actor = theater.router.get(actor_id)

    def op():
        taken.set()
        gate.wait(WAIT_S)

    actor.submit(op)
    assert taken.wait(WAIT_S)
    return actor, gate


def test_the_operations_of_one_turn_are_handed_over_together(theater, manifest):
    actor_id = theater.start(manifest("echo", wat.echo_actor(), MSG))
    actor, gate = hold(theater, actor_id)
    releaser = actor.stage.releaser
    calls = []
    hand_over = releaser.hand_over
    releaser.hand_over = lambda *args, **kwargs: calls.append(len(args[1])) or hand_over(*args, **kwargs)
    try:
        replies = [theater.router.deliver_request(actor, b"r%d" % i) for i in range(3)]
        gate.set()
        assert [reply.result(WAIT_S) for reply in replies] == [b"r0", b"r1", b"r2"]
    finally:
        del releaser.hand_over
    assert calls == [4]  # the held operation's answer and the three replies, in one hand-over


def test_a_reply_is_not_held_back_by_the_next_operation_of_the_turn_running_long(theater, manifest):
    limits = {"fuel_per_call": 10**12, "deadline_ms": 600_000}
    actor_id = theater.start(manifest("faulty", wat.faulty_actor(), MSG, limits=limits, on_err="fail"))
    actor, gate = hold(theater, actor_id)
    answered = theater.router.deliver_request(actor, b"ping")
    spinning = theater.router.deliver_request(actor, b"spin")
    gate.set()
    # The spin runs until it is stopped; the epoch tick of its call hands the reply before it over.
    assert answered.result(WAIT_S) == b"ping"
    assert not spinning.done()
    theater.stop(actor_id)
    with pytest.raises((GuestFault, ActorNotRunning)):
        spinning.result(WAIT_S)
