"""Errors of the live system.

The tree under the root ``TheaterError`` (defined in ``store.errors``; ``StoreError`` and ``ReplayError`` hang
beside this subtree)::

    TheaterError
    ├── StoreError ...                see store.errors
    ├── WasmError ...                 see replay.errors: ComponentError (bad wasm), GuestFault (a failed call)
    ├── ReplayError ...               see replay.errors
    └── RuntimeFault                  the live system
        ├── ManifestError             a manifest is malformed: names the file, the field and what was expected
        ├── LinkError                 the component imports something its manifest does not grant
        ├── ActorNotFound             no actor with that id
        ├── ActorNotRunning           the actor has stopped or failed; restart it to use it again
        ├── MessageError              a message could not be delivered (too large, unknown target, timeout)
        │   └── MailboxFull           the receiver's mailbox is full: try again later
        ├── SupervisionError          a supervision request was refused
        └── BuildError                an actor project could not be built (the Python error, the WIT error)
            └── BuildToolMissing      componentize-py is not installed (says how to install it)
"""

from __future__ import annotations

from replay.errors import ComponentError, GuestFault
from store.errors import TheaterError


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


class SupervisionError(RuntimeFault):
    """A supervision request was refused."""


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
    "BuildError",
    "BuildToolMissing",
    "ComponentError",
    "GuestFault",
    "LinkError",
    "MailboxFull",
    "ManifestError",
    "MessageError",
    "RuntimeFault",
    "SupervisionError",
    "TheaterError",
]
