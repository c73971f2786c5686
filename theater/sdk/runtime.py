"""The ``runtime`` interface (always granted): log lines, the actor's own state and chain, shutdown."""

from typing import Any

from ._host import binding, call


def log(message: str) -> None:
    """Write ``message`` to the actor's log (recorded in its chain). ``print`` and ``logging`` also end up here."""
    binding("runtime").log(str(message))


def raw_state() -> bytes | None:
    """The actor's current state bytes, as last returned by one of its exports."""
    return binding("runtime").get_state()


def chain() -> list[Any]:
    """The actor's committed event chain, oldest first.

    Each item has ``hash``, ``parent_hash``, ``event_type``, ``data`` (canonical CBOR) and ``timestamp`` (ms).
    Fetching it costs about a microsecond per byte crossing the boundary: use it sparingly.
    """
    return list(binding("runtime").get_chain())


def shutdown(data: bytes | str | None = None) -> None:
    """Ask the runtime to stop this actor once the current call returns; ``data`` goes to the parent.

    Raises:
        HostError: the runtime refused.
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    call("runtime", "shutdown", payload)
