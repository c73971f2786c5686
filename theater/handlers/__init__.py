"""Host capabilities (handlers) an actor's manifest can grant.

Each handler provides the host functions of one or more ``theater:simple`` import interfaces. Host functions take
the recorded-form parameters and return the recorded-form result (see ``replay.values``): every value they see or
give is exactly what goes into the actor's chain.

A handler sees its actor and the runtime only through ``theater.host`` (docs/handlers.md tells how to write one).
``check_grants`` is the one place where a component's imports are checked against its manifest's grants.
"""

from collections.abc import Mapping
from typing import Any

from theater.errors import LinkError, ManifestError
from theater.handlers._base import HANDLER_FOR_INTERFACE, Handler, handler_for_import
from theater.handlers.http_client import HttpClientHandler
from theater.handlers.http_framework import HttpFrameworkHandler
from theater.handlers.message_server import MessageServerHandler
from theater.handlers.random import RandomHandler
from theater.handlers.runtime import RuntimeHandler
from theater.handlers.supervisor import SupervisorHandler
from theater.handlers.timing import TimingHandler
from theater.manifest import Manifest

IMPLEMENTED: dict[str, type[Handler]] = {
    "http-client": HttpClientHandler,
    "http-framework": HttpFrameworkHandler,
    "message-server": MessageServerHandler,
    "random": RandomHandler,
    "runtime": RuntimeHandler,
    "supervisor": SupervisorHandler,
    "timing": TimingHandler,
}


def check_grants(manifest: Manifest, imports: Mapping[str, Mapping[str, Any]]) -> None:
    """Check that this build has every handler ``manifest`` asks for and that it grants every interface the
    component imports functions from (``imports``: ``replay.boundary.import_functions``). Called before an actor
    is recorded, and again before each of its instances is made.

    Raises:
        ManifestError: a handler type is not available in this build.
        LinkError: an import is not granted (the message names the handler that would grant it, if any).
    """
    for handler in manifest.handlers:
        if handler.type not in IMPLEMENTED:
            raise ManifestError(
                manifest.source, "handlers", f"handler type {handler.type!r} is not available in this build"
            )
    granted = manifest.granted
    for interface, functions in imports.items():
        if not functions:
            continue
        needed = handler_for_import(interface)
        if needed is None or needed not in granted:
            raise LinkError(manifest.name, interface, needed)


__all__ = [
    "HANDLER_FOR_INTERFACE",
    "IMPLEMENTED",
    "Handler",
    "HttpClientHandler",
    "HttpFrameworkHandler",
    "MessageServerHandler",
    "RandomHandler",
    "RuntimeHandler",
    "SupervisorHandler",
    "TimingHandler",
    "check_grants",
    "handler_for_import",
]
