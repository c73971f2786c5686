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
from theater.handlers.environment import EnvironmentHandler
from theater.handlers.filesystem import FilesystemHandler
from theater.handlers.http_client import HttpClientHandler
from theater.handlers.http_framework import HttpFrameworkHandler
from theater.handlers.message_server import MessageServerHandler
from theater.handlers.process import ProcessHandler
from theater.handlers.random import RandomHandler
from theater.handlers.runtime import RuntimeHandler
from theater.handlers.store import StoreHandler
from theater.handlers.supervisor import SupervisorHandler
from theater.handlers.timing import TimingHandler
from theater.manifest import Manifest
from theater.manifest import check_permissions as check_types_and_limits

IMPLEMENTED: dict[str, type[Handler]] = {
    "environment": EnvironmentHandler,
    "filesystem": FilesystemHandler,
    "http-client": HttpClientHandler,
    "http-framework": HttpFrameworkHandler,
    "message-server": MessageServerHandler,
    "process": ProcessHandler,
    "random": RandomHandler,
    "runtime": RuntimeHandler,
    "store": StoreHandler,
    "supervisor": SupervisorHandler,
    "timing": TimingHandler,
}


def configs(manifest: Manifest) -> dict[str, dict[str, Any]]:
    """Each granted handler type's config, as the actor's instance gets it (``runtime`` always, with none)."""
    granted: dict[str, dict[str, Any]] = {"runtime": {}}
    granted.update({h.type: h.config for h in manifest.handlers})
    return granted


def check_permissions(child: Manifest, parent: Manifest) -> None:
    """Check that a child's grants lie within its parent's: handler types and ``[limits]``
    (``theater.manifest.check_permissions``), then each handler's config (``Handler.config_within``: paths inside
    paths, variables inside variables, programs, store ids, limits no larger).

    Raises:
        ManifestError: naming the child's source, the handler's config field, and what is more than its parent's.
    """
    check_types_and_limits(child, parent)
    theirs = configs(parent)
    for type_, config in configs(child).items():
        handler = IMPLEMENTED.get(type_)
        if handler is None:
            raise ManifestError(child.source, "handlers", f"handler type {type_!r} is not available in this build")
        handler.check_config(child.source, config)
        wider = handler.config_within(theirs[type_], config)
        if wider is not None:
            problem = (f"{child.name!r} asks for more of handler {type_!r} than its parent {parent.name!r} was "
                       f"granted: {wider}; a child's grants cannot exceed its parent's")
            raise ManifestError(child.source, f"handlers.{type_}.config", problem)


def check_origin(manifest: Manifest) -> None:
    """Check that a manifest starting an actor outside any tree may grant what it asks for: a handler that reaches
    the host's world (files, environment variables, programs) is granted only by the operator's own manifests
    (read from disk, or handed to ``Theater.start`` as text), never by an API client's or an uploaded one.

    Raises:
        ManifestError: naming the handler and who wrote the manifest.
    """
    if manifest.files.mode in ("trusted", "recorded"):
        return
    for index, handler in enumerate(manifest.handlers):
        found = IMPLEMENTED.get(handler.type)
        if found is not None and found.reaches_host:
            problem = (f"handler {handler.type!r} reaches the host's files, variables or programs: only the "
                       f"operator's own manifests may grant it, and this one comes from {manifest.files.origin}")
            raise ManifestError(manifest.source, f"handlers[{index}].type", problem)


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
    "EnvironmentHandler",
    "FilesystemHandler",
    "Handler",
    "HttpClientHandler",
    "HttpFrameworkHandler",
    "MessageServerHandler",
    "ProcessHandler",
    "RandomHandler",
    "RuntimeHandler",
    "StoreHandler",
    "SupervisorHandler",
    "TimingHandler",
    "check_grants",
    "check_origin",
    "check_permissions",
    "configs",
    "handler_for_import",
]
