"""An actor's mailbox: messages wait in a bounded lane; control operations wait in a lane that is served first.

Messages (sends, requests, channel traffic, from clients and from other actors) may fill at most
``MailboxLimits.messages`` places and ``MailboxLimits.bytes`` bytes; a sender that finds the mailbox full is refused
with ``MailboxFull`` and may try again later. A message always fits into an empty mailbox, so the byte bound never
refuses a message the actor's ``max_message_bytes`` allows.

An actor that sends takes its place in the receiver's mailbox at once (``reserve``), while the guest's ``send`` is
still running, so the guest hears ``err`` when there is no room; the message itself is queued only once the
sender's events are durable (see ``theater.release``), into the place kept for it.

Control operations (stop, and what supervisors do: spawn, stop, restart, hearing of a child's end) are never
refused for a full mailbox and run before any waiting message: a flood of messages cannot delay a stop.

A mailbox has no thread: when work arrives in an idle mailbox it calls ``on_ready`` once, and the scheduler's
worker that then holds the actor takes operations (``take``) until the mailbox is empty or its turn is over
(``keep_turn``). The mailbox keeps the flag that says a worker holds it or will, so its actor is in the scheduler's
ready queue at most once (``theater.scheduler``).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from theater.errors import MailboxFull

Op = Callable[[], None]


def END() -> None:
    """What ``take`` hands out once the mailbox is ending: answer what is left (``close``), then stop."""

DEFAULT_MAILBOX_MESSAGES = 1024
DEFAULT_MAILBOX_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class MailboxLimits:
    """How much may wait in one actor's mailbox: at most ``messages`` messages of at most ``bytes`` bytes in all.

    Raises:
        ValueError: a limit is not a positive integer.
    """

    messages: int = DEFAULT_MAILBOX_MESSAGES
    bytes: int = DEFAULT_MAILBOX_BYTES

    def __post_init__(self) -> None:
        for name in ("messages", "bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"mailbox {name} must be a positive integer, got {value!r}")


class MailboxClosed(Exception):
    """Internal: the mailbox's actor has ended; the caller answers with ``ActorNotRunning``."""


class Reservation:
    """A place kept in a mailbox for one message of ``size`` bytes; used by ``Mailbox.put`` or given back."""

    __slots__ = ("size", "_mailbox", "_held")

    def __init__(self, mailbox: Mailbox, size: int) -> None:
        self.size = size
        self._mailbox = mailbox
        self._held = True

    def release(self) -> None:
        """Give the place back (the message will not come); does nothing the second time."""
        self._mailbox._give_back(self)


class Mailbox:
    """The two lanes of one actor's mailbox. Thread-safe; only the worker that holds the actor takes from it.

    Args:
        owner: the actor's id (for errors).
        limits: the message lane's bounds.
        on_ready: called (outside the lock) when work arrives and no worker holds or will hold the mailbox.
        held: the mailbox starts held by its creator, who runs the first operation itself and then lets go
            (``keep_turn``, calling ``on_ready`` when it says more is waiting), as a worker ends its turn.
    """

    def __init__(
        self, owner: str, limits: MailboxLimits, on_ready: Callable[[], None], *, held: bool = False
    ) -> None:
        self.owner = owner
        self.limits = limits
        self._on_ready = on_ready
        self.peak = 0  # the most messages that ever waited (or had a place kept) at once
        self.accepted = 0  # messages ever accepted into the message lane
        self.flushed = 0  # messages still waiting when the actor ended (each then answered ``ActorNotRunning``)
        self._lock = threading.Lock()
        # The lanes exist only while something waits in them: an idle actor's mailbox holds no queue at all.
        self._control: deque[Op] | None = None
        self._messages: deque[tuple[Op, int]] | None = None
        self._count = 0  # messages waiting plus places kept
        self._bytes = 0
        self._ending = False
        self._closed = False
        self._scheduled = held  # a worker (or its creator) holds the mailbox, or it waits in the ready queue

    @property
    def waiting(self) -> int:
        """Messages waiting or with a place kept for them."""
        with self._lock:
            return self._count

    def reserve(self, size: int) -> Reservation:
        """Keep a place for a message of ``size`` bytes.

        Raises:
            MailboxFull: no room. MailboxClosed: the actor has ended.
        """
        with self._lock:
            self._check_open()
            self._take_room(size, force=False)
            return Reservation(self, size)

    def put(self, op: Op, *, size: int = 0, reservation: Reservation | None = None, force: bool = False) -> None:
        """Queue a message behind the others, into ``reservation``'s place if given; ``force`` skips the bounds
        (for what must follow messages already accepted, such as a channel's close).

        Raises:
            MailboxFull: no room (never with a reservation or ``force``). MailboxClosed: the actor has ended (a
                reservation is given back).
        """
        with self._lock:
            if self._closed or self._ending:
                if reservation is not None:
                    self._release_locked(reservation)
                raise MailboxClosed(self.owner)
            if reservation is not None and reservation._held:
                reservation._held = False
                size = reservation.size
            else:
                self._take_room(size, force=force)
            if self._messages is None:
                self._messages = deque()
            self._messages.append((op, size))
            self.accepted += 1
            wake = self._schedule_locked()
        if wake:
            self._on_ready()

    def put_control(self, op: Op) -> None:
        """Queue a control operation ahead of every message, behind earlier control operations.

        Raises:
            MailboxClosed: the actor has ended.
        """
        with self._lock:
            self._check_open()
            if self._control is None:
                self._control = deque()
            self._control.append(op)
            wake = self._schedule_locked()
        if wake:
            self._on_ready()

    def take(self) -> Op | None:
        """For the worker holding the mailbox: the next operation (control first); ``END`` once ``end`` was
        called; None when both lanes are empty, and then the worker no longer holds it (the next ``put`` calls
        ``on_ready`` again)."""
        with self._lock:
            if self._ending:
                return END
            if self._control:
                control = self._control.popleft()
                if not self._control:
                    self._control = None
                return control
            if not self._messages:
                self._scheduled = False
                return None
            op, size = self._messages.popleft()
            if not self._messages:
                self._messages = None
            self._count -= 1
            self._bytes -= size
            return op

    def busy(self) -> bool:
        """For the worker holding the mailbox: True when an operation waits. Read without the lock: only the
        holder takes, so a True holds until it takes; a stale False only costs an earlier hand-over."""
        return bool(self._control or self._messages or self._ending)

    def keep_turn(self) -> bool:
        """For the worker holding the mailbox, at the end of its turn: True when more is waiting (the worker queues
        the actor again); otherwise the worker no longer holds it."""
        with self._lock:
            if self._ending or self._control or self._messages:
                return True
            self._scheduled = False
            return False

    def end(self) -> bool:
        """Refuse everything from now on (any thread). True when the mailbox is closed at once (no worker holds it:
        nothing waits in it); False when the worker holding it will get ``END`` after the operation it runs."""
        with self._lock:
            self._ending = True
            if self._scheduled:
                return False
        self.close()
        return True

    def close(self) -> list[Op]:
        """Refuse everything from now on and hand back what is still waiting, control operations first."""
        with self._lock:
            self._closed = True
            control, messages = self._control or deque(), self._messages or deque()
            ops = list(control) + [op for op, _ in messages]
            self._count -= len(messages)
            self.flushed += len(messages)
            self._bytes -= sum(size for _, size in messages)
            self._control = self._messages = None
            return ops

    def reopen(self) -> None:
        """Accept operations again (the actor is being restarted; its mailbox has ended and is closed)."""
        with self._lock:
            self._ending = False
            self._closed = False
            self._scheduled = False

    # Scheduling (with the lock held).

    def _schedule_locked(self) -> bool:
        """Mark the mailbox held; True when it was not (the caller then calls ``on_ready``)."""
        if self._scheduled:
            return False
        self._scheduled = True
        return True

    # Accounting (with the lock held).

    def _check_open(self) -> None:
        if self._closed or self._ending:
            raise MailboxClosed(self.owner)

    def _take_room(self, size: int, *, force: bool) -> None:
        limits = self.limits
        fits = self._count < limits.messages and (self._count == 0 or self._bytes + size <= limits.bytes)
        if not fits and not force:
            raise MailboxFull(self.owner, waiting=self._count, waiting_bytes=self._bytes,
                              max_messages=limits.messages, max_bytes=limits.bytes)
        self._count += 1
        self._bytes += size
        self.peak = max(self.peak, self._count)

    def _give_back(self, reservation: Reservation) -> None:
        with self._lock:
            self._release_locked(reservation)

    def _release_locked(self, reservation: Reservation) -> None:
        if reservation._held:
            reservation._held = False
            self._count -= 1
            self._bytes -= reservation.size
