"""``theater chain``: integrity of the hash-chained event logs."""

from __future__ import annotations

import click

from store import ChainReport, parse_actor_id, verify_chain, verify_store
from theater.cli._context import Context, emit_json

pass_context = click.make_pass_decorator(Context)


@click.group()
def chain() -> None:
    """Work with actors' event chains."""


@chain.command("verify")
@click.argument("actor", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON report.")
@pass_context
def verify(ctx: Context, actor: str | None, as_json: bool) -> None:
    """Recompute every hash and parent link of ACTOR's chain (or of every chain).

    Exits 0 only when every chain checked is intact; otherwise names the first broken event of each chain.
    """
    st = ctx.store(readonly=True)
    if actor is not None:
        reports = [verify_chain(st, parse_actor_id(actor))]
    else:
        reports = verify_store(st).chains
    if as_json:
        emit_json({"ok": all(r.ok for r in reports), "chains": [_report_json(r) for r in reports]})
    else:
        for r in reports:
            status = "ok" if r.ok else f"BROKEN: {r.problem.describe()}"  # type: ignore[union-attr]
            click.echo(f"{r.actor}  {r.events} events  {status}")
        click.echo(f"{len(reports)} chains, {sum(r.events for r in reports)} events, "
                   f"{sum(not r.ok for r in reports)} broken")
    if not all(r.ok for r in reports):
        raise click.exceptions.Exit(1)


def _report_json(report: ChainReport) -> dict:
    problem = report.problem
    return {
        "actor": str(report.actor),
        "events": report.events,
        "ok": report.ok,
        "head": {"seq": report.head.seq, "hash": report.head.hash.hex() if report.head.hash else None},
        "problem": None
        if problem is None
        else {"seq": problem.seq, "hash": problem.hash.hex() if problem.hash else None, "kind": problem.kind,
              "detail": problem.detail},
    }
