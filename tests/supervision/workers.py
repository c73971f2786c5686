"""Components and manifests shared by the supervision tests."""

from __future__ import annotations

from typing import Any

from tests.components import wat

MSG = ["message-server"]


def le64(n: int) -> bytes:
    return n.to_bytes(8, "little")


def worker() -> str:
    """A counter that misbehaves on command.

    ``init`` and every other ``handle-send`` add one to the u64 count in the state; ``b"trap"`` traps, ``b"fail"``
    returns ``err``, ``b"exit"`` calls ``runtime.shutdown(some(b"bye"))``, ``b"spin"`` loops until its fuel or
    deadline runs out. ``handle-request`` answers with the state.
    """
    bad = {b"trap": wat.trap(), b"fail": wat.fail(), b"exit": wat.shutdown(b"bye"), b"spin": wat.spin()}
    return wat.actor_wat(init=wat.count(), send=wat.match_msg(bad, wat.count()), request=wat.respond_state())


def start_parent(rig: Any, name: str = "parent", handlers=MSG, **supervision: Any) -> str:
    """A plain echo actor supervising by the given ``[supervision]`` settings."""
    return rig.theater.start(rig.manifest(name, wat.echo_actor(), handlers, supervision=supervision))


def start_workers(rig: Any, parent: str, count: int, **options: Any) -> list[str]:
    """``count`` workers started as children of ``parent``, in order. Their manifest says ``on_err = "fail"``:
    their ``b"fail"`` is a failure their supervisor hears of, as a trap is."""
    path = rig.manifest("worker", worker(), MSG, on_err="fail")
    return [rig.theater.start(path, parent=parent, **options) for _ in range(count)]
