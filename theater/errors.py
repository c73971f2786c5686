"""Errors of the live system.

The tree under the root ``TheaterError`` (defined in ``store.errors``; ``StoreError`` and ``ReplayError`` hang
beside this subtree)::

    TheaterError
    ├── StoreError ...                see store.errors
    ├── WasmError ...                 see replay.errors: ComponentError (bad wasm), GuestFault (a failed call)
    │   └── ErrAnswered               (a GuestFault) the actor answered a call with its err: it keeps running
    ├── ReplayError ...               see replay.errors
    └── RuntimeFault                  the live system
        ├── ManifestError             a manifest is malformed: names the file, the field and what was expected
        ├── LinkError                 the component imports something its manifest does not grant
        ├── ActorNotFound             no actor with that id
        ├── ActorNotRunning           the actor has stopped or failed; restart it to use it again
        ├── MessageError              a message could not be delivered or answered
        │   ├── MailboxFull           the receiver's mailbox is full: try again later
        │   ├── MessageTooLarge       the message is over the receiver's max_message_bytes: send less
        │   ├── ExportMissing         the receiver does not export the function this message needs
        │   ├── ReplyTimeout          no answer within the timeout (the receiver may still answer later)
        │   ├── ReplyAbandoned        the waiting actor is stopping, so its wait was given up
        │   ├── RequestCancelled      the receiver cancelled the request instead of answering it
        │   ├── ChannelRejected       the receiver refused to open the channel
        │   ├── ChannelClosed         the channel is closed (or never was open)
        │   ├── ChannelNotFound       no open channel with this id (a server's client channels)
        │   └── ReceiveTimeout        nothing arrived on a channel within the timeout
        ├── ResourceExhausted         the machine ran out of something (threads, memory): names it and the actor
        ├── SupervisionError          a supervision request was refused
        ├── BundleRefused             a bundle offered for import does not hold (BundleConflict: at odds with the home)
        ├── RevertRefused             an actor cannot be reverted now (it holds requests, channels or children)
        ├── UpgradeRefused            a restart with a new component whose upgrade check did not pass (--force)
        ├── ServerError               a server cannot start
        │   ├── HomeLocked            another server runs on the home
        │   └── AddressUnavailable    the address cannot be bound
        └── BuildError                an actor project could not be built (the Python error, the WIT error)
            └── BuildToolMissing      componentize-py is not installed (says how to install it)

``TheaterError`` is exported from ``theater`` too, so ``except theater.TheaterError`` catches every error of the
system (store, replay and live).
"""

from __future__ import annotations

from replay.errors import ComponentError, FaultKind, GuestFault
from store.errors import TheaterError


class ErrAnswered(GuestFault):
    """An actor's export returned the WIT ``err`` and the actor answered it (its ``on_err`` is ``answer``): the
    call's state change was discarded and the actor keeps running. A ``GuestFault`` of kind ``err`` that is not
    ``poisoned``, so whoever handles guest failures handles it too.

    Attributes:
        actor_id, name: the actor that answered.
        export, detail, fuel: the export called, the guest's error text, the fuel the call consumed.
    """

    def __init__(self, actor_id: str, name: str, fault: GuestFault) -> None:
        super().__init__(FaultKind.ERR, fault.export, fault.detail, fuel=fault.fuel)
        self.actor_id = actor_id
        self.name = name
        self.answered = True
        short = fault.export.rpartition("/")[2]
        self.args = (f"actor {actor_id} ({name}) answered {short} with err: {fault.detail}",)


class RuntimeFault(TheaterError):
    """Something went wrong in the live system."""


class ManifestError(RuntimeFault):
    """A manifest is malformed.

    Attributes:
        source: the file (or ``<inline>``) the manifest came from.
        field: the dotted field path, e.g. ``handlers[1].type``; empty for file-level errors.
        problem: what is wrong and what was expected.
    """

    def __init__(self, source: str, field: str, problem: str) -> None:
        self.source = source
        self.field = field
        self.problem = problem
        where = f"{source}: {field}" if field else source
        super().__init__(f"{where}: {problem}")


class LinkError(RuntimeFault):
    """A component imports an interface its manifest does not grant."""

    def __init__(self, actor: str, import_name: str, handler: str | None) -> None:
        self.actor = actor
        self.import_name = import_name
        self.handler = handler
        grant = (
            f"grant it with a [[handlers]] entry of type {handler!r}"
            if handler
            else "no Theater handler provides it"
        )
        super().__init__(f"{actor} imports {import_name!r}, which its manifest does not grant: {grant}")


class ActorNotFound(RuntimeFault):
    """No actor with this id exists in this runtime or home."""

    def __init__(self, actor_id: str) -> None:
        self.actor_id = actor_id
        super().__init__(f"no actor {actor_id}")


class ActorNotRunning(RuntimeFault):
    """The actor exists but is not running (stopped or failed)."""

    def __init__(self, actor_id: str, status: str, reason: str | None = None) -> None:
        self.actor_id = actor_id
        self.status = status
        self.reason = reason
        extra = f": {reason}" if reason else ""
        super().__init__(f"actor {actor_id} is {status}{extra}")


class MessageError(RuntimeFault):
    """A message could not be delivered or answered."""


class MailboxFull(MessageError):
    """The receiving actor's mailbox holds as many messages (or bytes) as it may; the sender may try again later.

    Attributes:
        actor_id: the receiver.
        waiting, waiting_bytes: what waits in its mailbox.
        max_messages, max_bytes: its mailbox's bounds.
    """

    def __init__(self, actor_id: str, *, waiting: int, waiting_bytes: int, max_messages: int, max_bytes: int) -> None:
        self.actor_id = actor_id
        self.waiting = waiting
        self.waiting_bytes = waiting_bytes
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        super().__init__(
            f"mailbox of actor {actor_id} is full: {waiting} messages ({waiting_bytes} bytes) are waiting, at most "
            f"{max_messages} messages and {max_bytes} bytes may; try again later"
        )


class MessageTooLarge(MessageError):
    """A message is larger than its receiver takes.

    Attributes:
        actor_id: the receiver.
        size: the message's size in bytes.
        limit: the most the receiver takes.
        declared: what its manifest declares (above ``limit`` when one call cannot carry that much).
        call_limit: the most one call can hand out of a guest.
    """

    def __init__(self, actor_id: str, *, size: int, limit: int, declared: int, call_limit: int) -> None:
        self.actor_id = actor_id
        self.size = size
        self.limit = limit
        self.declared = declared
        self.call_limit = call_limit
        why = "" if declared <= limit else (
            f" (its manifest allows {declared}, but at most {call_limit} bytes fit through one call)"
        )
        super().__init__(f"message of {size} bytes is larger than actor {actor_id}'s limit of {limit}{why}")


class ExportMissing(MessageError):
    """The receiver does not export the function a message needs; nothing was recorded, it keeps running."""

    def __init__(self, actor_id: str, name: str, export: str) -> None:
        self.actor_id = actor_id
        self.name = name
        self.export = export
        super().__init__(f"actor {actor_id} ({name}) cannot take this: it does not export {export}")


class ReplyTimeout(MessageError):
    """No answer (to a request, an open-channel) came within the timeout; the receiver may still answer later.

    Attributes:
        what: what was waited for, e.g. ``request to <id>``.
        seconds: the timeout.
    """

    def __init__(self, what: str, seconds: float) -> None:
        self.what = what
        self.seconds = seconds
        super().__init__(f"{what} got no answer within {seconds} s")


class ReplyAbandoned(MessageError):
    """An actor waiting in a host function for an answer is being stopped: the wait ends without one."""

    def __init__(self, what: str, actor_id: str) -> None:
        self.what = what
        self.actor_id = actor_id
        super().__init__(f"{what} was given up: actor {actor_id} is stopping")


class RequestCancelled(MessageError):
    """The receiver cancelled a request (``cancel-request``) instead of answering it."""

    def __init__(self, request_id: str, actor_id: str) -> None:
        self.request_id = request_id
        self.actor_id = actor_id
        super().__init__(f"request {request_id} was cancelled by actor {actor_id}")


class ChannelRejected(MessageError):
    """The receiver refused to open a channel; ``message`` is what it said, if anything."""

    def __init__(self, actor_id: str, message: bytes | None) -> None:
        self.actor_id = actor_id
        self.message = message
        super().__init__(f"actor {actor_id} rejected the channel" + (f": {message!r}" if message else ""))


class ChannelClosed(MessageError):
    """The channel is closed (by either end, or its actor ended), or the caller is not one of its ends."""

    def __init__(self, channel_id: str) -> None:
        self.channel_id = channel_id
        super().__init__(f"no open channel {channel_id}")


class ChannelNotFound(MessageError):
    """A server has no client channel with this id (never opened, or closed and forgotten)."""

    def __init__(self, channel_id: str) -> None:
        self.channel_id = channel_id
        super().__init__(f"no open channel {channel_id}")


class ReceiveTimeout(MessageError):
    """Nothing arrived on a channel within the timeout."""

    def __init__(self, channel_id: str, seconds: float | None) -> None:
        self.channel_id = channel_id
        self.seconds = seconds
        super().__init__(f"no message on channel {channel_id} within {seconds} s")


class ResourceExhausted(RuntimeFault):
    """The runtime could not get a resource the machine ran out of: a thread to wait on, memory for an instance.

    Only the operation that needed it fails; the other actors keep running. Free some (stop actors, raise the
    limit named in ``detail``) and try again.

    Attributes:
        resource: what ran out: ``threads`` or ``memory``.
        actor_id: the actor whose operation needed it.
        detail: what was asked for and the limit or the system's words.
    """

    def __init__(self, resource: str, actor_id: str, detail: str) -> None:
        self.resource = resource
        self.actor_id = actor_id
        self.detail = detail
        super().__init__(f"out of {resource} for actor {actor_id}: {detail}")


class SupervisionError(RuntimeFault):
    """A supervision request was refused."""


class BundleRefused(TheaterError):
    """A bundle offered to the home was not imported: damaged, forged, or not re-executing.

    Attributes:
        source: where the bundle came from (a file name, ``(request body)``).
        reason: what is wrong, naming the event where there is one.
    """

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"bundle {source} refused: {reason}")


class BundleConflict(BundleRefused):
    """A bundle that holds by itself but disagrees with (or would extend) a chain the home already has."""


class RevertRefused(RuntimeFault):
    """A revert was refused: the actor holds something its instance keeps (an outstanding request, an open
    channel, a child), which a fresh instance from an earlier state could not honour.

    Attributes:
        actor_id: the actor. reason: what it holds.
    """

    def __init__(self, actor_id: str, reason: str) -> None:
        self.actor_id = actor_id
        self.reason = reason
        super().__init__(f"actor {actor_id} cannot be reverted now: {reason}")


class ServerError(RuntimeFault):
    """A server cannot start: the message says why."""


class HomeLocked(ServerError):
    """Another server runs on the home (it holds the home's lock file)."""

    def __init__(self, home: str) -> None:
        self.home = home
        super().__init__(f"another theater server is running on the home {home}")


class AddressUnavailable(ServerError):
    """The server's address cannot be bound (in use, not this machine's, not allowed)."""

    def __init__(self, host: str, port: int, reason: str) -> None:
        self.host = host
        self.port = port
        self.reason = reason
        super().__init__(f"cannot listen on {host}:{port}: {reason}")


class UpgradeRefused(RuntimeFault):
    """A restart with a new component was refused: the upgrade check over the actor's chain did not pass.

    Attributes:
        actor: the actor (its id as text). verdict: the check's verdict. detail: the first difference or the
            failure, in words.
    """

    def __init__(self, actor: str, verdict: str, detail: str) -> None:
        self.actor = actor
        self.verdict = verdict
        self.detail = detail
        super().__init__(f"actor {actor}: the upgrade check says {verdict!r} ({detail}); nothing was changed "
                         "(give force to restart with it anyway)")


class BuildError(RuntimeFault):
    """An actor project could not be built.

    Attributes:
        project: the project directory (or the tool that is missing).
        problem: what went wrong; for a failure of the actor's Python code, the Python error itself.
    """

    def __init__(self, project: str, problem: str) -> None:
        self.project = project
        self.problem = problem
        super().__init__(f"{project}: {problem}")


class BuildToolMissing(BuildError):
    """componentize-py is missing or of another series; the message says how to install the right one."""

    def __init__(self, problem: str) -> None:
        super().__init__("componentize-py", problem)


__all__ = [
    "ActorNotFound",
    "ActorNotRunning",
    "AddressUnavailable",
    "BuildError",
    "BundleConflict",
    "BundleRefused",
    "BuildToolMissing",
    "ChannelClosed",
    "ChannelNotFound",
    "ChannelRejected",
    "ComponentError",
    "ErrAnswered",
    "ExportMissing",
    "GuestFault",
    "HomeLocked",
    "LinkError",
    "MailboxFull",
    "ManifestError",
    "MessageError",
    "MessageTooLarge",
    "ReceiveTimeout",
    "ReplyAbandoned",
    "ReplyTimeout",
    "RevertRefused",
    "RequestCancelled",
    "ResourceExhausted",
    "RuntimeFault",
    "ServerError",
    "SupervisionError",
    "TheaterError",
    "UpgradeRefused",
]
