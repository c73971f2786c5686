"""The message-server handler: send, request (immediate, deferred, cancelled), channels, between actors and clients.

Forwarder messages are ``target id + NUL + payload``: the forwarder sends or requests ``payload`` to ``target``.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.components import wat
from theater.actor import HANDLE_CHANNEL_CLOSE, HANDLE_CHANNEL_MESSAGE, HANDLE_CHANNEL_OPEN, HANDLE_REQUEST
from theater.errors import (
    ActorNotFound,
    ActorNotRunning,
    ChannelClosed,
    ChannelRejected,
    MessageError,
    MessageTooLarge,
    ReceiveTimeout,
    ReplyTimeout,
    RequestCancelled,
)

MSG = ["message-server"]
WAIT = 10.0  # seconds any single wait may take before the test gives up


def le64(n: int) -> bytes:
    return n.to_bytes(8, "little")


def to(actor: str, *rest: bytes) -> bytes:
    """A forwarder message: ``actor\\0rest[0]\\0rest[1]...``."""
    return b"\0".join([actor.encode(), *rest])


def last_request_id(theater, actor_id: str) -> str:
    """The request id the actor's last handle-request was given (from its chain)."""
    calls = [e for e in theater.events(actor_id) if e.type == "wasm/call" and e.data["export"] == HANDLE_REQUEST]
    return calls[-1].data["params"][0]


@pytest.fixture
def start(theater, manifest):
    """``start(name, wat_text, *extra_handlers)``: start an actor granted message-server (and the extras)."""

    def start(name: str, component: str, *handlers: str, **options) -> str:
        return theater.start(manifest(name, component, [*MSG, *handlers], **options))

    return start


# send


def test_send_from_the_api_is_handled_before_send_returns(theater, start):
    echo = start("echo", wat.echo_actor())
    theater.send(echo, b"first")
    assert theater.state(echo) == b"first"


def test_send_between_actors_delivers_the_payload(theater, start, settle):
    echo = start("echo", wat.echo_actor())
    forwarder = start("forwarder", wat.forwarder_actor())
    theater.send(forwarder, to(echo, b"hello"))
    assert theater.state(forwarder) == b""  # send returned ok
    settle(theater, echo)
    assert theater.state(echo) == b"hello"


def test_sends_between_actors_arrive_in_order(theater, start, settle):
    component = wat.actor_wat(send=wat.append_msg(b","))
    collector = start("collector", component)
    forwarder = start("forwarder", wat.forwarder_actor())
    for n in range(5):
        theater.send(forwarder, to(collector, str(n).encode()))
    settle(theater, collector)
    assert theater.state(collector) == b",0,1,2,3,4"


def test_send_to_an_unknown_actor_returns_err(theater, start):
    forwarder = start("forwarder", wat.forwarder_actor())
    nobody = "00000000-0000-4000-8000-000000000000"
    theater.send(forwarder, to(nobody, b"hello"))
    assert theater.state(forwarder) == wat.ERR_MARKER + f"no actor {nobody}".encode()


def test_send_to_a_malformed_actor_id_returns_err(theater, start):
    forwarder = start("forwarder", wat.forwarder_actor())
    theater.send(forwarder, b"not-an-id\0hello")
    assert theater.state(forwarder).startswith(wat.ERR_MARKER + b"invalid actor id 'not-an-id': expected a UUID")


def test_message_above_the_size_limit_is_refused(theater, start):
    echo = start("echo", wat.echo_actor(), limits={"max_message_bytes": 16})
    theater.send(echo, b"x" * 16)
    with pytest.raises(MessageTooLarge, match=rf"message of 17 bytes is larger than actor {echo}'s limit of 16$"):
        theater.send(echo, b"x" * 17)
    assert theater.state(echo) == b"x" * 16


def test_send_between_actors_above_the_size_limit_returns_err(theater, start):
    echo = start("echo", wat.echo_actor(), limits={"max_message_bytes": 4})
    forwarder = start("forwarder", wat.forwarder_actor())
    theater.send(forwarder, to(echo, b"too long"))
    expected = f"message of 8 bytes is larger than actor {echo}'s limit of 4"
    assert theater.state(forwarder) == wat.ERR_MARKER + expected.encode()


def test_large_message_round_trips_and_its_chain_replays(theater, start):
    echo = start("echo", wat.echo_actor())
    message = bytes(range(256)) * 400  # 100 KiB: the recorded params and output go to the blob store
    assert theater.request(echo, message) == message
    call, result = theater.events(echo)[-2:]
    assert call.data["params"][1] == message
    assert result.data["output"] == [[{"some": message}]]


def test_messages_from_many_threads_are_each_handled_once(theater, start):
    counter = start("counter", wat.counter_actor())
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: theater.request(counter, b""), range(40)))
    assert sorted(answers, key=lambda raw: int.from_bytes(raw, "little")) == [le64(n) for n in range(1, 41)]
    assert theater.state(counter) == le64(40)


def test_send_to_an_unknown_actor_from_the_api_raises(theater):
    nobody = "00000000-0000-4000-8000-000000000000"
    with pytest.raises(ActorNotFound, match=f"^no actor {nobody}$"):
        theater.send(nobody, b"hello")


# request


def test_request_from_the_api_gets_the_response(theater, start):
    echo = start("echo", wat.echo_actor())
    assert theater.request(echo, b"ping") == b"ping"


def test_ping_pong_between_a_forwarder_and_a_counter(theater, start):
    counter = start("counter", wat.counter_actor())
    forwarder = start("forwarder", wat.forwarder_actor())
    answers = [theater.request(forwarder, to(counter, b"ping")) for _ in range(3)]
    assert answers == [le64(1), le64(2), le64(3)]
    assert theater.state(counter) == le64(3)
    assert theater.state(forwarder) == le64(3)


def test_request_chain_through_two_forwarders(theater, start):
    c = start("c", wat.echo_actor())
    b = start("b", wat.forwarder_actor())
    a = start("a", wat.forwarder_actor())
    assert theater.request(a, to(b, c.encode(), b"payload")) == b"payload"
    assert theater.state(a) == b"payload"
    assert theater.state(b) == b"payload"
    request_b = [e for e in theater.events(a) if e.type == "theater:simple/message-server-host/request"]
    assert [e.data for e in request_b] == [
        {"params": [b, c.encode() + b"\0payload"], "result": {"ok": b"payload"}}
    ]


def test_request_to_self_returns_err_at_once(theater, start):
    forwarder = start("forwarder", wat.forwarder_actor())
    started = time.monotonic()
    answer = theater.request(forwarder, to(forwarder, b"me?"))
    assert time.monotonic() - started < 1.0
    expected = f"request from actor {forwarder} to itself would deadlock"
    assert answer == wat.ERR_MARKER + expected.encode()


def test_request_cycle_ends_in_the_timeout_not_a_hang(theaters, manifest):
    theater = theaters(request_timeout=1.0)
    a = theater.start(manifest("a", wat.forwarder_actor(), MSG))
    b = theater.start(manifest("b", wat.forwarder_actor(), MSG))
    started = time.monotonic()
    # a asks b, b asks a; a is busy waiting for b, so b's request waits in a's mailbox.
    answer = theater.request(a, to(b, a.encode(), b"loop"), timeout=WAIT)
    elapsed = time.monotonic() - started
    assert answer == wat.ERR_MARKER + f"request to {b} got no answer within 1.0 s".encode()
    assert 1.0 <= elapsed < 3.0
    assert theater.status(a) == theater.status(b) == "running"


def test_request_to_an_unknown_actor_returns_err(theater, start):
    forwarder = start("forwarder", wat.forwarder_actor())
    nobody = "00000000-0000-4000-8000-000000000000"
    assert theater.request(forwarder, to(nobody, b"?")) == wat.ERR_MARKER + f"no actor {nobody}".encode()


def test_request_without_answer_times_out_from_the_api(theater, start):
    deferred = start("deferred", wat.deferred_actor())
    started = time.monotonic()
    with pytest.raises(ReplyTimeout, match=rf"^request to {deferred} got no answer within 0.2 s$"):
        theater.request(deferred, b"?", timeout=0.2)
    assert time.monotonic() - started < 1.0


def test_request_after_send_to_the_same_actor_sees_the_send(theater, start):
    component = wat.actor_wat(send=wat.seq(wat.send_to(), wat.request_to()))
    both = start("both", component)
    counter = start("counter", wat.counter_actor())
    theater.send(both, to(counter, b"x"))
    assert theater.state(both) == le64(2)  # the send was counted before the request


# deferred responses


def test_deferred_response_answers_the_waiting_requester(theater, start):
    deferred = start("deferred", wat.deferred_actor())
    reply = theater.router.deliver_request(theater.actor(deferred), b"question")
    theater.send(deferred, b"later answer")
    assert reply.result(WAIT) == b"later answer"
    assert theater.state(deferred) == b""  # respond-to-request returned ok


def test_a_request_put_off_by_an_actor_that_is_then_given_up_is_answered_at_once(theater, start):
    """An actor the runtime gives up (``abandon``: its start or its spawn's record was lost) answers what it put
    off with ActorNotRunning, as a stopped or failed one does, instead of leaving its requesters to time out."""
    deferred = start("deferred", wat.deferred_actor())
    handle = theater.actor(deferred)
    reply = theater.router.deliver_request(handle, b"question")
    wait_for_outstanding(theater, deferred)
    handle.submit(lambda: handle.abandon("given up by the test")).result(WAIT)
    started = time.monotonic()
    with pytest.raises(ActorNotRunning, match="given up by the test"):
        reply.result(WAIT)
    assert time.monotonic() - started < WAIT / 2  # answered, not timed out
    assert handle.outstanding == {}


def test_deferred_response_to_a_forwarding_actor(theater, start):
    deferred = start("deferred", wat.deferred_actor())
    forwarder = start("forwarder", wat.forwarder_actor())
    reply = theater.router.deliver_request(theater.actor(forwarder), to(deferred, b"question"))
    # The forwarder's request is handled by the deferred actor before this send reaches it.
    request_id = wait_for_outstanding(theater, deferred)
    assert theater.state(deferred) == request_id.encode()
    theater.send(deferred, b"answer")
    assert reply.result(WAIT) == b"answer"
    assert theater.actor(deferred).outstanding == {}


def wait_for_outstanding(theater, actor_id: str) -> str:
    """The id of the actor's single outstanding request, once its handle-request has run."""
    actor = theater.actor(actor_id)
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        actor.submit(lambda: None).result(WAIT)  # every operation queued so far has run
        if actor.outstanding:
            [request_id] = actor.outstanding
            return request_id
    raise AssertionError("no request arrived")


def test_respond_to_an_unknown_request_returns_err(theater, start):
    component = wat.actor_wat(send=wat.respond_to_request(b"no-such-request", wat.MSG))
    actor = start("responder", component)
    theater.send(actor, b"answer")
    assert theater.state(actor) == wat.ERR_MARKER + b"no outstanding request no-such-request"


def test_respond_twice_to_one_request_returns_err_the_second_time(theater, start, settle):
    component = wat.actor_wat(
        request=wat.seq(wat.set_state(wat.PARAM), wat.respond(None)),
        send=wat.respond_to_request(wat.HEAD, wat.TAIL),  # message: request id + NUL + response
    )
    actor = start("responder", component)
    reply = theater.router.deliver_request(theater.actor(actor), b"question")
    settle(theater, actor)
    request_id = last_request_id(theater, actor)
    theater.send(actor, to(request_id, b"first"))
    assert theater.state(actor) == b""
    theater.send(actor, to(request_id, b"second"))
    assert theater.state(actor) == wat.ERR_MARKER + f"no outstanding request {request_id}".encode()
    assert reply.result(WAIT) == b"first"


def cancelling_component():
    return wat.actor_wat(
        request=wat.seq(wat.set_state(wat.PARAM), wat.respond(None)),
        send=wat.match_msg({b"list": wat.list_outstanding()}, wat.cancel_request(wat.STATE)),
    )


def test_cancel_request_gives_the_requester_an_error(theater, start):
    actor = start("canceller", cancelling_component())
    reply = theater.router.deliver_request(theater.actor(actor), b"question")
    theater.send(actor, b"cancel")
    request_id = last_request_id(theater, actor)
    with pytest.raises(RequestCancelled, match=rf"^request {request_id} was cancelled by actor {actor}$"):
        reply.result(WAIT)
    assert theater.state(actor) == b""


def test_cancel_an_unknown_request_returns_err(theater, start):
    actor = start("canceller", cancelling_component(), init_state="nothing-pending")
    theater.send(actor, b"cancel")
    assert theater.state(actor) == wat.ERR_MARKER + b"no outstanding request nothing-pending"


def test_cancelled_request_between_actors_is_err_for_the_requester(theater, start):
    canceller = start("canceller", cancelling_component())
    forwarder = start("forwarder", wat.forwarder_actor())
    reply = theater.router.deliver_request(theater.actor(forwarder), to(canceller, b"question"))
    request_id = wait_for_outstanding(theater, canceller)
    theater.send(canceller, b"cancel")
    expected = f"request {request_id} was cancelled by actor {canceller}"
    assert reply.result(WAIT) == wat.ERR_MARKER + expected.encode()


def test_list_outstanding_requests_names_the_pending_ones(theater, start):
    actor = start("canceller", cancelling_component())
    theater.send(actor, b"list")
    assert theater.state(actor) == b""
    replies = [theater.router.deliver_request(theater.actor(actor), b"q") for _ in range(3)]
    theater.send(actor, b"list")
    listed = theater.state(actor).split(b"\n")
    assert len(listed) == 3
    assert listed == sorted(listed)
    assert {r.decode() for r in listed} == set(theater.actor(actor).outstanding)
    events = [e for e in theater.events(actor) if e.type.endswith("/list-outstanding-requests")]
    assert [e.data["result"] for e in events] == [[], [r.decode() for r in listed]]
    assert not any(r.done() for r in replies)


def test_outstanding_requests_fail_when_the_actor_stops(theater, start, settle):
    deferred = start("deferred", wat.deferred_actor())
    reply = theater.router.deliver_request(theater.actor(deferred), b"question")
    settle(theater, deferred)  # handled and deferred: a stop would otherwise jump ahead of it
    theater.stop(deferred)
    with pytest.raises(ActorNotRunning, match=rf"^actor {deferred} is stopped: actor {deferred} stopped$"):
        reply.result(WAIT)


# channels between a client and an actor


def channel_component(*, reject: bool = False, welcome: bytes | None = None):
    """Accepts (or rejects) channels; echoes every channel message back on its channel, except ``bye``, on which it
    closes the channel; records what it saw in its state."""
    opening = [wat.reject() if reject else wat.accept()]
    if welcome is not None:
        opening.append(wat.respond(welcome))
    return wat.actor_wat(
        channel_open=wat.seq(*opening, wat.store_msg()),
        channel_message=wat.match_msg(
            {b"bye": wat.close_channel(wat.PARAM)},
            wat.seq(wat.send_on_channel(wat.PARAM, wat.MSG), wat.store_msg()),
        ),
        channel_close=wat.set_state(b"closed"),
    )


def test_client_channel_is_opened_with_the_welcome_message(theater, start):
    actor = start("chat", channel_component(welcome=b"welcome!"))
    channel = theater.open_channel(actor, b"hello")
    assert channel.welcome == b"welcome!"
    assert theater.state(actor) == b"hello"
    [opened] = [e for e in theater.events(actor) if e.type == "wasm/call" and e.data["export"] == HANDLE_CHANNEL_OPEN]
    assert opened.data["params"] == [channel.id, b"hello"]


def test_client_channel_carries_messages_both_ways(theater, start):
    actor = start("chat", channel_component())
    channel = theater.open_channel(actor, b"hello")
    assert channel.welcome is None
    for text in (b"one", b"two"):
        channel.send(text)
        assert channel.receive(timeout=WAIT) == text
    assert theater.state(actor) == b"two"
    sends = [e for e in theater.events(actor) if e.type == "theater:simple/message-server-host/send-on-channel"]
    assert [e.data["params"] for e in sends] == [[channel.id, b"one"], [channel.id, b"two"]]


def test_client_closing_the_channel_runs_the_actor_close_handler(theater, start):
    actor = start("chat", channel_component())
    channel = theater.open_channel(actor, b"hello")
    channel.close()
    assert theater.state(actor) == b"closed"
    closes = [e for e in theater.events(actor) if e.type == "wasm/call" and e.data["export"] == HANDLE_CHANNEL_CLOSE]
    assert [e.data["params"] for e in closes] == [[channel.id]]
    with pytest.raises(ChannelClosed, match=rf"^no open channel {channel.id}$"):
        channel.send(b"after close")


def test_actor_closing_the_channel_ends_the_client_stream(theater, start):
    actor = start("chat", channel_component())
    channel = theater.open_channel(actor, b"hello")
    channel.send(b"bye")
    assert channel.receive(timeout=WAIT) is None
    assert theater.state(actor) == b""  # close-channel returned ok
    with pytest.raises(ChannelClosed, match=rf"^no open channel {channel.id}$"):
        channel.send(b"after close")


def test_client_receive_times_out_when_nothing_arrives(theater, start):
    actor = start("chat", channel_component())
    channel = theater.open_channel(actor, b"hello")
    with pytest.raises(ReceiveTimeout, match=rf"^no message on channel {channel.id} within 0.05 s$"):
        channel.receive(timeout=0.05)


def test_rejected_client_channel_raises_with_the_actor_message(theater, start):
    actor = start("bouncer", channel_component(reject=True, welcome=b"members only"))
    with pytest.raises(ChannelRejected, match=rf"^actor {actor} rejected the channel: b'members only'$"):
        theater.open_channel(actor, b"let me in")
    assert theater.state(actor) == b"let me in"


def test_rejected_client_channel_without_message(theater, start):
    actor = start("bouncer", channel_component(reject=True))
    with pytest.raises(ChannelRejected, match=rf"^actor {actor} rejected the channel$"):
        theater.open_channel(actor, b"let me in")


def test_client_channel_closes_when_the_actor_fails(theater, start):
    component = wat.actor_wat(channel_message=wat.match_msg({b"trap": wat.trap()}, wat.store_msg()))
    actor = start("fragile", component)
    channel = theater.open_channel(actor, b"hello")
    with pytest.raises(Exception, match=r"failed \(trap\)"):
        channel.send(b"trap")
    assert channel.receive(timeout=WAIT) is None
    assert theater.status(actor) == "failed"


def test_client_channel_closes_when_the_actor_stops(theater, start):
    actor = start("chat", channel_component())
    channel = theater.open_channel(actor, b"hello")
    theater.stop(actor)
    assert channel.receive(timeout=WAIT) is None


# channels between actors


def opener_component():
    """handle-request ``target\\0initial`` opens a channel (answers its id); handle-send ``channel\\0payload``
    sends on it; a channel message is logged, then the opener closes that channel."""
    return wat.actor_wat(
        request=wat.open_channel_to(),
        send=wat.send_on_channel(),
        channel_message=wat.seq(wat.log(wat.MSG), wat.close_channel(wat.PARAM)),
    )


def test_channel_between_actors_is_opened_used_both_ways_and_closed(theater, start, settle):
    acceptor = start("acceptor", channel_component(welcome=b"hi"))
    opener = start("opener", opener_component())
    channel_id = theater.request(opener, to(acceptor, b"hello")).decode()
    assert theater.state(acceptor) == b"hello"
    theater.send(opener, to(channel_id, b"ping"))
    assert theater.state(opener) == b""  # send-on-channel returned ok
    settle(theater, acceptor, opener, acceptor)
    # acceptor stored and echoed ping; the opener logged it and closed; the acceptor saw the close.
    assert list(theater.actor(opener).logs) == ["ping"]
    assert theater.state(acceptor) == b"closed"
    exports = [e.data["export"] for e in theater.events(acceptor) if e.type == "wasm/call"][1:]
    assert exports == [HANDLE_CHANNEL_OPEN, HANDLE_CHANNEL_MESSAGE, HANDLE_CHANNEL_CLOSE]


def test_send_on_a_closed_channel_returns_err(theater, start, settle):
    acceptor = start("acceptor", channel_component())
    opener = start("opener", opener_component())
    channel_id = theater.request(opener, to(acceptor, b"hello")).decode()
    theater.send(opener, to(channel_id, b"bye"))  # the acceptor closes the channel
    settle(theater, acceptor, opener)
    theater.send(opener, to(channel_id, b"too late"))
    assert theater.state(opener) == wat.ERR_MARKER + f"no open channel {channel_id}".encode()


def test_send_on_an_unknown_channel_returns_err(theater, start):
    opener = start("opener", opener_component())
    theater.send(opener, b"no-such-channel\0hello")
    assert theater.state(opener) == wat.ERR_MARKER + b"no open channel no-such-channel"


def test_close_an_unknown_channel_returns_err(theater, start):
    closer = start("closer", wat.actor_wat(send=wat.close_channel()))
    theater.send(closer, b"no-such-channel")
    assert theater.state(closer) == wat.ERR_MARKER + b"no open channel no-such-channel"


def test_channel_between_actors_rejected_returns_err_with_the_message(theater, start):
    acceptor = start("bouncer", channel_component(reject=True, welcome=b"go away"))
    opener = start("opener", opener_component())
    answer = theater.request(opener, to(acceptor, b"hello"))
    assert answer == wat.ERR_MARKER + f"actor {acceptor} rejected the channel: b'go away'".encode()


def test_channel_to_self_returns_err(theater, start):
    opener = start("opener", opener_component())
    assert theater.request(opener, to(opener, b"hello")) == wat.ERR_MARKER + b"an actor cannot open a channel to itself"


def test_channel_is_only_usable_by_its_two_ends(theater, start):
    acceptor = start("acceptor", channel_component())
    opener = start("opener", opener_component())
    stranger = start("stranger", opener_component())
    channel_id = theater.request(opener, to(acceptor, b"hello")).decode()
    theater.send(stranger, to(channel_id, b"intrusion"))
    assert theater.state(stranger) == wat.ERR_MARKER + f"no open channel {channel_id}".encode()
    assert theater.state(acceptor) == b"hello"


@pytest.mark.parametrize("kind", [MessageTooLarge, ReplyTimeout, RequestCancelled, ReceiveTimeout, ChannelClosed,
                                  ChannelRejected])
def test_each_message_failure_is_still_a_message_error(kind):
    # Split by what the caller does next, but ``except MessageError`` still catches every one of them.
    assert issubclass(kind, MessageError)
