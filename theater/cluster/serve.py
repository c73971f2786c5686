"""Joining a cluster when a server starts (``theater server --cluster``): the link, the replicated store, the node.
"""

from __future__ import annotations

from pathlib import Path

from store.replicated import ReplicatedStore
from theater.cluster.config import ClusterConfig
from theater.cluster.link import Link
from theater.cluster.node import ClusterNode
from theater.cluster.replicator import JetStreamReplicator


def join(config: ClusterConfig, home: Path, durability: str) -> tuple[ClusterNode, ReplicatedStore]:
    """Connect to the cluster and open the home's store behind the replicator; the node starts its work once the
    runtime is attached (``ClusterNode.attach``).

    Raises:
        ClusterError: the cluster cannot be reached. StoreOpenError: the home's store cannot be opened.
    """
    link = Link(config).open()
    replicator = JetStreamReplicator(link)
    try:
        store = ReplicatedStore(home / "store", replicator=replicator, durability=durability)
    except BaseException:
        link.close()
        raise
    replicator.store = store
    return ClusterNode(link.config, link, replicator), store
