"""The live system: manifests, the actor runtime, host handlers, supervision, the server and the CLI.

Imports ``store`` and ``replay``. Only ``theater.cli`` (and the server) read environment variables and config files.
"""

__version__ = "0.1.0"
