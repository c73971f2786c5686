"""The ``runtime`` handler keeps what it holds in memory bounded: the chain is where everything is kept."""

from __future__ import annotations

from tests.components import wat
from theater.actor import LOG_LINES

MSG = ["message-server"]


def test_an_actor_keeps_only_its_latest_log_lines_in_memory_and_the_chain_keeps_them_all(theater, manifest, settle,
                                                                                           events_of):
    lines = [f"line {i}" for i in range(LOG_LINES + 5)]
    component = wat.actor_wat(send=wat.seq(*(wat.log(line) for line in lines)))
    actor = theater.start(manifest("chatty", component, MSG))
    theater.send(actor, b"go")
    settle(theater, actor)
    assert list(theater.actor(actor).logs) == lines[-LOG_LINES:]
    logged = events_of(theater, actor, "theater:simple/runtime/log")
    assert [e.data["params"][0] for e in logged] == lines
