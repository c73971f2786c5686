"""What ``theater cluster status`` shows: the nodes and their heartbeats, the leases (actors per node), and the
stream's replication state (its leader, each replica current or lagging)."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from nats.errors import Error as NatsError

from store.errors import TheaterError
from theater.cluster.chains import check_chain, read_chain
from theater.cluster.config import ACTORS, LEASES, NODES, STREAM
from theater.cluster.link import Link


async def cluster_status(link: Link) -> dict[str, Any]:
    """The cluster as its buckets and stream tell it now."""
    nodes = {name: json.loads(value) for name, value in (await link.entries(NODES)).items()}
    leases = {key: value.decode() for key, value in (await link.entries(LEASES)).items()}
    listed = await link.entries(ACTORS)
    info = await link.js.stream_info(STREAM)
    cluster = info.cluster
    replicas = [{"name": cluster.leader, "leader": True, "current": True, "lag": 0}] if cluster else []
    for peer in (cluster.replicas or []) if cluster else []:
        replicas.append({"name": peer.name, "leader": False, "current": bool(peer.current),
                         "offline": bool(peer.offline), "lag": peer.lag or 0})
    per_node: dict[str, int] = {}
    for owner in leases.values():
        per_node[owner] = per_node.get(owner, 0) + 1
    return {
        "nodes": {name: {**beat, "leases": per_node.get(name, 0)} for name, beat in sorted(nodes.items())},
        "leases": dict(sorted(leases.items())),
        "actors": len(listed),
        "unowned": sorted(set(listed) - set(leases)),
        "stream": {"name": STREAM, "messages": info.state.messages, "bytes": info.state.bytes,
                   "replicas": info.config.num_replicas, "peers": replicas},
    }


async def check_chains(link: Link, actors: list[uuid.UUID]) -> dict[str, Any]:
    """Check each chain as the stream holds it (``theater.cluster.chains.check_chain``): events per chain, or the
    error that breaks it."""
    out: dict[str, Any] = {}
    for actor in actors:
        try:
            out[str(actor)] = {"events": check_chain(await read_chain(link, actor), actor)}
        except (NatsError, asyncio.TimeoutError, TheaterError) as exc:  # a report: every chain gets its line
            out[str(actor)] = {"error": f"{type(exc).__name__}: {exc}"}
    return out


async def chain_actors(link: Link) -> list[uuid.UUID]:
    """Every actor with a chain on the stream (from the stream's subjects)."""
    info = await link.js.stream_info(STREAM, subjects_filter=">")
    subjects = info.state.subjects or {}
    return sorted(uuid.UUID(s.rsplit(".", 1)[1]) for s in subjects)
