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
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from theater.errors import MailboxFull

Op = Callable[[], None]

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
    """The two lanes of one actor's mailbox. Thread-safe; only the actor's thread takes from it."""

    def __init__(self, owner: str, limits: MailboxLimits) -> None:
        self.owner = owner
        self.limits = limits
        self.peak = 0  # the most messages that ever waited (or had a place kept) at once
        self.accepted = 0  # messages ever accepted into the message lane
        self.flushed = 0  # messages still waiting when the actor ended (each then answered ``ActorNotRunning``)
        self._cond = threading.Condition()
        self._control: deque[Op] = deque()
        self._messages: deque[tuple[Op, int]] = deque()
        self._count = 0  # messages waiting plus places kept
        self._bytes = 0
        self._ending = False
        self._closed = False

    @property
    def waiting(self) -> int:
        """Messages waiting or with a place kept for them."""
        with self._cond:
            return self._count

    def reserve(self, size: int) -> Reservation:
        """Keep a place for a message of ``size`` bytes.

        Raises:
            MailboxFull: no room. MailboxClosed: the actor has ended.
        """
        with self._cond:
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
        with self._cond:
            if self._closed or self._ending:
                if reservation is not None:
                    self._release_locked(reservation)
                raise MailboxClosed(self.owner)
            if reservation is not None and reservation._held:
                reservation._held = False
                size = reservation.size
            else:
                self._take_room(size, force=force)
            self._messages.append((op, size))
            self.accepted += 1
            self._cond.notify()

    def put_control(self, op: Op) -> None:
        """Queue a control operation ahead of every message, behind earlier control operations.

        Raises:
            MailboxClosed: the actor has ended.
        """
        with self._cond:
            self._check_open()
            self._control.append(op)
            self._cond.notify()

    def get(self) -> Op | None:
        """The next operation (control first), waiting for one; None once ``end`` was called."""
        with self._cond:
            while not self._ending and not self._control and not self._messages:
                self._cond.wait()
            if self._ending:
                return None
            if self._control:
                return self._control.popleft()
            op, size = self._messages.popleft()
            self._count -= 1
            self._bytes -= size
            return op

    def end(self) -> None:
        """Make ``get`` return None: the actor's loop ends (any thread)."""
        with self._cond:
            self._ending = True
            self._cond.notify()

    def close(self) -> list[Op]:
        """Refuse everything from now on and hand back what is still waiting, control operations first."""
        with self._cond:
            self._closed = True
            ops = list(self._control) + [op for op, _ in self._messages]
            self._count -= len(self._messages)
            self.flushed += len(self._messages)
            self._bytes -= sum(size for _, size in self._messages)
            self._control.clear()
            self._messages.clear()
            return ops

    def reopen(self) -> None:
        """Accept operations again (the actor is being restarted)."""
        with self._cond:
            self._ending = False
            self._closed = False

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
        with self._cond:
            self._release_locked(reservation)

    def _release_locked(self, reservation: Reservation) -> None:
        if reservation._held:
            reservation._held = False
            self._count -= 1
            self._bytes -= reservation.size
