"""Commands that talk to a running ``theater server``: start, list, stop, restart, inspect, message, channel,
subscribe. Each parses, calls the HTTP API (``theater.cli.client``) and renders; ``--json`` prints the answer.
"""

from __future__ import annotations

import json
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from store import blob_digest

from theater.cli._context import Context, emit_json
from theater.cli._render import ago, console, data_summary
from theater.cli.client import ApiClient, RemoteError, ServerNotRunning, client_for, decode_bytes, encode_bytes
from theater.cli.completion import ACTOR_ID
from theater.manifest import DEFAULT_MAXIMUMS, load_manifest
from theater.porcelain import actor_rows
from theater.project import project_files
from theater.porcelain.forms import from_jsonable, text_of
from theater.porcelain.upgrade import new_build
from theater.status import ActorStatus

STATUS_STYLE = {ActorStatus.RUNNING: "green", ActorStatus.FAILED: "red", ActorStatus.STOPPED: "dim",
                ActorStatus.STARTING: "yellow", ActorStatus.INTERRUPTED: "yellow", ActorStatus.RECOVERING: "yellow",
                ActorStatus.PASSIVATED: "cyan"}


emit = emit_json


# start


@click.command()
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--initial-state", help="The initial state: JSON text, or @FILE for a file's raw bytes.")
@click.option("--parent", type=ACTOR_ID, help="Record this actor as the new actor's parent.")
@click.option("--id-only", is_flag=True, help="Print only the new actor's id.")
@click.option("--subscribe", is_flag=True, help="Then follow its events (from its first) until interrupted.")
@click.option("--json", "as_json", is_flag=True, help="Print the server's answer as JSON.")
@click.option("--node", default=None, help="In a cluster: start it on this node (the server forwards it there; "
                                           "docs/cluster.md). Default: where the server's --placement puts it.")
def start(manifest: Path, initial_state: str | None, parent: str | None, id_only: bool, subscribe: bool,
          as_json: bool, node: str | None) -> None:
    """Start the actor of MANIFEST on the server.

    The manifest, its component and its project's files are read here and uploaded to the server (which reads no
    files): every *.toml in MANIFEST's directory and the component and init_state files they name inside it, so a
    supervisor spawns worker.toml on the server as it does embedded.
    """
    api = client_for()
    body = start_body(api, manifest, initial_state, parent)
    if node is not None:
        body["node"] = node
    answer = api.post("/v1/actors", body)
    if as_json:
        emit(answer)
    elif id_only:
        click.echo(answer["id"])
    else:
        click.echo(f"started {answer['name']} {answer['id']} ({answer['status']})")
    if subscribe:
        follow(api, answer["id"], {"history": True}, as_json)


def start_body(api: ApiClient, path: Path, initial_state: str | None, parent: str | None) -> dict[str, Any]:
    """The ``POST /v1/actors`` body for a local manifest: its text, its initial state, and (uploaded first, as
    blobs) its component and its project's files (``theater.project``)."""
    manifest = load_manifest(path)
    body: dict[str, Any] = {"manifest": manifest.source_text, "source": str(path), "parent": parent}
    if manifest.component.kind == "path":  # read here, as a regular file of bounded size: the server reads none
        body["component_hash"] = upload(api, manifest.files.read(
            manifest.component.path, limit=DEFAULT_MAXIMUMS.component_file_bytes, what="component",
            source=str(path), field="component"))
    body["files"] = {name: upload(api, data) for name, data in project_files(path).items()}
    state = parse_state(initial_state) if initial_state is not None else manifest.init_state
    if state is not None:
        body["init_state"] = encode_bytes(state)
    return body


def upload(api: ApiClient, data: bytes) -> str:
    """Put ``data`` in the server's blob store unless it holds it already; its hash (hex)."""
    digest = blob_digest(data).hex()
    try:
        api.get(f"/v1/blobs/{digest}/info")
        return digest
    except RemoteError as exc:
        if exc.status != 404:
            raise
    stored = json.loads(api.raw("POST", "/v1/blobs", data))["hash"]
    if stored != digest:
        raise RemoteError("UploadError", f"the server stored a blob as {stored}, expected {digest}", 0)
    return digest


def parse_state(text: str) -> bytes:
    """``--initial-state``: ``@FILE`` is the file's bytes; anything else must be JSON (sent compact, keys sorted)."""
    if text.startswith("@"):
        try:
            return Path(text[1:]).read_bytes()
        except OSError as exc:
            raise click.BadParameter(f"cannot read {text[1:]}: {exc.strerror}", param_hint="--initial-state") from None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON ({exc}); use @FILE for raw bytes", param_hint="--initial-state") from None
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# list, inspect, stop, restart


@click.command("list")
@click.option("--all", "everything", is_flag=True, help="Also the home's actors this server does not run.")
@click.option("--limit", type=click.IntRange(min=1, max=10_000), help="One page of at most this many actors, in id "
                                                                      "order (the last line says how to go on).")
@click.option("--after", type=click.UUID, help="The page after this actor id (a full id; with or without --limit).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def list_(ctx: click.Context, everything: bool, limit: int | None, after: uuid.UUID | None, as_json: bool) -> None:
    """List the server's actors with their status (running, idle for how long, passivated, stopped, failed) and
    parent. Passivated actors hold no instance; their next message brings them back.

    With no server running, lists every actor of the home (--home) with the status its chain ends in
    (stopped, failed, passivated, or interrupted: it was running when its server went away), and says so on
    stderr. --limit and --after page through a large home in id order.
    """
    paged = limit is not None or after is not None
    try:
        actors = client_for().get("/v1/actors", all=everything, limit=limit,
                                  after=None if after is None else str(after))["actors"]
    except ServerNotRunning as exc:
        home = ctx.find_object(Context)
        assert home is not None  # the root command always sets it
        click.echo(f"{exc.message}; the actors of {home.home}, with the status their chains end in:", err=True)
        store = home.store(readonly=True) if (home.home / "store").exists() else None
        actors = [] if store is None else actor_rows(store, after=after, limit=limit) if paged else actor_rows(store)
    if as_json:
        emit(actors)
        return
    table = Table(box=None, pad_edge=False)
    for column in ("id", "name", "status", "parent", "events", "last event"):
        table.add_column(column, no_wrap=True)
    for a in actors if paged else sorted(actors, key=lambda a: (a["name"] or "", a["id"])):
        status = a["status"]
        shown = f"{status} (idle {a['idle_ms'] // 1000}s)" if a.get("idle_ms") is not None else status
        table.add_row(a["id"], a["name"] or "-", f"[{STATUS_STYLE.get(status, '')}]{shown}[/]",
                      (a["parent"] or "-")[:8], str(a["events"]),
                      ago(a["last_event_ms"]) if a.get("last_event_ms") else "-")
    console().print(table)
    if paged and limit is not None and len(actors) == limit:
        click.echo(f"more: --after {actors[-1]['id']}", err=True)


@click.command()
@click.argument("actor", type=ACTOR_ID)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def inspect(actor: str, as_json: bool) -> None:
    """Show everything about ACTOR: status, manifest, component, head, state, children."""
    show_actor(client_for().get(f"/v1/actors/{actor}"), as_json)


@click.command()
@click.argument("actor", type=ACTOR_ID)
@click.option("--json", "as_json", is_flag=True, help="Print the actor afterwards, as JSON.")
def stop(actor: str, as_json: bool) -> None:
    """Stop ACTOR (its chain records the stop)."""
    answer = client_for().post(f"/v1/actors/{actor}/stop")
    emit(answer) if as_json else click.echo(f"{answer['id']} {answer['status']}")


@click.command()
@click.argument("actor", type=ACTOR_ID)
@click.option("--component", "component", type=click.Path(exists=True),
              help="Restart with this new component (a .wasm file, or a project directory, built), once the "
                   "upgrade check over ACTOR's chain passes (see `theater upgrade-check`).")
@click.option("--force", is_flag=True, help="With --component: restart whatever the check says (recorded).")
@click.option("--accept", "accepted", multiple=True, type=click.Choice(["state-only", "different"]),
              help="With --component: also pass this verdict (repeatable).")
@click.option("--cache-dir", type=click.Path(file_okay=False), envvar="THEATER_BUILD_CACHE",
              help="Build cache for a project directory ($THEATER_BUILD_CACHE).")
@click.option("--json", "as_json", is_flag=True, help="Print the actor afterwards, as JSON.")
def restart(actor: str, component: str | None, force: bool, accepted: tuple[str, ...], cache_dir: str | None,
            as_json: bool) -> None:
    """Stop ACTOR if it runs and bring it back from its last state (without init).

    With --component the server first re-executes ACTOR's chain against the new component (every host call
    answered from the record) and refuses (UpgradeRefused, nothing recorded) unless every call gives the same
    answers and host calls (identical, or a verdict named by --accept), or --force is given. The chain then
    records the upgrade (actor/upgraded: old and new component, the verdict) and runs the new component.
    """
    if component is None:
        if force or accepted:
            raise click.UsageError("--force and --accept go with --component")
        answer = client_for().post(f"/v1/actors/{actor}/restart")
        emit(answer) if as_json else click.echo(f"{answer['id']} {answer['status']}")
        return
    build = new_build(Path(component), cache_dir=Path(cache_dir) if cache_dir else None)
    api = client_for()
    body = {"component_hash": upload(api, build.wasm), "force": force, "accept": list(accepted)}
    answer = api.post(f"/v1/actors/{actor}/restart", body)
    if as_json:
        emit(answer)
    else:
        upgrade = answer["upgrade"]
        click.echo(f"{answer['id']} {answer['status']} (component {build.digest.hex()[:12]}, upgrade check: "
                   f"{upgrade['verdict']}{', forced' if not upgrade['accepted'] else ''})")


def _grants_text(grants: list[dict[str, Any]] | None) -> str:
    """One line per granted handler, with its config as compact JSON (what the chain's manifest grants)."""
    if grants is None:
        return "unknown (the manifest is not in this home)"
    lines = []
    for grant in grants:
        config = json.dumps(grant["config"], sort_keys=True, separators=(",", ":"), default=str)
        lines.append(grant["type"] if config == "{}" else f"{grant['type']} {config}")
    return escape("\n".join(lines))


def show_actor(a: dict[str, Any], as_json: bool) -> None:
    """Render an ``inspect`` answer."""
    if as_json:
        emit(a)
        return
    head, state, failure = a["head"], a["state"], a["failure"]
    rows = [
        ("id", a["id"]), ("name", a["name"] or "-"),
        ("status", f"[{STATUS_STYLE.get(a['status'], '')}]{a['status']}[/]"),
        ("failure", f"{failure['kind']}: {failure['detail']}" if failure else "-"),
        ("parent", a["parent"] or "-"), ("children", ", ".join(a["children"]) or "-"),
        ("component", a["component"][:12]), ("manifest", a["manifest"][:12]),
        ("created", ago(a["created_ms"])), ("events", str(a["events"])),
        ("head", f"#{head['seq']} {head['hash'][:12]} {head['type']} ({ago(head['timestamp_ms'])})"),
        ("state", f"{state['size']} bytes, {state['hash'][:12]} (event #{state['seq']})" if state else "none"),
        ("grants", _grants_text(a.get("grants"))),
    ]
    table = Table(box=None, pad_edge=False, show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows:
        table.add_row(key, value)
    console().print(table)


# messages


@click.command()
@click.argument("actor", type=ACTOR_ID)
@click.argument("text", required=False)
@click.option("--file", "file", type=click.File("rb"), help="Send this file's bytes (- for stdin).")
@click.option("--request", "is_request", is_flag=True, help="Send a request and print the response.")
@click.option("--timeout", type=click.FloatRange(min=0.001, max=300), help="Seconds to wait for the response.")
@click.option("--raw", is_flag=True, help="Write the response's raw bytes to stdout.")
@click.option("--json", "as_json", is_flag=True, help="Print the server's answer as JSON.")
def message(actor: str, text: str | None, file: Any, is_request: bool, timeout: float | None, raw: bool,
            as_json: bool) -> None:
    """Send TEXT (UTF-8) or a file's bytes to ACTOR; with --request, print its response."""
    if (text is None) == (file is None):
        raise click.UsageError("give the message as TEXT or --file, one of them")
    payload = text.encode() if text is not None else file.read()
    api = client_for()
    if not is_request:
        answer = api.post(f"/v1/actors/{actor}/send", {"message": encode_bytes(payload)})
        if as_json:
            emit(answer)
        return
    answer = api.post(f"/v1/actors/{actor}/request", {"message": encode_bytes(payload), "timeout": timeout})
    if as_json:
        emit(answer)
    elif raw:
        sys.stdout.buffer.write(decode_bytes(answer["response"]) or b"")
        sys.stdout.buffer.flush()
    else:
        click.echo(show_bytes(answer["response"]))


def show_bytes(value: dict[str, Any] | None) -> str:
    """A payload for humans: its text when it is UTF-8 text (line breaks and tabs allowed), else its size and
    hex."""
    if value is None:
        return "(none)"
    data = decode_bytes(value) or b""
    text = text_of(data)
    return text if text is not None else f"<{len(data)} bytes> {data.hex()}"


# channels


@click.group()
def channel() -> None:
    """Talk to an actor over a channel."""


@channel.command("open")
@click.argument("actor", type=ACTOR_ID)
@click.option("--message", "initial", default="", help="The opening message (UTF-8).")
@click.option("--json", "as_json", is_flag=True, help="Print what arrives as JSON lines.")
def channel_open(actor: str, initial: str, as_json: bool) -> None:
    """Open a channel to ACTOR: each line of stdin is sent, each message from the actor is printed.

    The channel is closed at the end of stdin; the command ends when the actor closes the channel.
    """
    api = client_for()
    opened = api.post(f"/v1/actors/{actor}/channels", {"message": encode_bytes(initial.encode())})
    cid = opened["channel"]
    _print_message(opened, "welcome", as_json, opened["welcome"])
    reader = threading.Thread(target=_print_incoming, args=(api, cid, as_json), daemon=True)
    reader.start()
    try:
        for line in sys.stdin:
            if not reader.is_alive():
                break
            api.post(f"/v1/channels/{cid}/send", {"message": encode_bytes(line.rstrip("\n").encode())})
    finally:
        if reader.is_alive():
            try:
                api.call("DELETE", f"/v1/channels/{cid}")
            except RemoteError:
                pass  # the actor closed it meanwhile
        reader.join(timeout=5)


def _print_incoming(api: ApiClient, cid: str, as_json: bool) -> None:
    try:
        for kind, payload in api.stream(f"/v1/channels/{cid}/stream"):
            if kind == "message":
                _print_message(payload, "message", as_json, payload["message"])
            elif kind == "closed":
                _print_message(payload, "closed", as_json, None)
                return
    except RemoteError as exc:
        exc.show()


def _print_message(payload: dict[str, Any], kind: str, as_json: bool, value: dict[str, Any] | None) -> None:
    if as_json:
        click.echo(json.dumps({"kind": kind, **payload}, sort_keys=True))
    elif kind == "closed":
        click.echo("(channel closed)", err=True)
    elif value is not None or kind == "message":
        click.echo(show_bytes(value))


# subscribe


@click.command()
@click.argument("actor", type=ACTOR_ID)
@click.option("--history", is_flag=True, help="Start from the actor's first event, then follow live.")
@click.option("--from", "from_seq", type=click.IntRange(min=0), help="Start from this sequence number.")
@click.option("--type", "types", multiple=True,
              help="Only events of this type (repeatable; a trailing * matches a prefix).")
@click.option("--limit", type=click.IntRange(min=1), help="Stop after this many events.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per event (JSON lines).")
def subscribe(actor: str, history: bool, from_seq: int | None, types: tuple[str, ...], limit: int | None,
              as_json: bool) -> None:
    """Follow ACTOR's events live, in chain order (ACTOR - reads the id from stdin).

    theater start m.toml --id-only | theater subscribe - --history
    """
    if actor == "-":
        actor = sys.stdin.readline().strip()
        if not actor:
            raise click.UsageError("expected an actor id on stdin")
        actor = ACTOR_ID.convert(actor, None, None)
    query = {"history": history, "from": from_seq, "type": list(types), "limit": limit}
    follow(client_for(), actor, query, as_json)


def follow(api: ApiClient, actor: str, query: dict[str, Any], as_json: bool) -> None:
    """Print an actor's event stream until it ends (``limit``) or the user interrupts it."""
    for kind, payload in _stream(api, actor, query):
        if kind == "event":
            click.echo(json.dumps(payload, sort_keys=True) if as_json else event_line(payload))
        elif kind == "error":
            raise RemoteError(payload["error"], payload["message"], 0)


def _stream(api: ApiClient, actor: str, query: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    return api.stream(f"/v1/actors/{actor}/subscribe", **query)


def event_line(event: dict[str, Any], width: int = 100) -> str:
    """One line for an event: seq, short hash, type, a summary of its data."""
    text = data_summary(from_jsonable(event["data"]), width)
    return f"{event['seq']:>6}  {event['hash'][:12]}  {event['type']:<44}  {text}"


COMMANDS = (channel, inspect, list_, message, restart, start, stop, subscribe)

__all__ = ["COMMANDS", "event_line", "show_bytes", "start_body"]
