"""The ``timing`` interface (handler ``timing``): the wall clock and pauses, in milliseconds.

The clock is a host call, so every reading is recorded in the chain and replayed as recorded.
"""

from ._host import call


def now() -> int:
    """Milliseconds since the UNIX epoch."""
    return call("timing", "now")


def sleep(ms: int) -> None:
    """Pause the actor for ``ms`` milliseconds (the actor handles nothing else meanwhile).

    Raises:
        HostError: the host refused (e.g. longer than its configured maximum).
    """
    call("timing", "sleep", int(ms))


def deadline(timestamp_ms: int) -> None:
    """Pause until ``timestamp_ms`` (milliseconds since the epoch); returns at once if it has passed.

    Raises:
        HostError: the host refused.
    """
    call("timing", "deadline", int(timestamp_ms))
