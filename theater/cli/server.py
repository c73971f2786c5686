"""``theater server``: run a Theater on the home behind the HTTP management API (see docs/api.md)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import click

from theater.cli._context import Context
from theater.cli._maximums import max_option
from theater.cli.client import DEFAULT_ADDRESS, token_for
from theater.manifest import Maximums

pass_context = click.make_pass_decorator(Context)


@click.command()
@click.option("--address", help=f"HOST:PORT to listen on (default: the global --address, {DEFAULT_ADDRESS}); "
                                "port 0 picks a free port.")
@click.option("--home", "home", type=click.Path(file_okay=False), help="Theater home (overrides the global --home).")
@click.option("--durability", type=click.Choice(["sync", "buffered"]), default="sync", show_default=True,
              help="sync: fsync every commit; buffered: leave flushing to the OS.")
@click.option("--request-timeout", type=click.FloatRange(min=0.001), default=30.0, show_default=True,
              help="Seconds a request or open-channel waits for the actor's answer.")
@click.option("--header-timeout", type=click.FloatRange(min=0.001), default=10.0, show_default=True,
              help="Seconds a connection may take to send a request's headers (and may stay idle); then it is closed.")
@click.option("--body-timeout", type=click.FloatRange(min=0.001), default=60.0, show_default=True,
              help="Seconds a request may take to send its body; then it is answered 408 and closed.")
@click.option("--verify-timeout", type=click.FloatRange(min=0.001), default=300.0, show_default=True,
              help="Seconds one verify request may re-execute a chain; then it is answered 504.")
@click.option("--mailbox-size", type=click.IntRange(min=1), default=1024, show_default=True,
              help="Messages that may wait in each actor's mailbox; a sender beyond that is refused (429).")
@click.option("--passivate-after", type=click.FloatRange(min=0), default=None, metavar="SECONDS",
              help="Passivate an actor idle this long that holds nothing live: it drops its instance and comes back "
                   "on its next message. Durable resume then brings top-level actors back when first addressed. "
                   "Default: never.")
@click.option("--checkpoint-every", type=click.FloatRange(min=0.01), default=None, metavar="SECONDS",
              help="Sign a checkpoint of the home's audit log this often, when it grew (docs/audit.md). "
                   "Default: only on request.")
@click.option("--witness-key", "witness_keys", multiple=True, metavar="VKEY|FILE",
              help="Accept cosignatures of checkpoints by this witness (its key as printed by 'theater witness "
                   "--print-key', name+id+base64), or by each key in FILE (one a line). Repeatable.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker threads kept running actors' operations (default: twice the cores).")
@click.option("--max-threads", type=click.IntRange(min=1), default=None,
              help="The most worker threads at once, those of actors waiting in a request or a sleep included; "
                   "a wait beyond it answers the actor err (ResourceExhausted). Default 12000.")
@click.option("--no-resume", is_flag=True, help="Do not bring back the actors that were running when the last "
                                                "server on this home stopped.")
@click.option("--verbose", "-v", is_flag=True, help="Log every request, and more, on stderr.")
@click.option("--otel", is_flag=True, help="Export OpenTelemetry traces (a span per export call, host calls as "
                                           "children, one trace across actors) and metrics with OTLP over HTTP "
                                           "(needs the otel extra: pip install 'theater[otel]'). Default: off.")
@click.option("--otel-endpoint", metavar="URL", help="With --otel: the collector's OTLP/HTTP base URL "
                                                     "(default: $OTEL_EXPORTER_OTLP_ENDPOINT, else "
                                                     "http://localhost:4318).")
@click.option("--otel-header", "otel_headers", multiple=True, metavar="KEY=VALUE",
              help="With --otel: a header sent with every export (repeatable).")
@click.option("--otel-service-name", default="theater", show_default=True, help="With --otel: service.name.")
@click.option("--otel-interval", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
              metavar="SECONDS", help="With --otel: how often metrics are exported.")
@click.option("--cluster", "cluster_urls", default=None, metavar="nats://HOST:PORT[,...]",
              help="Join a Theater cluster on NATS JetStream (docs/cluster.md): chains are replicated, actors fail "
                   "over to other nodes, messages reach actors on any node. Default: run alone.")
@click.option("--node", default=None, help="This node's name in the cluster (default: host name and a random "
                                           "suffix). Needs --cluster.")
@click.option("--replicas", type=click.IntRange(min=1, max=5), default=3, show_default=True,
              help="JetStream replicas of the chains' stream and the buckets, when the cluster creates them.")
@click.option("--lease-ttl", type=click.FloatRange(min=0.5), default=3.0, show_default=True,
              help="Seconds an actor's lease lives unless its node refreshes it; failover takes about this long.")
@click.option("--placement", type=click.Choice(["least-loaded", "here"]), default="least-loaded",
              show_default=True, help="In a cluster: where a start that names no node runs, on the cluster's least "
                                      "loaded node (fewest actors) or on this one.")
@click.option("--child-placement", type=click.Choice(["parent", "least-loaded"]), default="parent",
              show_default=True, help="In a cluster: where a child a supervisor spawns runs, on its parent's node "
                                      "or on the least loaded node (supervised across nodes, docs/cluster.md).")
@max_option
@pass_context
def server(ctx: Context, address: str | None, home: str | None, durability: str, request_timeout: float,
           header_timeout: float, body_timeout: float, verify_timeout: float, mailbox_size: int,
           passivate_after: float | None, checkpoint_every: float | None, witness_keys: tuple[str, ...],
           workers: int | None,
           max_threads: int | None, no_resume: bool,
           verbose: bool, otel: bool, otel_endpoint: str | None, otel_headers: tuple[str, ...],
           otel_service_name: str, otel_interval: float,
           cluster_urls: str | None, node: str | None, replicas: int, lease_ttl: float, placement: str,
           child_placement: str, maximums: Maximums) -> None:
    """Run the actors of the home and serve the management API until SIGINT or SIGTERM.

    Actors that were running when the home's last server stopped (cleanly or not) come back from their last
    state, without init, unless their manifest says durable = false. When $THEATER_TOKEN or the file
    <home>/token holds a token, every request must carry "Authorization: Bearer <token>". With or without one,
    requests from web pages of other origins are refused; the startup line says how the server is protected.
    The server reads no file a client's manifest names; every manifest's [limits] must lie within the --max
    maximums.

    The web explorer is served at the root URL (http://HOST:PORT/): the actors, their timelines, each event with
    its state diff and replay, the message flow. With a token, its login page takes the token once and keeps a
    session cookie (docs/explorer.md).
    """
    from theater.server import ServerConfig, ServerError, is_loopback, parse_address, serve
    from theater.server.service import OtelConfig

    root = click.get_current_context().find_root()
    where = address or root.params.get("address") or DEFAULT_ADDRESS
    try:
        host, port = parse_address(where)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--address") from None
    if workers is not None and max_threads is not None and workers > max_threads:
        raise click.BadParameter(f"--workers {workers} is more than --max-threads {max_threads}",
                                 param_hint="--workers")
    cluster = _cluster_config(cluster_urls, node, replicas, lease_ttl, placement, child_placement)
    home_dir = Path(home).expanduser() if home else ctx.home
    token = token_for(home_dir)
    if not is_loopback(host) and token is None:
        click.echo(f"warning: listening on {host} without a token: anyone who can reach it controls this "
                   "home's actors; set THEATER_TOKEN or write <home>/token", err=True)
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    config = ServerConfig(home=home_dir, host=host, port=port, token=token, durability=durability,
                          request_timeout=request_timeout, header_timeout=header_timeout,
                          body_timeout=body_timeout, verify_timeout=verify_timeout, mailbox_messages=mailbox_size,
                          workers=workers, max_threads=max_threads, resume=not no_resume, access_log=verbose,
                          maximums=maximums, passivate_after=passivate_after, checkpoint_every=checkpoint_every,
                          otel=_otel(otel, otel_endpoint, otel_headers, otel_service_name, otel_interval, OtelConfig),
                          witness_keys=_witness_keys(witness_keys),
                          cluster=cluster)
    try:
        serve(config, _ready(home_dir, _protection(host, token is not None)))
    except ServerError as exc:
        click.echo(f"ServerError: {exc}", err=True)
        raise click.exceptions.Exit(1) from None


def _otel(on: bool, endpoint: str | None, headers: tuple[str, ...], service_name: str, interval: float,
          config: Any) -> Any:
    """The ``OtelConfig`` of the --otel options; None without --otel.

    Raises:
        click.UsageError: an --otel-* option without --otel, a header not KEY=VALUE, or the SDK is not installed.
    """
    if not on:
        if endpoint is not None or headers:
            raise click.UsageError("--otel-endpoint and --otel-header go with --otel")
        return None
    pairs = []
    for header in headers:
        key, sep, value = header.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{header!r} is not KEY=VALUE", param_hint="--otel-header")
        pairs.append((key.strip(), value.strip()))
    try:
        import opentelemetry.exporter.otlp.proto.http
        import opentelemetry.sdk  # noqa: F401
    except ImportError:
        raise click.UsageError("--otel needs the OpenTelemetry SDK and OTLP exporter: pip install 'theater[otel]'"
                               ) from None
    return config(endpoint=endpoint, headers=tuple(pairs), service_name=service_name, export_interval_s=interval)


def _witness_keys(values: tuple[str, ...]) -> tuple[Any, ...]:
    """Each ``--witness-key``: a key as text, or a file of keys one a line (blank lines and ``#`` comments)."""
    from store.checkpoint import CosignerKey
    from store.errors import InvalidInputError

    keys = []
    for value in values:
        path = Path(value).expanduser()
        lines = path.read_text().splitlines() if "+" not in value and path.is_file() else [value]
        for line in lines:
            if line.strip() and not line.lstrip().startswith("#"):
                try:
                    keys.append(CosignerKey.parse(line))
                except InvalidInputError as exc:
                    raise click.BadParameter(str(exc), param_hint="--witness-key") from None
    return tuple(keys)


def _cluster_config(urls: str | None, node: str | None, replicas: int, lease_ttl: float,
                    placement: str = "least-loaded", child_placement: str = "parent") -> Any:
    """The ``ClusterConfig`` of ``--cluster`` and ``--node``; None without ``--cluster``."""
    if urls is None:
        if node is not None:
            raise click.BadParameter("--node needs --cluster", param_hint="--node")
        return None
    from theater.cluster import ClusterConfig, ClusterError

    try:
        return ClusterConfig.parse(urls, node, replicas=replicas, lease_ttl=lease_ttl, placement=placement,
                                   child_placement=child_placement)
    except ClusterError as exc:
        raise click.BadParameter(str(exc), param_hint="--cluster") from None


def _protection(host: str, auth: bool) -> str:
    """How the server is protected, for its startup line."""
    from theater.server import is_loopback

    if auth:
        return "token required; cross-origin browser requests refused"
    if is_loopback(host):
        return "no token: only same-origin, non-browser clients; listening on loopback only"
    return f"no token: anyone who can reach {host} controls this home; cross-origin browser requests refused"


def _ready(home: Path, protection: str) -> Any:
    def ready(url: str, app: Any) -> None:
        from theater.server.service import SERVICE

        svc = app[SERVICE]
        if svc.cluster is not None:
            svc.cluster.http_url = url  # where the node answers requests forwarded to it (theater.cluster.api)
        counts = {k: svc.resumed_counts.get(k, 0) for k in ("resumed", "lazy", "failed", "not durable")}
        details = ", ".join(f"{n} {k}" for k, n in counts.items() if n) or "no actors to resume"
        click.echo(f"theater server listening on {url} (home {home}; {details}; {protection})")

    return ready
