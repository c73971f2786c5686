"""The scheduler: actors are mailboxes run by a bounded pool of workers, fairly, one operation at a time each; a
host call that waits hands its worker's place to a spare one; running out of threads or memory is a clear error.

Messages to a forwarder are ``target id + NUL + payload``: it requests ``payload`` from ``target`` and answers
with the reply (``wat.ERR_MARKER + err`` when the request failed).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import wait
from pathlib import Path

import pytest

from tests.components import wat
from theater.mailbox import Mailbox, MailboxLimits
from theater.runtime import MAX_IN_PLACE_DEPTH
from theater.scheduler import QUANTUM, current, in_place, in_place_depth

MSG = ["message-server"]
WAIT = 60.0  # seconds any single wait may take before the test gives up
ROOT = Path(__file__).resolve().parents[2]


def le64(n: int) -> bytes:
    return n.to_bytes(8, "little")


def to(actor: str, *rest: bytes) -> bytes:
    return b"\0".join([actor.encode(), *rest])


def all_done(futures, timeout: float = WAIT) -> list:
    done, pending = wait(futures, timeout=timeout)
    assert not pending, f"{len(pending)} of {len(futures)} never completed"
    return [f.result() for f in futures]


class Gate:
    """An operation that holds its worker until ``open`` (not a blocking section: the pool does not compensate)."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self._open = threading.Event()

    def __call__(self) -> None:
        self.entered.set()
        assert self._open.wait(WAIT), "the gate was never opened"

    def open(self) -> None:
        self._open.set()


@pytest.mark.slow
def test_two_thousand_actors_run_on_the_pool_not_a_thread_each(theaters, manifest):
    theater = theaters(workers=2)
    counter = manifest("counter", wat.counter_actor(), MSG)
    threads_before = threading.active_count()
    ids = [theater.start(counter) for _ in range(2000)]
    all_done([theater.router.deliver_send(theater.actor(a), b"tick") for a in ids])
    answers = all_done([theater.router.deliver_request(theater.actor(a), b"?") for a in ids])
    assert answers == [le64(2)] * 2000
    assert theater.scheduler.peak_threads <= 2  # no call waited, so no spare thread was ever needed
    assert threading.active_count() - threads_before <= 2


def test_a_flooding_actor_does_not_starve_another(theaters, manifest):
    theater = theaters(workers=1, mailbox=MailboxLimits(messages=5000))
    counter = manifest("counter", wat.counter_actor(), MSG)
    holder, flooder, quiet = (theater.actor(theater.start(counter)) for _ in range(3))
    order: list[str] = []
    gate = Gate()
    held = holder.submit(gate)  # the only worker is held while the flood and the quiet message queue up
    assert gate.entered.wait(WAIT)
    flood = [flooder.submit(lambda: order.append("flood")) for _ in range(1000)]
    answered = quiet.submit(lambda: order.append("quiet"))
    gate.open()
    all_done([held, answered, *flood])
    assert order.index("quiet") <= QUANTUM  # one turn of the flooder, then the quiet actor's turn
    assert len(order) == 1001


def test_each_actor_runs_one_operation_at_a_time_in_mailbox_order(theaters, manifest):
    theater = theaters(workers=8, mailbox=MailboxLimits(messages=10_000))
    counter = manifest("counter", wat.counter_actor(), MSG)
    actors = [theater.actor(theater.start(counter)) for _ in range(4)]
    lock = threading.Lock()
    inside = {a.id: 0 for a in actors}
    most = {a.id: 0 for a in actors}
    seen: dict[tuple, list[int]] = {}

    def op(actor, submitter: int, n: int) -> None:
        with lock:
            inside[actor.id] += 1
            most[actor.id] = max(most[actor.id], inside[actor.id])
        assert actor.on_thread()
        sum(range(2000)) and None  # a little work between the two counts, without sleeping
        seen.setdefault((actor.id, submitter), []).append(n)
        with lock:
            inside[actor.id] -= 1

    def submit_all(submitter: int) -> list:
        return [a.submit(lambda a=a, n=n: op(a, submitter, n)) for n in range(300) for a in actors]

    futures: list = []
    submitters = [threading.Thread(target=lambda i=i: futures.extend(submit_all(i))) for i in range(6)]
    for t in submitters:
        t.start()
    for t in submitters:
        t.join(WAIT)
    all_done(futures)
    assert len(futures) == 6 * 300 * 4
    assert set(most.values()) == {1}
    assert all(ns == list(range(300)) for ns in seen.values())  # each submitter's operations ran in its order


@pytest.mark.slow
def test_request_fan_in_and_fan_out_across_a_thousand_actors_is_answered(theaters, manifest):
    # 900 front forwarders each ask one of 90 middle forwarders, which each ask one of 10 counters. On a fixed pool
    # of 2 workers this deadlocks at once: both workers wait in a front's request for a middle actor that is queued
    # behind the other fronts. The hand-off starts a spare worker for every waiting actor instead.
    theater = theaters(workers=2, request_timeout=WAIT)
    counters = [theater.start(manifest("counter", wat.counter_actor(), MSG)) for _ in range(10)]
    forwarder = manifest("forwarder", wat.forwarder_actor(), MSG)
    middles = [theater.start(forwarder) for _ in range(90)]
    fronts = [theater.start(forwarder) for _ in range(900)]
    replies = [
        theater.router.deliver_request(
            theater.actor(front), to(middles[i % 90], counters[i % 90 % 10].encode(), b"ping"))
        for i, front in enumerate(fronts)
    ]
    answers = all_done(replies)
    assert [a for a in answers if a.startswith(wat.ERR_MARKER)] == []
    assert sorted(answers) == sorted(le64(n) for _ in counters for n in range(1, 91))
    assert theater.scheduler.peak_threads > 2
    assert [theater.state(c) for c in counters] == [le64(90)] * 10


def test_a_wait_beyond_the_thread_limit_is_refused_and_the_others_keep_going(theaters, manifest):
    theater = theaters(workers=1, max_threads=1)
    counter = theater.start(manifest("counter", wat.counter_actor(), MSG))
    forwarder = theater.start(manifest("forwarder", wat.forwarder_actor(), MSG))
    answer = theater.request(forwarder, to(counter, b"ping"))
    assert answer.startswith(wat.ERR_MARKER + f"out of threads for actor {forwarder}: ".encode())
    assert b"max_threads=1 reached" in answer
    assert theater.request(counter, b"direct") == le64(1)  # the request was refused before it was sent
    assert theater.status(forwarder) == theater.status(counter) == "running"
    assert theater.request(forwarder, b"nobody\0x").startswith(wat.ERR_MARKER + b"invalid actor id")  # it goes on


def test_a_sleep_beyond_the_thread_limit_is_refused(theaters, manifest):
    theater = theaters(workers=1, max_threads=1)
    sleeper = theater.start(manifest("sleeper", wat.actor_wat(request=wat.sleep(1)), [*MSG, "timing"]))
    answer = theater.request(sleeper, b"zz")
    assert answer.startswith(wat.ERR_MARKER + f"out of threads for actor {sleeper}".encode())


def test_a_thread_the_system_refuses_is_a_clear_error_and_the_others_keep_going(theaters, manifest, monkeypatch):
    theater = theaters(workers=1)
    counter = theater.start(manifest("counter", wat.counter_actor(), MSG))
    forwarder = theater.start(manifest("forwarder", wat.forwarder_actor(), MSG))

    def refuse(self) -> None:
        raise RuntimeError("can't start new thread")

    with monkeypatch.context() as patch:
        patch.setattr(threading.Thread, "start", refuse)
        answer = theater.request(forwarder, to(counter, b"ping"))
    assert answer.startswith(wat.ERR_MARKER + f"out of threads for actor {forwarder}: ".encode())
    assert b"the system refused a thread: can't start new thread" in answer
    assert theater.request(forwarder, to(counter, b"ping")) == le64(1)  # threads again: it goes through


OUT_OF_MEMORY = """
import resource, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from theater.errors import ResourceExhausted
from theater.runtime import Theater
work = Path(sys.argv[2])
with Theater(work / "home", durability="buffered") as theater:
    small = theater.start(work / "small.toml")
    theater.start(work / "big.toml")  # compiled and cached while memory is plentiful
    mapped = int(Path("/proc/self/statm").read_text().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (mapped + (512 << 20), resource.RLIM_INFINITY))
    try:
        theater.start(work / "big.toml")
    except ResourceExhausted as exc:
        print(f"{type(exc).__name__}|{exc.resource}|{exc}")
    print(theater.request(small, b"still here").hex())
"""


def test_an_instance_the_system_has_no_memory_for_is_a_clear_error_and_the_others_keep_going(tmp_path):
    # A real limit: the process may map only 512 MiB more, and the big actor's memory starts at 1 GiB.
    small = wat.counter_actor()
    big = small.replace('(memory (export "memory") 1)', '(memory (export "memory") 16384)')
    assert big != small
    (tmp_path / "small.wat").write_text(small)
    (tmp_path / "big.wat").write_text(big)
    (tmp_path / "small.toml").write_text('name = "small"\ncomponent = "small.wat"\n')
    (tmp_path / "big.toml").write_text(textwrap.dedent("""\
        name = "big"
        component = "big.wat"
        [limits]
        memory_bytes = 2147483648
    """))
    done = subprocess.run([sys.executable, "-c", OUT_OF_MEMORY, str(ROOT), str(tmp_path)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    refused, still_here = done.stdout.splitlines()
    name, resource, message = refused.split("|")
    assert (name, resource) == ("ResourceExhausted", "memory")
    assert "the system refused memory for its instance (Cannot allocate memory (os error 12))" in message
    assert bytes.fromhex(still_here) == le64(1)


# Starts in place (``Actor.start_here``): the starting thread runs the new actor's first operation itself.


class _Runnable:
    id = "outer"

    def run_slice(self, quantum: int) -> bool:
        return False


def test_a_held_mailbox_queues_work_until_its_creator_lets_go():
    readied = []
    mailbox = Mailbox("a", MailboxLimits(), lambda: readied.append(True), held=True)
    mailbox.put(lambda: None)
    mailbox.put_control(lambda: None)
    assert readied == []  # its creator holds it: no worker is asked to take it
    assert mailbox.keep_turn()  # letting go with work waiting: the creator hands it to the scheduler
    assert Mailbox("b", MailboxLimits(), lambda: readied.append(True), held=True).keep_turn() is False


def test_a_start_in_place_leaves_the_starting_thread_as_it_found_it(theaters, manifest):
    theater = theaters()
    echo = theater.start(manifest("echo", wat.echo_actor(), MSG))
    assert current() is None and in_place_depth() == 0
    assert theater.request(echo, b"hi", timeout=WAIT) == b"hi"  # the workers take it from there


def test_a_start_nested_deeper_than_the_in_place_limit_goes_to_a_worker(theaters, manifest):
    theater = theaters()
    outer = _Runnable()
    with contextlib.ExitStack() as nested:
        for _ in range(MAX_IN_PLACE_DEPTH):
            nested.enter_context(in_place(outer))
        echo = theater.start(manifest("echo", wat.echo_actor(), MSG))
        assert current() is outer and in_place_depth() == MAX_IN_PLACE_DEPTH
    assert theater.request(echo, b"deep", timeout=WAIT) == b"deep"
    assert theater.events(echo)[0].type == "actor/created"
