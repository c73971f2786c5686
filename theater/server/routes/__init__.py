"""The routes of the management API, one module per noun: ``actors``, ``records``, ``channels``, ``blobs``,
``audit``, ``lineage`` (fork, revert), ``search``."""

from theater.server.routes import actors, audit, blobs, channels, lineage, records, search

ROUTE_TABLES = (actors.routes, records.routes, channels.routes, blobs.routes, audit.routes, lineage.routes,
                search.routes)

__all__ = ["ROUTE_TABLES"]
