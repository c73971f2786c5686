"""The routes of the management API, one module per noun: ``actors``, ``records``, ``channels``, ``blobs``,
``audit``, ``lineage`` (fork, revert)."""

from theater.server.routes import actors, audit, blobs, channels, lineage, records

ROUTE_TABLES = (actors.routes, records.routes, channels.routes, blobs.routes, audit.routes, lineage.routes)

__all__ = ["ROUTE_TABLES"]
