"""How a node joins a cluster, and the names every node agrees on."""

from __future__ import annotations

import re
import socket
import uuid
from dataclasses import dataclass

from store.errors import TheaterError
from theater.errors import RuntimeFault

STREAM = "THEATER_CHAINS"
CHAIN_SUBJECT = "theater.chain"  # theater.chain.<actor id>: one subject per chain
LEASES = "theater-leases"  # actor id -> owning node, expires unless its owner refreshes it
ACTORS = "theater-actors"  # actor id -> what a node needs to know to take it over (kept until it ends)
NODES = "theater-nodes"  # node name -> its heartbeat (address, actors), expires with it
LABELS = "theater-labels"  # a client's label (base64url of its name) -> the hex digest it points at
BLOBS = "theater-blobs"  # the object store: blobs too large to travel inside a chain's messages
NODE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
PLACEMENTS = ("least-loaded", "here")  # where a start that names no node runs
CHILD_PLACEMENTS = ("parent", "least-loaded")  # where a child a supervisor spawns runs


class ClusterError(TheaterError):
    """The cluster cannot be joined or reached: ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class ActorUnavailable(RuntimeFault):
    """No node holds the actor's lease right now (a failover is under way): try again shortly."""

    def __init__(self, actor: str) -> None:
        self.actor = actor
        super().__init__(f"no node runs actor {actor} right now (a failover may be under way); try again")


class ClusterUnreachable(ActorUnavailable):
    """This node cannot reach the cluster now (its NATS connection is down): it runs none of the cluster's actors
    meanwhile, and cannot ask which node runs ``actor``."""

    def __init__(self, actor: str) -> None:
        self.actor = actor
        RuntimeFault.__init__(self, f"this node cannot reach the cluster now, so neither actor {actor}: try again, "
                                    "or through another node")


class NodeUnavailable(ActorUnavailable):
    """No node named ``node`` answers (a start placed there)."""

    def __init__(self, node: str) -> None:
        self.node = node
        RuntimeFault.__init__(self, f"no node {node!r} answers in the cluster")


class RemoteRefused(RuntimeFault):
    """The node that runs ``actor`` refused a message to it, or it failed there: ``error`` and ``detail`` are what
    that node answered."""

    def __init__(self, actor: str, error: str, detail: str) -> None:
        self.actor = actor
        self.error = error
        self.detail = detail
        super().__init__(f"actor {actor} (on another node): {error}: {detail}")


def chain_subject(actor: uuid.UUID) -> str:
    return f"{CHAIN_SUBJECT}.{actor}"


def node_subject(node: str) -> str:
    """Where a node answers the messages forwarded to the actors it owns."""
    return f"theater.node.{node}.rpc"


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterConfig:
    """How a node joins a cluster.

    Attributes:
        servers: NATS URLs (``nats://HOST:PORT``), any of the cluster's servers.
        node: this node's name, unique in the cluster (default: the host name and a random suffix).
        replicas: JetStream replicas of the stream and buckets (3: losing one server loses nothing).
        lease_ttl: seconds a lease lives without being refreshed; an owner refreshes every third of it and stops
            running an actor whose lease it could not refresh within it. Failover takes about this long.
        scan_every: seconds between two looks for actors whose lease expired (to take them over).
        timeout: seconds one JetStream call may take before it counts as failed.
        placement: where a start that names no node runs: ``least-loaded`` (the node running the fewest actors
            among those that answer; this node when tied) or ``here`` (the node the start was sent to).
        child_placement: where a child a supervisor spawns runs: ``parent`` (its parent's node) or
            ``least-loaded`` (as ``placement``; ``theater.cluster.remote`` supervises it across nodes).
    """

    servers: tuple[str, ...]
    node: str
    replicas: int = 3
    lease_ttl: float = 3.0
    scan_every: float = 0.5
    timeout: float = 5.0
    placement: str = "least-loaded"
    child_placement: str = "parent"

    @staticmethod
    def parse(servers: str, node: str | None = None, **options: float | int | str) -> ClusterConfig:
        """A config from ``--cluster nats://HOST:PORT[,...]`` and ``--node NAME``.

        Raises:
            ClusterError: a URL or the node name is malformed.
        """
        urls = tuple(url.strip() for url in servers.split(",") if url.strip())
        if not urls:
            raise ClusterError("--cluster needs at least one nats://HOST:PORT")
        for url in urls:
            if not re.match(r"^(nats|tls)://[^\s/]+:\d{1,5}$", url):
                raise ClusterError(f"not a NATS server URL: {url!r} (expected nats://HOST:PORT)")
        name = node or f"{socket.gethostname().split('.')[0]}-{uuid.uuid4().hex[:6]}"
        if not NODE_NAME.match(name):
            raise ClusterError(f"not a node name: {name!r} (letters, digits, - and _, at most 64)")
        if options.get("placement", PLACEMENTS[0]) not in PLACEMENTS:
            raise ClusterError(f"not a placement: {options['placement']!r} (one of {', '.join(PLACEMENTS)})")
        if options.get("child_placement", CHILD_PLACEMENTS[0]) not in CHILD_PLACEMENTS:
            raise ClusterError(f"not a child placement: {options['child_placement']!r} "
                               f"(one of {', '.join(CHILD_PLACEMENTS)})")
        return ClusterConfig(servers=urls, node=name, **options)  # type: ignore[arg-type]
