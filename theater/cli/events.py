"""``theater events`` and ``theater state``: an actor's chain and its state at any point, from the record."""

from __future__ import annotations

import sys
import uuid

import click
from rich.console import Console
from rich.table import Table

from replay import state_at, state_event_at
from store import NotFoundError, Store, parse_actor_id
from theater.cli._context import Context, emit_json, resolve_event
from theater.cli._render import ago, event_json, jsonable, short, summary

pass_context = click.make_pass_decorator(Context)
SEQ = click.IntRange(0, 2**63 - 1)  # a sequence number (stored as 8 bytes)


@click.command()
@click.argument("actor")
@click.option("--type", "types", multiple=True,
              help="Only events of this type (repeatable; a trailing * matches a prefix).")
@click.option("--from", "from_seq", type=SEQ, default=0, show_default=True,
              help="First sequence number.")
@click.option("--to", "to_seq", type=SEQ, help="Last sequence number (inclusive).")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many events.")
@click.option("--format", "fmt", type=click.Choice(["pretty", "compact", "json"]), default="pretty", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option("--full", is_flag=True, help="Show full hashes.")
@pass_context
def events(ctx: Context, actor: str, types: tuple[str, ...], from_seq: int, to_seq: int | None,
           limit: int | None, fmt: str, as_json: bool, full: bool) -> None:
    """List ACTOR's events (its chain), oldest first. An ACTOR with no chain in the home is an error."""
    st = ctx.store(readonly=True)
    actor_id = _known(st, actor)
    stop = None if to_seq is None else to_seq + 1
    selected = []
    for event in st.log.events(actor_id, from_seq, stop):
        if types and not any(_matches(event.type, t) for t in types):
            continue
        selected.append(event)
        if limit is not None and len(selected) >= limit:
            break
    if as_json or fmt == "json":
        emit_json([event_json(e) for e in selected])
    elif fmt == "compact":
        for e in selected:
            click.echo(f"{e.seq}\t{short(e.hash, full)}\t{e.type}\t{summary(e, 200)}")
    else:
        table = Table(box=None, pad_edge=False)
        for column in ("seq", "hash", "type", "when", "data"):
            table.add_column(column, overflow="fold" if column == "data" else "ellipsis", no_wrap=column != "data")
        for e in selected:
            table.add_row(str(e.seq), short(e.hash, full), e.type, ago(e.timestamp_ms), summary(e))
        Console(soft_wrap=False).print(table)


def _known(st: Store, actor: str) -> uuid.UUID:
    """The id of an actor that has a chain in this home.

    Raises:
        NotFoundError: it has none.
    """
    actor_id = parse_actor_id(actor)
    if st.log.head(actor_id).hash is None:
        raise NotFoundError("actor", str(actor_id))
    return actor_id


def _matches(event_type: str, pattern: str) -> bool:
    return event_type.startswith(pattern[:-1]) if pattern.endswith("*") else event_type == pattern


@click.command()
@click.argument("actor")
@click.option("--at", "at_event", help="The state right after this event (hash or unique hex prefix).")
@click.option("--seq", type=SEQ, help="The state right after event number SEQ.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: the event the state comes from and the state.")
@click.option("--raw", is_flag=True, help="Write the state's raw bytes to stdout.")
@pass_context
def state(ctx: Context, actor: str, at_event: str | None, seq: int | None, as_json: bool, raw: bool) -> None:
    """Show ACTOR's state now, or at an earlier point, read from the record (no re-execution)."""
    if at_event is not None and seq is not None:
        raise click.UsageError("give --at or --seq, not both")
    st = ctx.store(readonly=True)
    actor_id = _known(st, actor)
    if at_event is not None:
        event_actor, seq = st.log.locate(resolve_event(st, at_event))
        if event_actor != actor_id:
            raise click.UsageError(f"event {at_event} belongs to actor {event_actor}, not {actor_id}")
    source = state_event_at(st, actor_id, seq)
    value = state_at(st, actor_id, seq)
    if raw:
        sys.stdout.buffer.write(value or b"")
        return
    if as_json:
        emit_json({"actor": str(actor_id), "seq": None if source is None else source.seq,
                   "event": None if source is None else source.hash.hex(), "state": jsonable(value)})
        return
    where = "never set" if source is None else f"set by event {source.seq} ({short(source.hash)}, {source.type})"
    click.echo(f"state of {actor_id}: {where}")
    click.echo(_show_state(value))


def _show_state(value: bytes | None) -> str:
    if value is None:
        return "(none)"
    try:
        text = value.decode()
        if text.isprintable():
            return text
    except UnicodeDecodeError:
        pass
    return f"<{len(value)} bytes> {value.hex()}"
