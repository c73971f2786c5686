"""The host interface: handlers run against theater.host's protocols alone, and Theater keeps only its embedding
API. Fakes stand in for the runtime here: if a handler needed anything beyond the protocols, these would fail."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from store import Head
from store.errors import StoreFullError
from theater.envelope import Envelope
from theater.errors import ChannelClosed, MessageTooLarge
from theater.handlers.message_server import MessageServerHandler
from theater.handlers.random import RandomHandler
from theater.host import ChannelAnswer, Endpoint
from theater.runtime import Theater


class FakeReservation:
    def __init__(self) -> None:
        self.released = False

    def release(self) -> None:
        self.released = True


class FakeChannels:
    def __init__(self) -> None:
        self.ends: dict[str, tuple[Endpoint, Endpoint]] = {}

    def open(self, channel_id: str, opener: Endpoint, acceptor: Endpoint) -> None:
        self.ends[channel_id] = (opener, acceptor)

    def peer(self, channel_id: str, me: Endpoint) -> Endpoint:
        ends = self.ends.get(channel_id)
        if ends is None:
            raise ChannelClosed(channel_id)
        return ends[1] if ends[0] is me else ends[0]

    def close(self, channel_id: str) -> None:
        self.ends.pop(channel_id, None)


class FakeRouter:
    """Records what a handler asks of the router; the target takes at most ``limit`` bytes."""

    def __init__(self, limit: int = 64) -> None:
        self.limit = limit
        self.channels = FakeChannels()
        self.delivered: list[tuple[str, Any, bytes]] = []
        self.places: list[FakeReservation] = []
        self.targets: dict[str, FakeActor] = {}

    def running(self, actor_id: str | uuid.UUID) -> FakeActor:
        return self.targets[str(actor_id)]

    target = running  # no cluster: the actors a guest may name are this runtime's

    def reserve(self, target: Endpoint, message: bytes) -> FakeReservation:
        if len(message) > self.limit:
            raise MessageTooLarge("target", size=len(message), limit=self.limit, declared=self.limit,
                                  call_limit=self.limit)
        place = FakeReservation()
        self.places.append(place)
        return place

    def deliver_send(self, target: Any, message: bytes, reservation: Any = None, envelope: Any = None
                     ) -> Future[None]:
        self.delivered.append(("send", target, message))
        return _done(None)

    def deliver_request(self, target: Any, message: bytes, envelope: Any = None) -> Future[bytes]:
        self.delivered.append(("request", target, message))
        return _done(b"answer to " + message)

    def deliver_channel_open(self, target: Any, channel_id: str, initial: bytes, envelope: Any = None
                             ) -> Future[ChannelAnswer]:
        self.delivered.append(("open", target, initial))
        return _done(ChannelAnswer(accepted=True, message=None))

    def deliver_channel_message(self, peer: Any, channel_id: str, message: bytes, reservation: Any = None,
                                envelope: Any = None) -> Future[None]:
        self.delivered.append(("channel", peer, message))
        return _done(None)

    def deliver_channel_close(self, peer: Any, channel_id: str, envelope: Any = None) -> Future[None]:
        self.delivered.append(("close", peer, b""))
        return _done(None)

    def wait_reply(self, reply: Future[Any], timeout: float | None, what: str, *, waiter: Any = None) -> Any:
        return reply.result(0)


class FakeActor:
    """Just what ``theater.host.ActorHost`` promises, and a list of deferred effects to run by hand."""

    def __init__(self, router: FakeRouter, name: str = "fake") -> None:
        self.id = uuid.uuid4()
        self.name = name
        self.source = f"{name}.toml"
        self.state: bytes | None = None
        self.outstanding: dict[str, Future[bytes]] = {}
        self.shutdown_data = None
        self.logs: list[str] = []
        self.stop_requested = threading.Event()
        self.router = router
        self.deferred: list[Callable[[BaseException | None], Any]] = []
        self.flushes = 0
        self.tape = FakeTape()

    def envelope(self) -> Envelope:
        return Envelope()

    def defer(self, effect: Callable[[BaseException | None], Any]) -> None:
        self.deferred.append(effect)

    def flush(self) -> None:
        self.flushes += 1

    def flush_committed(self) -> None:
        self.flushes += 1

    def settle(self, failed: BaseException | None) -> None:
        effects, self.deferred = self.deferred, []
        for effect in effects:
            effect(failed)


class FakeTape:
    """The recording a handler sees: its head, and the envelope the next event's hash goes to."""

    def __init__(self) -> None:
        self.head = Head(0, b"\x01" * 32)
        self.stamped: list[Envelope] = []

    def stamp_next(self, envelope: Envelope) -> None:
        self.stamped.append(envelope)


def _done(value: Any) -> Future[Any]:
    future: Future[Any] = Future()
    future.set_result(value)
    return future


def test_a_send_is_delivered_only_once_its_events_are_durable():
    router = FakeRouter()
    sender, target = FakeActor(router, "sender"), FakeActor(router, "target")
    router.targets[str(target.id)] = target
    functions = MessageServerHandler(sender, {}).functions()
    assert functions["send"](str(target.id), b"hello") == {"ok": None}
    assert router.delivered == []  # the place is kept, nothing is delivered before the commit
    sender.settle(None)
    assert router.delivered == [("send", target, b"hello")]


def test_a_send_whose_commit_failed_releases_its_place_and_delivers_nothing():
    router = FakeRouter()
    sender, target = FakeActor(router, "sender"), FakeActor(router, "target")
    router.targets[str(target.id)] = target
    MessageServerHandler(sender, {}).functions()["send"](str(target.id), b"hello")
    sender.settle(StoreFullError("/home", "no space left"))
    assert router.delivered == [] and [p.released for p in router.places] == [True]


def test_a_message_the_router_refuses_is_the_guests_err():
    router = FakeRouter(limit=4)
    sender, target = FakeActor(router, "sender"), FakeActor(router, "target")
    router.targets[str(target.id)] = target
    answer = MessageServerHandler(sender, {}).functions()["send"](str(target.id), b"too long")
    assert answer == {"err": "message of 8 bytes is larger than actor target's limit of 4"}
    assert sender.deferred == []


def test_a_request_releases_what_came_before_and_answers_with_the_reply():
    router = FakeRouter()
    sender, target = FakeActor(router, "sender"), FakeActor(router, "target")
    router.targets[str(target.id)] = target
    answer = MessageServerHandler(sender, {}).functions()["request"](str(target.id), b"q")
    assert answer == {"ok": b"answer to q"} and sender.flushes == 1


def test_a_channel_opened_through_the_router_carries_messages_after_the_commit():
    router = FakeRouter()
    opener, target = FakeActor(router, "opener"), FakeActor(router, "target")
    router.targets[str(target.id)] = target
    functions = MessageServerHandler(opener, {}).functions()
    channel_id = functions["open-channel"](str(target.id), b"hi")["ok"]
    assert functions["send-on-channel"](channel_id, b"m") == {"ok": None}
    assert functions["close-channel"](channel_id) == {"ok": None}
    opener.settle(None)
    assert [(kind, peer) for kind, peer, _ in router.delivered] == [("open", target), ("channel", target),
                                                                   ("close", target)]
    assert functions["send-on-channel"](channel_id, b"late") == {"err": f"no open channel {channel_id}"}


def test_a_seeded_random_handler_needs_only_its_config():
    first = RandomHandler(FakeActor(FakeRouter()), {"seed": 7}).functions()["random-bytes"](8)
    second = RandomHandler(FakeActor(FakeRouter()), {"seed": 7}).functions()["random-bytes"](8)
    assert first == second and len(first["ok"]) == 8


EMBEDDING_API = {"start", "reopen", "stop", "send", "request", "open_channel", "state", "events", "actors",
                 "actor", "running", "status", "close", "passivate", "relinquish", "fork", "revert"}


def test_theater_keeps_only_the_embedding_api():
    public = {name for name in vars(Theater) if not name.startswith("_") and callable(getattr(Theater, name))}
    assert public == EMBEDDING_API

