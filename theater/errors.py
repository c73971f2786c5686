"""Errors of the live system.

The tree under the root ``TheaterError`` (defined in ``store.errors``; ``StoreError`` and ``ReplayError`` hang
beside this subtree)::

    TheaterError
    ├── StoreError ...                see store.errors
    ├── ReplayError ...               see replay.errors
    └── RuntimeFault                  the live system
        ├── ManifestError             a manifest is malformed: names the file, the field and what was expected
        ├── ComponentError            the wasm is not a valid component, or cannot be compiled
        ├── LinkError                 the component imports something its manifest does not grant
        ├── ActorNotFound             no actor with that id
        ├── ActorNotRunning           the actor has stopped or failed; restart it to use it again
        ├── ActorCallError            an export call failed (trap, err result, fuel, deadline, memory)
        ├── MessageError              a message could not be delivered (too large, unknown target, timeout)
        └── SupervisionError          a supervision request was refused
"""

from __future__ import annotations

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


class ComponentError(RuntimeFault):
    """The bytes are not a valid WebAssembly component for this engine."""

    def __init__(self, what: str, reason: str) -> None:
        self.what = what
        self.reason = reason
        super().__init__(f"{what} is not a usable component: {reason}")


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


class ActorCallError(RuntimeFault):
    """An export call of an actor failed.

    Attributes:
        kind: ``trap``, ``err``, ``fuel``, ``deadline``, ``memory`` or ``internal``.
    """

    def __init__(self, actor_id: str, export: str, kind: str, detail: str) -> None:
        self.actor_id = actor_id
        self.export = export
        self.kind = kind
        self.detail = detail
        super().__init__(f"actor {actor_id} failed in {export} ({kind}): {detail}")


class MessageError(RuntimeFault):
    """A message could not be delivered or answered."""


class SupervisionError(RuntimeFault):
    """A supervision request was refused."""
