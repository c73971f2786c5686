"""``theater events --search``: one page of a search across the home's events, through the server when one runs
(``GET /v1/events/search``), else in the home itself (``theater.porcelain.search``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from store import StoreOpenError
from theater.cli._context import Context, emit_json
from theater.cli._render import ago, console, data_summary
from theater.cli.client import ServerNotRunning, client_for
from theater.porcelain.forms import from_jsonable, search_json
from theater.porcelain.search import DEFAULT_LIMIT, MAX_LIMIT, search_events


@dataclass(frozen=True, slots=True, kw_only=True)
class SearchArgs:
    """What ``theater events --search`` was given."""

    actors: tuple[str, ...]
    types: tuple[str, ...]
    since: str | None
    until: str | None
    text: str
    cause: str | None
    limit: int | None
    after: str | None


def search_command(ctx: Context, args: SearchArgs, fmt: str, full: bool) -> None:
    """Run the search and render its page (``fmt``: pretty, compact or json)."""
    limit = args.limit or DEFAULT_LIMIT
    if limit > MAX_LIMIT:
        raise click.BadParameter(f"a search page holds at most {MAX_LIMIT} events; page with --after",
                                 param_hint="--limit")
    try:
        page = client_for().get("/v1/events/search", actor=list(args.actors), type=list(args.types),
                                since=args.since, until=args.until, q=args.text or None, cause=args.cause,
                                limit=limit,
                                after=args.after)
    except ServerNotRunning:
        page = search_json(search_events(_home_store(ctx), actors=args.actors, types=args.types, since=args.since,
                                          until=args.until, text=args.text or None, cause=args.cause, limit=limit,
                                          after=args.after))
    render(page, fmt, full)


def _home_store(ctx: Context) -> Any:
    """The home's store, open for writing when it can be (the search brings its index up to date), else read-only."""
    try:
        return ctx.store()
    except StoreOpenError:
        return ctx.store(readonly=True)


def render(page: dict[str, Any], fmt: str, full: bool) -> None:
    """Print a search page; the way on (``--after``) goes to stderr."""
    if fmt == "json":
        emit_json(page)
        return
    rows = page["events"]
    if fmt == "compact":
        for e in rows:
            click.echo(f"{e['timestamp_ms']}\t{e['actor']}\t{e['seq']}\t{_hash(e['hash'], full)}\t{e['type']}\t"
                       f"{data_summary(from_jsonable(e['data']), 200)}")
    else:
        table = Table(box=None, pad_edge=False)
        for column in ("when", "actor", "seq", "hash", "type", "data"):
            table.add_column(column, overflow="fold" if column == "data" else "ellipsis", no_wrap=column != "data")
        for e in rows:
            table.add_row(ago(e["timestamp_ms"]), e["actor"][:8], str(e["seq"]), _hash(e["hash"], full),
                          escape(e["type"]), escape(data_summary(from_jsonable(e["data"]))))
        console().print(table)
    if page["next"] is not None:
        why = (f"the search stopped after looking at {page['scanned']} entries (its bound per request)"
               if page.get("partial") else "more")
        click.echo(f"{why}: --after {page['next']}", err=True)


def _hash(digest: str, full: bool) -> str:
    return digest if full else digest[:12]
