"""``theater server``: a Theater runtime on a home, behind an HTTP JSON management API (aiohttp).

Layout: ``service`` (what handlers share: the config, the runtime, worker threads), ``app`` (the application and
its error middleware), ``routes/`` (one module per noun), ``subscriptions`` and ``streams`` (live event streams,
SSE or WebSocket), ``hub`` (commits wake the streams), ``channels`` (client channels), ``manifests`` (manifests
from clients: no server-side file reads), ``durable`` (actors resumed at start), ``auth`` (the bearer token),
``origin`` (cross-origin browser requests and wrong content types refused),
``errors`` (the one mapping of Theater errors to HTTP statuses), ``wire`` (JSON forms), ``serve`` (running it).
The endpoints are documented in ``docs/api.md``. Imports ``theater``, ``replay``, ``store`` and aiohttp; the CLI
(``theater.cli.server``) is the only module that reads the environment for it.
"""

from theater.server.app import create_app
from theater.server.serve import ServerError, is_loopback, parse_address, serve
from theater.server.service import ServerConfig

__all__ = ["ServerConfig", "ServerError", "create_app", "is_loopback", "parse_address", "serve"]
