"""The ``supervisor`` interface (handler ``supervisor``): start and manage child actors.

A child's permissions cannot exceed its parent's. Failures and exits of children arrive as
``Actor.on_child_error`` and ``Actor.on_child_exit`` when the actor's world exports ``supervisor-handlers``.
"""

from typing import Any

from ._host import as_bytes, call


def _optional(value: bytes | str | None) -> bytes | None:
    return None if value is None else as_bytes(value, "a state")


def spawn(manifest: str, init_state: bytes | str | None = None) -> str:
    """Start a child from a manifest (a path, or the TOML text itself); returns the child's actor id.

    Raises:
        HostError: the manifest is invalid, asks for more than this actor was granted, or the child failed to start.
    """
    return call("supervisor", "spawn", manifest, _optional(init_state))


def resume(manifest: str, state: bytes | str | None) -> str:
    """Start a child from a manifest with the given state, without calling its ``init``; returns its id."""
    return call("supervisor", "resume", manifest, _optional(state))


def children() -> list[str]:
    """Ids of this actor's children."""
    return list(call("supervisor", "list_children"))


def stop_child(child_id: str) -> None:
    """Stop a child."""
    call("supervisor", "stop_child", child_id)


def restart_child(child_id: str) -> None:
    """Restart a child (a fresh instance, per the manifest's ``restart_from``)."""
    call("supervisor", "restart_child", child_id)


def child_state(child_id: str) -> bytes | None:
    """A child's current state bytes."""
    return call("supervisor", "get_child_state", child_id)


def child_events(child_id: str) -> list[Any]:
    """A child's event chain (items as in ``runtime.chain``)."""
    return list(call("supervisor", "get_child_events", child_id))
