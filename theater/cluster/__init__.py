"""A Theater cluster on NATS JetStream: several nodes that behave as one Theater (docs/cluster.md).

- ``config``: how a node joins (``ClusterConfig``) and the names of the stream, subjects and buckets.
- ``link``: the node's NATS connection, on an event loop of its own.
- ``replicator``: every chain is one subject of a replicated stream; appends are fenced by the subject's expected
  last sequence (``store.replicated`` holds the local side).
- ``chains``: reading a chain back from the stream into the local home, checking every hash and link.
- ``node``: leases (one owner per actor), heartbeats, failover, and messages forwarded to the owner.
- ``status``: what ``theater cluster status`` shows.

Imports ``store``, ``replay`` and the runtime; nothing outside the server imports this package, and only when a
node is started with ``--cluster``.
"""

from __future__ import annotations

from theater.cluster.config import ClusterConfig, ClusterError

__all__ = ["ClusterConfig", "ClusterError"]
