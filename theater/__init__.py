"""The live system: manifests, the actor runtime, host handlers, supervision, the server and the CLI.

Imports ``store`` and ``replay``. Only ``theater.cli`` (and the server) read environment variables and config files.
The embeddable API is ``Theater`` (``theater.runtime``); ``theater.sdk`` is the guest side and is not imported here.
"""

__version__ = "0.1.0"

from theater.errors import (
    ActorNotFound,
    ActorNotRunning,
    LinkError,
    ManifestError,
    MessageError,
    RuntimeFault,
    SupervisionError,
)
from theater.files import FileAccess
from theater.manifest import Manifest, Maximums, load_manifest, parse_manifest
from theater.runtime import Theater

__all__ = [
    "ActorNotFound",
    "ActorNotRunning",
    "FileAccess",
    "LinkError",
    "Manifest",
    "ManifestError",
    "Maximums",
    "MessageError",
    "RuntimeFault",
    "SupervisionError",
    "Theater",
    "__version__",
    "load_manifest",
    "parse_manifest",
]
