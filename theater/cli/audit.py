"""``theater audit``: the home's Merkle log, its signed checkpoints, and proofs an auditor checks with no home."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from store.audit import check_proof
from store.checkpoint import VerifierKey
from store.errors import InvalidInputError, NotFoundError, ProofError
from theater.cli._context import Context, emit_json

pass_context = click.make_pass_decorator(Context)


@click.group()
def audit() -> None:
    """Signed checkpoints of the home's event log, and inclusion and consistency proofs (RFC 9162, C2SP notes)."""


@audit.command("key")
@pass_context
def key(ctx: Context) -> None:
    """Print the home's verifier key (``name+keyid+base64``), creating the signing key on first use.

    Give it to auditors: `theater audit check` verifies proofs with it and nothing else.
    """
    click.echo(ctx.store().audit.key().text)


@audit.command("checkpoint")
@click.option("--json", "as_json", is_flag=True, help="Print the checkpoint as JSON.")
@pass_context
def checkpoint(ctx: Context, as_json: bool) -> None:
    """Sign the log as it is now (every committed event) and keep the checkpoint; print the signed note."""
    cp = ctx.store().audit.checkpoint()
    if as_json:
        emit_json({"number": cp.number, "size": cp.size, "note": cp.note})
    else:
        click.echo(f"checkpoint {cp.number}: {cp.size} events", err=True)
        click.echo(cp.note, nl=False)


@audit.command("checkpoints")
@click.option("--json", "as_json", is_flag=True, help="Print every checkpoint (with its note) as JSON.")
@pass_context
def checkpoints(ctx: Context, as_json: bool) -> None:
    """List every checkpoint of the home, oldest first: number, tree size, root hash, and the witnesses that
    co-signed it (their cosignatures are in the note, as extra signature lines)."""
    from store.checkpoint import cosigner_of

    audit_log = ctx.store(readonly=True).audit
    found = [(c, audit_log.cosigned(c.number)[1], audit_log.cosignatures(c.number))
             for c in audit_log.checkpoints()]
    if as_json:
        emit_json([{"number": c.number, "size": c.size, "root": c.root.hex(), "note": note,
                    "cosignatures": [dict(zip(("name", "timestamp"), cosigner_of(line))) for line in lines]}
                   for c, note, lines in found])
        return
    for c, _, lines in found:
        names = ", ".join(cosigner_of(line)[0] for line in lines)
        click.echo(f"{c.number}  {c.size} events  {c.root.hex()}" + (f"  co-signed by {names}" if names else ""))
    if not found:
        click.echo("no checkpoints yet: make one with `theater audit checkpoint`", err=True)


def _event(ctx: Context, ref: str) -> bytes:
    """The event ``ref`` names: an event hash (or unique prefix), else an actor (id or prefix): its head."""
    st = ctx.store(readonly=True)
    if "-" not in ref:
        try:
            return st.log.resolve(ref)
        except (NotFoundError, InvalidInputError):
            pass
    try:
        return st.audit.event_of_actor(ctx.actor(ref))
    except NotFoundError:
        raise NotFoundError("event or actor", ref) from None


@audit.command("prove")
@click.argument("event")
@click.option("--checkpoint", "number", type=click.IntRange(min=1), help="Checkpoint number (default: the newest).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), required=True, help="Proof file.")
@pass_context
def prove(ctx: Context, event: str, number: int | None, output: str) -> None:
    """Write the inclusion proof of EVENT in a signed checkpoint.

    EVENT is an event hash (or unique prefix) or an actor id (or prefix): then its latest event, whose inclusion
    proves the actor's whole chain up to it (every event's hash commits to its parent's).
    """
    proof = ctx.store(readonly=True).audit.prove(_event(ctx, event), number)
    Path(output).write_text(json.dumps(proof, indent=2) + "\n")
    click.echo(f"{output}: event {proof['event']} is leaf {proof['leaf_index']} of checkpoint "
               f"{proof['checkpoint_number']} ({proof['tree_size']} events)")


@audit.command("consistency")
@click.argument("old", type=click.IntRange(min=1))
@click.argument("new", type=click.IntRange(min=1))
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Proof file (default: stdout).")
@pass_context
def consistency(ctx: Context, old: int, new: int, output: str | None) -> None:
    """Write the proof that checkpoint NEW extends checkpoint OLD (the log only grew between them)."""
    proof = ctx.store(readonly=True).audit.consistency(old, new)
    text = json.dumps(proof, indent=2) + "\n"
    if output is None:
        click.echo(text, nl=False)
    else:
        Path(output).write_text(text)
        click.echo(f"{output}: checkpoint {new} ({proof['new_size']} events) extends {old} ({proof['old_size']})")


@audit.command("verify")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON report.")
@pass_context
def verify(ctx: Context, as_json: bool) -> None:
    """Check the home's audit log: every leaf is still the event it logged (no chain rewritten in place), the tree
    rebuilt from the feed has the stored root and the root each checkpoint signed, every signature verifies.

    Exits 0 only when all of it holds.
    """
    report = ctx.store(readonly=True).audit.verify()
    if as_json:
        emit_json({"ok": report.ok, "leaves": report.leaves, "checkpoints": report.checkpoints,
                   "problems": list(report.problems)})
    else:
        for problem in report.problems:
            click.echo(f"PROBLEM: {problem}")
        status = "ok" if report.ok else f"{len(report.problems)} problems"
        click.echo(f"audit log: {report.leaves} events, {report.checkpoints} checkpoints, {status}")
    if not report.ok:
        raise click.exceptions.Exit(1)


def read_verifier_key(value: str) -> VerifierKey:
    """A verifier key given as text, or as the path of a file holding it."""
    path = Path(value)
    text = path.read_text() if "+" not in value and path.is_file() else value
    return VerifierKey.parse(text)


@audit.command("check")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--key", "key_text", required=True, help="The home's verifier key (as `theater audit key` prints it), "
              "or a file holding it.")
@click.option("--event", help="Also require the proof to be for this event hash.")
def check(file: str, key_text: str, event: str | None) -> None:
    """Check a proof file (from `prove` or `consistency`) with nothing but the verifier key: no home needed.

    Exits 0 only when the checkpoint's signature verifies and the proof leads to its signed root.
    """
    try:
        data: Any = json.loads(Path(file).read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProofError(f"proof file {file}", f"it is not JSON ({exc})") from None
    result = check_proof(data, read_verifier_key(key_text))
    if event is not None and (result.event is None or result.event.hex() != event.lower()):
        raise ProofError(f"proof file {file}", f"it is not a proof for event {event}")
    if result.kind == "inclusion":
        assert result.event is not None
        cp = result.checkpoints[0]
        click.echo(f"ok: event {result.event.hex()} is leaf {result.leaf_index} of the log of {cp.size} events "
                   f"signed by {cp.origin}")
    else:
        first, second = result.checkpoints
        click.echo(f"ok: the log of {second.size} events extends the one of {first.size} (signed by {first.origin})")


audit.add_command(check, "verify-proof")  # the name for it
