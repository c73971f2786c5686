"""The live system: manifests, the actor runtime, host handlers, supervision, the server and the CLI.

Imports ``store`` and ``replay``. Only ``theater.cli`` (and the server) read environment variables and config files.
The embeddable API is ``Theater`` (``theater.runtime``); ``theater.sdk`` is the guest side and is not imported here.
Every error raised is a ``TheaterError`` (the tree is drawn in ``theater.errors``). Handlers and supervision see
the runtime only through ``theater.host``.
"""

__version__ = "0.1.0"

from theater.errors import (
    ActorNotFound,
    ActorNotRunning,
    ChannelClosed,
    ChannelRejected,
    ExportMissing,
    LinkError,
    MailboxFull,
    ManifestError,
    MessageError,
    MessageTooLarge,
    ReceiveTimeout,
    ReplyAbandoned,
    ReplyTimeout,
    RequestCancelled,
    ResourceExhausted,
    RuntimeFault,
    SupervisionError,
    TheaterError,
)
from theater.files import FileAccess
from theater.manifest import Manifest, Maximums, load_manifest, parse_manifest
from theater.runtime import Theater

__all__ = [
    "ActorNotFound",
    "ActorNotRunning",
    "ChannelClosed",
    "ChannelRejected",
    "ExportMissing",
    "FileAccess",
    "LinkError",
    "MailboxFull",
    "Manifest",
    "ManifestError",
    "Maximums",
    "MessageError",
    "MessageTooLarge",
    "ReceiveTimeout",
    "ReplyAbandoned",
    "ReplyTimeout",
    "RequestCancelled",
    "ResourceExhausted",
    "RuntimeFault",
    "SupervisionError",
    "Theater",
    "TheaterError",
    "__version__",
    "load_manifest",
    "parse_manifest",
]
