"""Causal links: a delivery from another actor records, in its ``wasm/call``, the sender's event it follows, and
``theater verify`` checks every link against the sender's chain (``theater.causes``); a forged one is flagged."""

from __future__ import annotations

import copy
import os
import uuid
from pathlib import Path

import pytest

from store import EMPTY, Event, Head, Store
from tests.components import wat
from theater.causes import check_links
from theater.porcelain import verify_actor
from theater.porcelain.forms import event_json
from theater.runtime import Theater

MSG = ["message-server"]
SEND = "theater:simple/message-server-host/send"
REQUEST = "theater:simple/message-server-host/request"


def to(actor: str, *rest: bytes) -> bytes:
    return b"\0".join([actor.encode(), *rest])


def calls(theater: Theater, actor: str, export_end: str) -> list[Event]:
    return [e for e in theater.events(actor) if e.type == "wasm/call" and e.data["export"].endswith(export_end)]


@pytest.fixture
def start(theater, manifest):
    def start(name: str, component: str) -> str:
        return theater.start(manifest(name, component, MSG))

    return start


def test_send_delivery_names_the_senders_send_event(theater, start):
    echo = start("echo", wat.echo_actor())
    forwarder = start("forwarder", wat.forwarder_actor())
    theater.send(forwarder, to(echo, b"hello"))
    theater.request(echo, b"sync")  # after the forwarded message: it has been handled
    sent = [e for e in theater.events(forwarder) if e.type == SEND]
    delivered = calls(theater, echo, "handle-send")
    assert len(sent) == 1 and [e.data["params"] for e in delivered] == [[b"hello"]]
    assert delivered[0].data["cause"] == sent[0].hash
    assert event_json(delivered[0])["cause"] == sent[0].hash.hex()
    report = check_links(theater.store, uuid.UUID(echo))
    assert report.ok and report.links == 1


def test_request_delivery_names_the_event_before_the_senders_request(theater, start):
    counter = start("counter", wat.counter_actor())
    forwarder = start("forwarder", wat.forwarder_actor())
    theater.request(forwarder, to(counter, b"ping"))
    asked = [e for e in theater.events(forwarder) if e.type == REQUEST]
    delivered = calls(theater, counter, "handle-request")
    assert len(asked) == 1 and len(delivered) == 1
    assert delivered[0].data["cause"] == asked[0].parent  # the request's own event records the answer: after
    assert check_links(theater.store, uuid.UUID(counter)).ok
    assert verify_actor(theater.store, uuid.UUID(counter)).ok


def test_messages_from_outside_every_actor_carry_no_cause(theater, start):
    echo = start("echo", wat.echo_actor())
    theater.send(echo, b"from the api")
    theater.request(echo, b"from the api too")
    for event in theater.events(echo):
        if event.type == "wasm/call":
            assert "cause" not in event.data and event_json(event)["cause"] is None
    assert check_links(theater.store, uuid.UUID(echo)).links == 0


def _rewrite(store: Store, actor: str, edit) -> None:
    """Rewrite the actor's chain in place, as an attacker holding the whole record would: ``edit(data)`` changes
    each delivery's data; the chain is then written again with the store's own encoding, so every hash and link
    of it is right."""
    key = uuid.UUID(actor)
    events = list(store.log.events(key))
    with store.env.env.begin(write=True) as txn:
        for event in events:
            txn.delete(key.bytes + event.seq.to_bytes(8, "big"), db=store.env.dbs["events"])
        txn.delete(key.bytes, db=store.env.dbs["heads"])
    head = EMPTY
    for event in events:
        data = copy.deepcopy(event.data)
        if event.type == "wasm/call" and data["export"].endswith(("handle-send", "handle-request")):
            edit(data)
        written = store.log.append(key, event.type, data, expected=head, timestamp_ms=event.timestamp_ms)
        head = Head(written.seq, written.hash)


@pytest.fixture
def delivered(tmp_path: Path, manifest) -> tuple[Path, str, str, str]:
    """A closed home where a forwarder sent echo one message and a second echo one too: (home, echo, echo2,
    forwarder)."""
    home = tmp_path / "links"
    with Theater(home) as theater:
        echo = theater.start(manifest("echo", wat.echo_actor(), MSG))
        echo2 = theater.start(manifest("echo2", wat.echo_actor(), MSG))
        forwarder = theater.start(manifest("forwarder", wat.forwarder_actor(), MSG))
        theater.send(forwarder, to(echo, b"hello"))
        theater.send(forwarder, to(echo2, b"other"))
        theater.request(echo, b"sync")
        theater.request(echo2, b"sync")
    return home, echo, echo2, forwarder


def _verify_forged(home: Path, actor: str, edit) -> tuple[object, object]:
    with Store(home / "store") as store:
        _rewrite(store, actor, edit)
        report = verify_actor(store, uuid.UUID(actor))
    return report, report.links


def test_a_chain_rewritten_unchanged_still_verifies(delivered):
    home, echo, _, _ = delivered
    report, links = _verify_forged(home, echo, lambda data: None)
    assert report.ok and links.ok and links.links == 1


def test_forged_cause_naming_no_event_is_flagged_by_verify(delivered):
    home, echo, _, _ = delivered

    def forge(data):
        if "cause" in data:
            data["cause"] = os.urandom(32)

    report, links = _verify_forged(home, echo, forge)
    assert report.integrity.ok and report.replay.ok  # every hash holds and the guest does the same
    assert not report.ok and "no event of this home has that hash" in links.problem.detail


def test_forged_cause_naming_a_send_to_another_actor_is_flagged_by_verify(delivered):
    home, echo, echo2, forwarder = delivered
    with Store(home / "store", readonly=True) as store:
        to_echo2 = [e for e in store.log.events(uuid.UUID(forwarder)) if e.type == SEND][1]
        assert to_echo2.data["params"][0] == echo2

    def forge(data):
        if "cause" in data:
            data["cause"] = to_echo2.hash

    report, links = _verify_forged(home, echo, forge)
    assert not report.ok and "addressed to another actor" in links.problem.detail


def test_forged_cause_naming_an_event_that_is_no_send_is_flagged_by_verify(delivered):
    home, echo, _, forwarder = delivered
    with Store(home / "store", readonly=True) as store:
        created = store.log.at(uuid.UUID(forwarder), 0)

    def forge(data):
        if "cause" in data:
            data["cause"] = created.hash

    report, links = _verify_forged(home, echo, forge)
    assert not report.ok and "'actor/created' event" in links.problem.detail


def test_forged_cause_claiming_a_message_from_the_api_came_from_an_actor_is_flagged_by_verify(delivered):
    home, echo, _, forwarder = delivered
    with Store(home / "store", readonly=True) as store:
        sent = [e for e in store.log.events(uuid.UUID(forwarder)) if e.type == SEND][0]

    def forge(data):  # the request from the API ("sync") is made to look like the forwarder's message too
        data["cause"] = sent.hash

    report, links = _verify_forged(home, echo, forge)
    assert not report.ok and "delivered twice" in links.problem.detail


def test_chain_recorded_before_links_existed_still_verifies(delivered):
    home, echo, _, _ = delivered
    report, links = _verify_forged(home, echo, lambda data: data.pop("cause", None))
    assert report.ok and links.ok and links.links == 0


def test_search_by_cause_finds_where_a_message_went(theater, start):
    from theater.porcelain.search import search_events

    echo = start("echo", wat.echo_actor())
    forwarder = start("forwarder", wat.forwarder_actor())
    theater.send(forwarder, to(echo, b"follow me"))
    theater.request(echo, b"sync")
    (sent,) = [e for e in theater.events(forwarder) if e.type == SEND]
    page = search_events(theater.store, cause=sent.hash.hex())
    assert [(str(e.actor), e.data["params"]) for e in page.events] == [(echo, [b"follow me"])]
