"""Every resource bounded, attacked from a guest or a client: a spinning guest cannot ignore ``stop``, a guest that
amplifies messages cannot grow a mailbox without bound or delay a stop, and a large message does not kill its
receiver. Each chain these tests make is checked (integrity and replay) after the test by the ``theaters`` fixture.
"""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from replay.errors import GuestFault
from replay.replayer import Replayer
from tests._chains import CommitWaiter
from tests.components import wat
from theater.actor import HANDLE_SEND
from replay.engine import MAX_MESSAGE_BYTES
from theater.errors import ActorNotRunning, MailboxFull, MessageTooLarge
from theater.mailbox import MailboxLimits

MSG = ["message-server"]
WAIT = 10.0  # seconds any single wait may take before the test gives up
FOREVER = {"fuel_per_call": 10**12, "deadline_ms": 600_000}  # the maximums: a spinning call would run 10 min


def to(actor: str, *rest: bytes) -> bytes:
    """A forwarder message: ``actor\\0rest[0]...``."""
    return b"\0".join([actor.encode(), *rest])


def spinner() -> str:
    """handle-send logs, then loops until its fuel or deadline runs out (or it is stopped)."""
    return wat.actor_wat(send=wat.seq(wat.log("spinning"), wat.spin()), request=wat.echo())


def wait_for_call(theater, actor_id: str, export: str = HANDLE_SEND) -> None:
    """Wait until the actor's chain shows that a call of ``export`` began (the guest is running it)."""
    waiter = CommitWaiter(theater.store, WAIT)
    waiter.until(lambda: any(e.type == "wasm/call" and e.data["export"] == export for e in theater.events(actor_id)),
                 f"a call of {export} by {actor_id}")


def stop_within(theater, actor_id: str, timeout: float = WAIT) -> None:
    """``theater.stop`` on another (daemon) thread; fail if it does not return within ``timeout`` s."""
    done = threading.Event()
    errors: list[BaseException] = []

    def stop() -> None:
        try:
            theater.stop(actor_id)
        except BaseException as exc:  # handed to the test
            errors.append(exc)
        finally:
            done.set()

    threading.Thread(target=stop, name=f"stop:{actor_id}", daemon=True).start()
    assert done.wait(timeout), f"stop of {actor_id} did not return within {timeout} s"
    if errors:
        raise errors[0]


# stop


def test_stop_interrupts_spinning_guest(theater, manifest):
    actor = theater.start(manifest("spinner", spinner(), MSG, limits=FOREVER))
    spinning = theater.router.deliver_send(theater.actor(actor), b"go")
    wait_for_call(theater, actor)
    stop_within(theater, actor)
    with pytest.raises(GuestFault, match=rf"^{HANDLE_SEND} failed \(stopped\): stopped while running") as raised:
        spinning.result(WAIT)
    assert raised.value.kind == "stopped"
    assert theater.status(actor) == "stopped"
    types = [e.type for e in theater.events(actor)]
    assert types[-4:] == ["wasm/call", "theater:simple/runtime/log", "wasm/error", "actor/stop"]
    error = theater.events(actor)[-2]
    assert error.data["kind"] == "stopped"
    assert error.data["fuel"] > 0  # the exact fuel at the interrupt: replay stops at the same point


def test_interrupted_call_replays_to_the_same_point(theater, manifest):
    actor = theater.start(manifest("spinner", spinner(), MSG, limits=FOREVER))
    spinning = theater.router.deliver_send(theater.actor(actor), b"go")
    wait_for_call(theater, actor)
    stop_within(theater, actor)
    with pytest.raises(GuestFault):
        spinning.result(WAIT)
    report = Replayer(theater.store).replay(uuid.UUID(actor))
    assert report.ok, report.divergence
    assert (report.calls, report.host_calls, report.interrupted) == (2, 1, ())  # init and the stopped call


def test_stop_of_a_supervised_spinning_child_interrupts_it(theater, manifest):
    parent = theater.start(manifest("parent", wat.echo_actor(), MSG, limits=FOREVER))  # a child's lie within it
    child = theater.start(manifest("spinner", spinner(), MSG, limits=FOREVER), parent=parent)
    spinning = theater.router.deliver_send(theater.actor(child), b"go")
    wait_for_call(theater, child)
    stop_within(theater, child)
    with pytest.raises(GuestFault, match=r"\(stopped\)"):
        spinning.result(WAIT)
    [stop] = [e for e in theater.events(parent) if e.type == "supervisor/stop"]
    assert (stop.data["child"], stop.data["outcome"]) == (child, "stopped")
    assert [e.type for e in theater.events(child)][-2:] == ["wasm/error", "actor/stop"]


def test_stop_cuts_a_long_sleep_short(theater, manifest):
    component = wat.actor_wat(send=wat.sleep(24 * 3600 * 1000))  # a day
    actor = theater.start(manifest("sleeper", component, [*MSG, "timing"]))
    sleeping = theater.router.deliver_send(theater.actor(actor), b"")
    wait_for_call(theater, actor)
    stop_within(theater, actor)
    try:
        sleeping.result(WAIT)
    except GuestFault as fault:
        assert fault.kind == "stopped"  # the guest went on after the sleep and was stopped at the next tick
    [slept] = [e for e in theater.events(actor) if e.type == "theater:simple/timing/sleep"]
    assert slept.data["result"] == {"err": "the sleep was cut short: the actor is stopping"}
    assert theater.events(actor)[-1].type == "actor/stop"


def test_stop_cuts_a_waiting_request_short(theater, manifest):
    """The request would wait for the runtime's request timeout; the stop ends the wait (recorded as ``err``)."""
    deferred = theater.start(manifest("deferred", wat.deferred_actor(), MSG))
    asker = theater.start(manifest("asker", wat.forwarder_actor(), MSG))
    asking = theater.router.deliver_request(theater.actor(asker), to(deferred, b"question"))
    wait_for_call(theater, deferred, "theater:simple/message-server-client.handle-request")
    stop_within(theater, asker)
    try:
        asking.result(WAIT)  # the guest got err and answered with it before the next epoch tick
    except GuestFault as fault:
        assert fault.kind == "stopped"  # or it was stopped at the next tick
    [asked] = [e for e in theater.events(asker) if e.type == "theater:simple/message-server-host/request"]
    assert asked.data["result"] == {"err": f"request to {deferred} was given up: actor {asker} is stopping"}


# mailboxes


def amplifier() -> str:
    """Message = target id + NUL + payload: handle-send sends the whole message to the target twice."""
    return wat.actor_wat(send=wat.seq(wat.send_to(wat.HEAD, wat.MSG), wat.send_to(wat.HEAD, wat.MSG)))


def send_results(theater, actor_id: str) -> list[dict]:
    return [e.data["result"] for e in theater.events(actor_id) if e.type == "theater:simple/message-server-host/send"]


def test_message_amplifier_is_bounded_and_stop_jumps_queue(theaters, manifest):
    theater = theaters(mailbox=MailboxLimits(messages=64))
    amp = theater.start(manifest("amplifier", amplifier(), MSG))
    live = theater.actor(amp)
    theater.send(amp, to(amp, b"boom"))  # two messages to itself per message: 2, 4, 8, ... until the mailbox is full
    full = f"mailbox of actor {amp} is full: "
    CommitWaiter(theater.store, WAIT).until(
        lambda: any(r.get("err", "").startswith(full) for r in send_results(theater, amp)), "a refused send")
    stop_within(theater, amp)
    assert theater.status(amp) == "stopped"
    theater.releaser.hand_over(None, [], wait=True)  # the sends of its last call are released (and refused)
    mailbox = live.mailbox
    assert mailbox.peak <= 64
    assert mailbox.waiting == 0  # nothing waits and no place is kept
    # Every accepted message was handled, or answered when the actor ended; none was accepted without an ``ok``.
    results = send_results(theater, amp)
    handled = [e for e in theater.events(amp) if e.type == "wasm/call" and e.data["export"] == HANDLE_SEND]
    # The start (``init``) ran in place on the starting thread (``Actor.start_here``), not through the mailbox.
    assert mailbox.accepted == len(handled) + mailbox.flushed
    assert mailbox.accepted <= 1 + results.count({"ok": None})  # 1: the client's first message
    assert all(r == {"ok": None} or r["err"].startswith(full) for r in results)


class Busy:
    """Keeps an actor's thread busy (an operation waiting for ``release``) while a test fills its mailbox."""

    def __init__(self, actor) -> None:
        self.gate = threading.Event()
        running = threading.Event()
        self.future = actor.submit(lambda: running.set() or self.gate.wait(WAIT))
        assert running.wait(WAIT)  # taken out of the mailbox: it holds no place there

    def release(self) -> None:
        self.gate.set()
        self.future.result(WAIT)


def test_full_mailbox_refuses_a_client_with_mailbox_full(theaters, manifest):
    theater = theaters(mailbox=MailboxLimits(messages=2))
    echo = theater.start(manifest("echo", wat.echo_actor(), MSG))
    live = theater.actor(echo)
    busy = Busy(live)
    waiting = [theater.router.deliver_send(live, b"one"), theater.router.deliver_send(live, b"two")]
    with pytest.raises(MailboxFull, match=rf"^mailbox of actor {echo} is full: 2 messages \(6 bytes\) are waiting"):
        theater.send(echo, b"three")
    busy.release()
    for message in waiting:
        message.result(WAIT)
    theater.send(echo, b"four")  # room again
    assert theater.state(echo) == b"four"


def test_full_mailbox_bounds_bytes_but_takes_any_message_when_empty(theaters, manifest):
    theater = theaters(mailbox=MailboxLimits(messages=10, bytes=4))
    echo = theater.start(manifest("echo", wat.echo_actor(), MSG))
    live = theater.actor(echo)
    busy = Busy(live)
    waiting = theater.router.deliver_send(live, b"longer than four")  # an empty mailbox takes it
    with pytest.raises(MailboxFull, match=r"1 messages \(16 bytes\) are waiting, at most 10 messages and 4 bytes"):
        theater.send(echo, b"x")
    busy.release()
    waiting.result(WAIT)
    assert theater.state(echo) == b"longer than four"


def test_stop_is_never_refused_for_a_full_mailbox(theaters, manifest):
    theater = theaters(mailbox=MailboxLimits(messages=1))
    echo = theater.start(manifest("echo", wat.echo_actor(), MSG))
    live = theater.actor(echo)
    busy = Busy(live)
    waiting = theater.router.deliver_send(live, b"one")
    with pytest.raises(MailboxFull):
        theater.send(echo, b"no room")
    with ThreadPoolExecutor(max_workers=1) as pool:
        stopping = pool.submit(theater.stop, echo)
        assert live.stop_requested.wait(WAIT)
        busy.release()
        stopping.result(WAIT)
    with pytest.raises(ActorNotRunning):
        waiting.result(WAIT)
    assert theater.status(echo) == "stopped"


def test_a_full_mailbox_answers_an_actor_send_with_err(theaters, manifest):
    theater = theaters(mailbox=MailboxLimits(messages=1))
    echo = theater.start(manifest("echo", wat.echo_actor(), MSG))
    forwarder = theater.start(manifest("forwarder", wat.forwarder_actor(), MSG))
    live = theater.actor(echo)
    busy = Busy(live)
    waiting = theater.router.deliver_send(live, b"first")
    theater.send(forwarder, to(echo, b"hello"))
    busy.release()
    waiting.result(WAIT)
    assert theater.state(forwarder).startswith(wat.ERR_MARKER + f"mailbox of actor {echo} is full: ".encode())
    [sent] = send_results(theater, forwarder)
    assert sent["err"].startswith(f"mailbox of actor {echo} is full: 1 messages (5 bytes) are waiting")


# message sizes


def keeper() -> str:
    """handle-send keeps the message as its state; handle-request keeps it and answers with it too."""
    return wat.actor_wat(send=wat.store_msg(), request=wat.seq(wat.store_msg(), wat.echo()))


@pytest.mark.slow  # wasmtime-py converts list<u8> byte by byte: seconds per MiB
def test_message_at_the_default_limit_is_kept_answered_and_replays(theater, manifest):
    actor = theater.start(manifest("keeper", keeper(), MSG))
    limit = theater.actor(actor).max_message_bytes
    assert limit == 1024 * 1024  # the default
    message = bytes(range(256)) * (limit // 256)
    assert theater.request(actor, message, timeout=60) == message  # state and answer: two copies out of the guest
    assert theater.state(actor) == message
    report = Replayer(theater.store).replay(uuid.UUID(actor))
    assert report.ok, report.divergence
    assert report.state == message


@pytest.mark.slow  # wasmtime-py converts list<u8> byte by byte: seconds per MiB
def test_four_mib_message_is_refused_clearly_and_the_receiver_lives_on(theater, manifest):
    """wasmtime cannot hand 4 MiB out of a guest in one call (its hostcall fuel, which wasmtime-py 50 cannot
    raise): such a message used to fail its receiver for good. Now it is refused before delivery, naming why."""
    actor = theater.start(manifest("keeper", keeper(), MSG, limits={"max_message_bytes": 16 * 1024 * 1024}))
    ceiling = theater.actor(actor).max_message_bytes
    assert ceiling == MAX_MESSAGE_BYTES < 4 * 1024 * 1024
    expected = (rf"^message of {4 * 1024 * 1024} bytes is larger than actor {actor}'s limit of {ceiling} \(its "
                rf"manifest allows {16 * 1024 * 1024}, but at most {ceiling} bytes fit through one call\)$")
    with pytest.raises(MessageTooLarge, match=expected):
        theater.send(actor, b"x" * (4 * 1024 * 1024))
    message = b"y" * ceiling  # the largest message it takes works: kept as its state
    theater.send(actor, message)
    assert theater.state(actor) == message
    assert theater.status(actor) == "running"


def test_a_full_mailbox_answers_an_actor_request_with_err(theaters, manifest):
    theater = theaters(mailbox=MailboxLimits(messages=1))
    echo = theater.start(manifest("echo", wat.echo_actor(), MSG))
    asker = theater.start(manifest("asker", wat.forwarder_actor(), MSG))
    live = theater.actor(echo)
    busy = Busy(live)
    waiting = theater.router.deliver_send(live, b"first")
    answer = theater.request(asker, to(echo, b"question"))
    busy.release()
    waiting.result(WAIT)
    assert answer.startswith(wat.ERR_MARKER + f"mailbox of actor {echo} is full: 1 messages (5 bytes)".encode())
