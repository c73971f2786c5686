"""What the entry module ``theater build`` generates calls once the actor module is imported (at build time).

The generated entry module is the module componentize-py wraps; it imports the actor module and binds the export
classes under the names componentize-py looks for::

    import app
    from theater_sdk._entry import finish
    Actor, MessageServerClient, SupervisorHandlers, ProcessHandlers, HttpHandlers = finish(app)
"""

from types import ModuleType
from typing import Any

from . import _output, _sandbox
from ._actor import registered
from ._exports import (
    ActorExport,
    HttpHandlersExport,
    MessageServerClientExport,
    ProcessHandlersExport,
    SupervisorHandlersExport,
)


def finish(module: ModuleType) -> tuple[Any, Any, Any, Any, Any]:
    """Check that ``module`` registered an actor, route output to the runtime, keep sources for tracebacks.

    Returns the export classes for ``actor``, ``message-server-client``, ``supervisor-handlers`` and
    ``process-handlers`` and ``http-handlers``; those the world does not export are ignored by componentize-py.

    Raises:
        RuntimeError: the module did not call ``run`` (so the build fails with that message).
    """
    try:
        registered()
    except RuntimeError:
        raise RuntimeError(
            f"module {module.__name__!r} registered no actor: end it with `run(YourActor)` "
            "(from theater_sdk import Actor, run)"
        ) from None
    _output.install()
    _sandbox.preload_sources()
    return ActorExport, MessageServerClientExport, SupervisorHandlersExport, ProcessHandlersExport, HttpHandlersExport
