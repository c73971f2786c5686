"""Host capabilities (handlers) an actor's manifest can grant.

Each handler provides the host functions of one or more ``theater:simple`` import interfaces. Host functions take
the recorded-form parameters and return the recorded-form result (see ``replay.values``): every value they see or
give is exactly what goes into the actor's chain.
"""

from theater.handlers._base import HANDLER_FOR_INTERFACE, Handler, handler_for_import
from theater.handlers.message_server import MessageServerHandler
from theater.handlers.random import RandomHandler
from theater.handlers.runtime import RuntimeHandler
from theater.handlers.supervisor import SupervisorHandler
from theater.handlers.timing import TimingHandler

IMPLEMENTED: dict[str, type[Handler]] = {
    "message-server": MessageServerHandler,
    "random": RandomHandler,
    "runtime": RuntimeHandler,
    "supervisor": SupervisorHandler,
    "timing": TimingHandler,
}

__all__ = [
    "HANDLER_FOR_INTERFACE",
    "IMPLEMENTED",
    "Handler",
    "MessageServerHandler",
    "RandomHandler",
    "RuntimeHandler",
    "SupervisorHandler",
    "TimingHandler",
    "handler_for_import",
]
