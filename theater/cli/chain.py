"""``theater chain``: integrity of the hash-chained event logs."""

from __future__ import annotations

from pathlib import Path

import click

from replay.bundle import export_bundle
from store import verify_chain, verify_store
from theater.cli._context import Context, emit_json
from theater.porcelain import event_seq, recorded_head
from theater.porcelain.forms import chain_report_json
from theater.porcelain.resume import import_chain

pass_context = click.make_pass_decorator(Context)


@click.group()
def chain() -> None:
    """Work with actors' event chains."""


@chain.command("verify")
@click.argument("actor", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON report.")
@pass_context
def verify(ctx: Context, actor: str | None, as_json: bool) -> None:
    """Recompute every hash and parent link of ACTOR's chain (or of every chain), and check every blob the chain
    names (component, manifest, states, spilled payloads) is present and hashes to its name.

    Exits 0 only when every chain checked is intact; otherwise names the first broken event of each chain.
    An ACTOR with no chain in the home is an error.
    """
    st = ctx.store(readonly=True)
    if actor is not None:
        actor_id = ctx.actor(actor)
        recorded_head(st, actor_id)
        reports = [verify_chain(st, actor_id)]
    else:
        reports = verify_store(st).chains
    if as_json:
        emit_json({"ok": all(r.ok for r in reports), "chains": [chain_report_json(r) for r in reports]})
    else:
        for r in reports:
            status = "ok" if r.ok else f"BROKEN: {r.problem.describe()}"  # type: ignore[union-attr]
            click.echo(f"{r.actor}  {r.events} events  {status}")
        click.echo(f"{len(reports)} chains, {sum(r.events for r in reports)} events, "
                   f"{sum(not r.ok for r in reports)} broken")
    if not all(r.ok for r in reports):
        raise click.exceptions.Exit(1)


@chain.command("export")
@click.argument("actor")
@click.option("--from", "from_event", help="Where re-execution of the bundle starts (event hash or prefix).")
@click.option("--to", "to_event", help="The last event to include (hash or prefix); default: the head.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), required=True, help="Bundle file.")
@click.option("--proof", "with_proof", is_flag=True,
              help="Carry the inclusion proof of the last event in the newest signed checkpoint (make one first: "
                   "theater audit checkpoint); `theater verify FILE --key VKEY` then proves the chain's origin.")
@pass_context
def export(ctx: Context, actor: str, from_event: str | None, to_event: str | None, output: str,
           with_proof: bool) -> None:
    """Write ACTOR's chain and every blob it references to one portable bundle file.

    The bundle holds the chain from genesis (so its integrity is provable) and verifies with
    `theater verify FILE` on a machine with no Theater home.
    """
    st = ctx.store(readonly=True)
    actor_id = ctx.actor(actor)
    recorded_head(st, actor_id)
    from_seq = event_seq(st, actor_id, from_event) if from_event else 0
    to_seq = event_seq(st, actor_id, to_event) if to_event else None
    audit = None
    if with_proof:
        last = st.log.at(actor_id, recorded_head(st, actor_id).seq if to_seq is None else to_seq)
        audit = st.audit.prove(last.hash)
    data = export_bundle(st, actor_id, from_seq=from_seq, to_seq=to_seq, audit=audit)
    Path(output).write_bytes(data)
    click.echo(f"{output}: actor {actor_id}, {len(data):,} bytes")


@chain.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help='Print {"actor": ID, "events": N} as JSON.')
@pass_context
def import_(ctx: Context, file: str, as_json: bool) -> None:
    """Import a bundle into the home (its blobs and events, checked on the way in); prints the actor id.

    Importing the same bundle again changes nothing; a bundle whose chain disagrees with the home's is refused. An
    imported actor is never brought back by a server's durable resume: a bundle is anyone's code.
    """
    st = ctx.store()
    actor_id = import_chain(st, Path(file).read_bytes(), source=file)
    if as_json:
        emit_json({"actor": str(actor_id), "events": recorded_head(st, actor_id).seq + 1})
    else:
        click.echo(str(actor_id))
