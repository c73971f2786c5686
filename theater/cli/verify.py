"""``theater verify``: integrity of a chain and proof by re-execution."""

from __future__ import annotations

import click

from replay import Replayer, ReplayReport
from store import ChainReport, parse_actor_id, verify_chain
from store import Store
from theater.cli._context import Context, emit_json, resolve_event
from theater.cli._render import jsonable

pass_context = click.make_pass_decorator(Context)


@click.command()
@click.argument("actor")
@click.option("--from", "from_event", help="Re-execute from this event (hash or prefix) instead of genesis.")
@click.option("--to", "to_event", help="Stop after this event (hash or prefix).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON report.")
@pass_context
def verify(ctx: Context, actor: str, from_event: str | None, to_event: str | None, as_json: bool) -> None:
    """Check ACTOR's chain: every hash and link, then re-execute it and compare every recorded outcome.

    Exits 0 only when the chain is intact and re-execution reproduces it.
    """
    st = ctx.store(readonly=True)
    actor_id = parse_actor_id(actor)
    integrity = verify_chain(st, actor_id)
    from_seq = _seq(st, actor_id, from_event) if from_event else 0
    to_seq = _seq(st, actor_id, to_event) if to_event else None
    replayed = Replayer(st).replay(actor_id, from_seq=from_seq, to_seq=to_seq) if integrity.ok else None
    ok = integrity.ok and replayed is not None and replayed.ok
    if as_json:
        emit_json({"ok": ok, "integrity": _integrity_json(integrity), "replay": _replay_json(replayed)})
    else:
        _print(integrity, replayed)
    if not ok:
        raise click.exceptions.Exit(1)


def _seq(store: Store, actor: object, ref: str) -> int:
    event_actor, seq = store.log.locate(resolve_event(store, ref))
    if event_actor != actor:
        raise click.UsageError(f"event {ref} belongs to actor {event_actor}")
    return seq


def _print(integrity: ChainReport, replayed: ReplayReport | None) -> None:
    if integrity.ok:
        click.echo(f"integrity: ok ({integrity.events} events, every hash and link checked)")
    else:
        click.echo(f"integrity: BROKEN: {integrity.problem.describe()}")  # type: ignore[union-attr]
        return
    assert replayed is not None
    span = f"events {replayed.from_seq}..{replayed.to_seq}"
    if replayed.ok:
        click.echo(f"replay: ok ({span}: {replayed.calls} export calls and {replayed.host_calls} host calls "
                   "re-executed, every result and its fuel as recorded)")
        return
    d = replayed.divergence
    assert d is not None
    click.echo(f"replay: DIVERGED at event {d.seq} ({d.hash.hex() if d.hash else 'past the end'}): {d.what}")
    click.echo(f"  recorded: {jsonable(d.expected)}")
    click.echo(f"  replayed: {jsonable(d.actual)}")
    if d.hint:
        click.echo(f"  hint: {d.hint}")


def _integrity_json(report: ChainReport) -> dict:
    p = report.problem
    return {"ok": report.ok, "events": report.events,
            "problem": None if p is None else {"seq": p.seq, "hash": p.hash.hex() if p.hash else None,
                                                "kind": p.kind, "detail": p.detail}}


def _replay_json(report: ReplayReport | None) -> dict | None:
    if report is None:
        return None
    d = report.divergence
    return {"ok": report.ok, "from_seq": report.from_seq, "to_seq": report.to_seq, "calls": report.calls,
            "host_calls": report.host_calls,
            "divergence": None if d is None else {"seq": d.seq, "hash": d.hash.hex() if d.hash else None,
                                                  "what": d.what, "expected": jsonable(d.expected),
                                                  "actual": jsonable(d.actual), "hint": d.hint}}
