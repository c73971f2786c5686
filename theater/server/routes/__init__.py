"""The routes of the management API, one module per noun: ``actors``, ``records``, ``channels``, ``blobs``."""

from theater.server.routes import actors, blobs, channels, records

ROUTE_TABLES = (actors.routes, records.routes, channels.routes, blobs.routes)

__all__ = ["ROUTE_TABLES"]
