"""``theater events`` and ``theater state``: an actor's chain and its state at any point, from the record."""

from __future__ import annotations

import sys

import click
from rich.table import Table

from theater.cli._context import Context, emit_json
from theater.cli._render import ago, console, short, summary
from theater.cli.search import SearchArgs, search_command
from theater.porcelain import select_events, state_point
from theater.porcelain.forms import event_json, state_json, text_of

pass_context = click.make_pass_decorator(Context)
SEQ = click.IntRange(0, 2**63 - 1)  # a sequence number (stored as 8 bytes)


@click.command()
@click.argument("actor", required=False)
@click.option("--type", "types", multiple=True,
              help="Only events of this type (repeatable; a trailing * matches a prefix).")
@click.option("--from", "from_seq", type=SEQ, default=0, show_default=True,
              help="First sequence number.")
@click.option("--to", "to_seq", type=SEQ, help="Last sequence number (inclusive).")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many events (a search: 1 to 1000, "
                                                          "default 100).")
@click.option("--search", "text", help="Search every actor's events (or those of ACTOR and --actor) for TEXT in "
                                       "their type and data as shown here, ignoring case; '' for no text filter.")
@click.option("--actor", "actors", multiple=True, help="With --search: only this actor's events (repeatable).")
@click.option("--since", help="With --search: at or after this time (ISO-8601, or ns since the epoch).")
@click.option("--until", help="With --search: before this time (ISO-8601, or ns since the epoch).")
@click.option("--cause", help="With --search: only the deliveries whose cause is this sender's event (its full "
                              "hash): where a message went.")
@click.option("--after", help="With --search: the page after this cursor (printed at the end of a page).")
@click.option("--format", "fmt", type=click.Choice(["pretty", "compact", "json"]), default="pretty", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option("--full", is_flag=True, help="Show full hashes.")
@pass_context
def events(ctx: Context, actor: str | None, types: tuple[str, ...], from_seq: int, to_seq: int | None,
           limit: int | None, text: str | None, actors: tuple[str, ...], since: str | None, until: str | None,
           cause: str | None, after: str | None, fmt: str, as_json: bool, full: bool) -> None:
    """List ACTOR's events (its chain), oldest first. ACTOR is an id or a unique prefix of one; an ACTOR with no
    chain in the home is an error. In a pipe, each event is one line (nothing is wrapped).

    With --search, search the events of every actor (or of ACTOR and each --actor) by text, --type, --since and
    --until, in time order, one page at a time: through the server at --address when one runs, else in the home.
    A page that ends early says how to go on (--after CURSOR); so does one whose search stopped at the bound on
    the work of one request, before finding --limit events.
    """
    if text is not None and (from_seq or to_seq is not None):
        raise click.UsageError("--from and --to page one chain; a search pages with --after")
    if text is not None:
        search_command(ctx, SearchArgs(actors=((actor,) if actor else ()) + actors, types=types, since=since,
                                       until=until, text=text, cause=cause, limit=limit, after=after),
                       "json" if as_json else fmt, full)
        return
    if actor is None:
        raise click.UsageError("give ACTOR, or --search TEXT to search every actor's events")
    if actors or since or until or after or cause:
        raise click.UsageError("--actor, --since, --until, --cause and --after go with --search")
    page = select_events(ctx.store(readonly=True), ctx.actor(actor), types=types, start=from_seq, to=to_seq,
                         limit=limit)
    if as_json or fmt == "json":
        emit_json([event_json(e) for e in page.events])
    elif fmt == "compact":
        for e in page.events:
            click.echo(f"{e.seq}\t{short(e.hash, full)}\t{e.type}\t{summary(e, 200)}")
    else:
        table = Table(box=None, pad_edge=False)
        for column in ("seq", "hash", "type", "when", "data"):
            table.add_column(column, overflow="fold" if column == "data" else "ellipsis", no_wrap=column != "data")
        for e in page.events:
            table.add_row(str(e.seq), short(e.hash, full), e.type, ago(e.timestamp_ms), summary(e))
        console().print(table)


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
    point = state_point(ctx.store(readonly=True), ctx.actor(actor), seq=seq, event=at_event)
    if raw:
        sys.stdout.buffer.write(point.state or b"")
        return
    if as_json:
        emit_json(state_json(point))
        return
    source = point.source
    where = "never set" if source is None else f"set by event {source.seq} ({short(source.hash)}, {source.type})"
    click.echo(f"state of {point.actor}: {where}")
    click.echo(_show_state(point.state))


def _show_state(value: bytes | None) -> str:
    if value is None:
        return "(none)"
    text = text_of(value)
    return text if text is not None else f"<{len(value)} bytes> {value.hex()}"
