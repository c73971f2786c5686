"""The ``random`` interface (handler ``random``): real randomness from the host, recorded in the chain.

Python's own ``random`` module works inside an actor but is deterministic: its seed was fixed when the component
was built. Use these functions when an actor needs values nobody can predict.
"""

from ._host import call


def random_bytes(n: int) -> bytes:
    """``n`` random bytes.

    Raises:
        HostError: the host refused (e.g. more than its configured maximum).
    """
    return call("random", "random_bytes", int(n))


def randrange(start: int, stop: int) -> int:
    """A random integer in ``[start, stop)`` (unsigned 64-bit bounds)."""
    return call("random", "random_range", int(start), int(stop))


def random() -> float:
    """A random float in ``[0.0, 1.0)``."""
    return call("random", "random_float")


def uuid() -> str:
    """A random (version 4) UUID string."""
    return call("random", "generate_uuid")
