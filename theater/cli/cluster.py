"""``theater cluster``: look at a Theater cluster on NATS JetStream (docs/cluster.md)."""

from __future__ import annotations

import json
from typing import Any

import click

from theater.cli._context import Context

pass_context = click.make_pass_decorator(Context)


@click.group()
def cluster() -> None:
    """A Theater cluster on NATS JetStream: nodes, leases, replication (docs/cluster.md)."""


@cluster.command()
@click.option("--cluster", "servers", envvar="THEATER_CLUSTER", required=True,
              help="NATS URLs of the cluster, nats://HOST:PORT[,...] ($THEATER_CLUSTER).")
@click.option("--check", is_flag=True, help="Also read every chain back from the stream and check its hashes, "
                                             "links and sequence numbers.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(servers: str, check: bool, as_json: bool) -> None:
    """Nodes (with their heartbeats), leases and actors per node, and the stream's replication state."""
    from theater.cluster.config import ClusterConfig
    from theater.cluster.link import Link
    from theater.cluster.status import chain_actors, check_chains, cluster_status

    config = ClusterConfig.parse(servers, node="cli")
    link = Link(config).open()
    try:
        report: dict[str, Any] = link.call(cluster_status(link), 30)
        if check:
            report["chains"] = link.call(check_chains(link, link.call(chain_actors(link), 30)), 300)
    finally:
        link.close()
    if as_json:
        click.echo(json.dumps(report, indent=2, sort_keys=True))
        return
    _render(report)


@cluster.command()
@click.argument("actors", nargs=-1, required=True)
@click.option("--cluster", "servers", envvar="THEATER_CLUSTER", required=True,
              help="NATS URLs of the cluster, nats://HOST:PORT[,...] ($THEATER_CLUSTER).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
def pull(ctx: Context, actors: tuple[str, ...], servers: str, as_json: bool) -> None:
    """Copy chains (full actor ids) from the cluster's stream into the home, checking every event and blob, so
    that `theater verify`, `replay`, `events` and `state` work on them here. The home must not be a running
    server's (it would not see the writes); use a home of its own."""
    import uuid

    from store.errors import InvalidInputError
    from theater.cluster.chains import apply_chain, fetch_blob, read_chain
    from theater.cluster.config import ClusterConfig
    from theater.cluster.link import Link
    from theater.server.serve import home_lock

    ids = []
    for text in actors:
        try:
            ids.append(uuid.UUID(text))
        except ValueError:
            raise InvalidInputError("actor id", text, "a whole actor id (UUID)") from None
    report: dict[str, dict[str, int]] = {}
    link = Link(ClusterConfig.parse(servers, node="cli")).open()
    try:
        with home_lock(ctx.home):
            store = ctx.store()
            for actor in ids:
                messages = link.call(read_chain(link, actor), 300)
                fetched = {d: link.call(fetch_blob(link, d), 300) for m in messages for d in m.refs
                           if not store.blobs.has(d)}
                cursor = apply_chain(store, actor, messages, fetched)
                report[str(actor)] = {"events": cursor.head.seq + 1}
    finally:
        link.close()
    if as_json:
        click.echo(json.dumps(report, indent=2, sort_keys=True))
        return
    for name, result in report.items():
        click.echo(f"{name}: {result['events']} events")


def _render(report: dict[str, Any]) -> None:
    stream = report["stream"]
    click.echo(f"stream {stream['name']}: {stream['messages']} messages, {stream['bytes']} bytes, "
               f"{stream['replicas']} replicas")
    for peer in stream["peers"]:
        role = "leader" if peer["leader"] else ("current" if peer["current"] else f"lagging {peer['lag']}")
        click.echo(f"  {peer['name']}: {role}{' (offline)' if peer.get('offline') else ''}")
    click.echo(f"nodes: {len(report['nodes'])}; actors listed: {report['actors']}; "
               f"without an owner now: {len(report['unowned'])}")
    for name, node in report["nodes"].items():
        click.echo(f"  {name}: {node['leases']} leases (pid {node.get('pid')})")
    for actor, owner in report["leases"].items():
        click.echo(f"  lease {actor} -> {owner}")
    for actor, result in report.get("chains", {}).items():
        click.echo(f"  chain {actor}: " + (f"{result['events']} events ok" if "events" in result
                                          else f"BROKEN {result['error']}"))
