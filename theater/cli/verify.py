"""``theater verify``: integrity of a chain (or a bundle) and proof by re-execution."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from replay import ContinuityBreak, InterruptedCall, ReplayLimits, ReplayReport
from replay.bundle import opened_bundle
from store import ChainReport, Store
from store.audit import check_proof
from store.errors import ProofError
from theater.cli.audit import read_verifier_key
from theater.cli._context import Context, emit_json
from theater.porcelain import event_seq, recorded_head, resolve_actor, verify_actor
from theater.porcelain.forms import jsonable, verify_json

pass_context = click.make_pass_decorator(Context)
PROGRESS_FROM_EVENTS = 20_000
DEFAULTS = ReplayLimits()
INTERRUPTED_SHOWN = 20


@click.command()
@click.argument("target")
@click.option("--from", "from_event", help="Re-execute from this event (hash or prefix) instead of genesis.")
@click.option("--to", "to_event", help="Stop after this event (hash or prefix).")
@click.option("--max-fuel", type=click.IntRange(min=1), default=DEFAULTS.max_fuel_per_call, show_default=True,
              help="Refuse a chain that records a larger fuel_per_call.")
@click.option("--max-memory", type=click.IntRange(min=1), default=DEFAULTS.max_memory_bytes, show_default=True,
              help="Refuse a chain that records a larger memory_bytes.")
@click.option("--max-deadline", type=click.IntRange(min=1), default=DEFAULTS.max_deadline_ms, show_default=True,
              help="Refuse a chain that records a larger deadline_ms.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True),
              help="Give up re-execution after this many seconds (each call is bounded anyway, by twice its "
                   "recorded deadline plus 5 s).")
@click.option("--key", "key_text", help="A bundle's origin too: it must carry the inclusion proof of its last event "
              "in a checkpoint signed by this verifier key (as `theater audit key` prints it, or a file holding it).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON report.")
@pass_context
def verify(ctx: Context, target: str, from_event: str | None, to_event: str | None, max_fuel: int, max_memory: int,
           max_deadline: int, timeout: float | None, key_text: str | None, as_json: bool) -> None:
    """Check TARGET (an actor id or unique prefix in the home, or a bundle file): every hash, link and referenced
    blob, then re-execute it.

    Exits 0 only when the chain is intact, fits together (every call starts from the state the events before it
    left) and re-execution reproduces every recorded result and its fuel. Calls with no recorded end (the runtime
    stopped during them; a resume follows) are listed by event. A bundle needs no home: it is checked in a
    temporary store. With --key, a bundle must also prove its origin: its last event is in a checkpoint signed by
    that key, so the chain is the one that home published (docs/audit.md).
    """
    limits = ReplayLimits(max_fuel_per_call=max_fuel, max_memory_bytes=max_memory, max_deadline_ms=max_deadline,
                          timeout_s=timeout)
    if Path(target).is_file():
        with opened_bundle(Path(target)) as (st, actor_id, bundle):
            origin = _origin(bundle, key_text, target) if key_text is not None else None
            if origin is not None and not as_json:
                click.echo(origin)
            ok = _verify(st, actor_id, from_event, to_event, as_json, bundle["from_seq"], limits, links=False)
    elif key_text is not None:
        raise click.BadParameter("--key checks a bundle's origin; TARGET is not a bundle file", param_hint="--key")
    else:
        ok = _verify(ctx.store(readonly=True), target, from_event, to_event, as_json, 0, limits)
    if not ok:
        raise click.exceptions.Exit(1)


def _origin(bundle: dict[str, Any], key_text: str, source: str) -> str:
    """Check the bundle's proof of origin; the line saying what it proved.

    Raises:
        ProofError: the bundle carries no proof, or it does not hold, or it is for another event.
    """
    proof = bundle.get("audit")
    if proof is None:
        raise ProofError(f"bundle {source}", "it carries no proof of origin (export it with --proof)")
    result = check_proof(proof, read_verifier_key(key_text))
    last = bytes(bundle["events"][-1][:32])
    if result.kind != "inclusion" or result.event != last:
        raise ProofError(f"bundle {source}", f"its proof is not for its last event {last.hex()}")
    cp = result.checkpoints[0]
    return (f"origin: ok (its last event {last.hex()[:16]} is leaf {result.leaf_index} of the log of {cp.size} "
            f"events signed by {cp.origin})")


def _verify(st: Store, actor: str | uuid.UUID, from_event: str | None, to_event: str | None, as_json: bool,
            default_from: int, limits: ReplayLimits, *, links: bool = True) -> bool:
    actor_id = resolve_actor(st, actor) if isinstance(actor, str) else actor
    total = recorded_head(st, actor_id).seq + 1
    from_seq = event_seq(st, actor_id, from_event) if from_event else default_from
    to_seq = event_seq(st, actor_id, to_event) if to_event else None
    with _progress(total, enabled=not as_json) as step:
        report = verify_actor(st, actor_id, start=from_seq, to=to_seq, limits=limits, progress=step, links=links)
    if as_json:
        emit_json(verify_json(report))
    else:
        _print(report.integrity, report.replay)
        if report.links is not None:
            click.echo(f"links: ok ({report.links.links} deliveries name the sender's event that sent them)"
                       if report.links.ok else
                       f"links: FORGED: {report.links.problem.describe()}")  # type: ignore[union-attr]
    return report.ok


@contextmanager
def _progress(total: int, *, enabled: bool) -> Iterator[Callable[[str], Callable[[int], None] | None]]:
    """Progress bars for long chains, on a terminal only."""
    console = Console(stderr=True)
    if not enabled or total < PROGRESS_FROM_EVENTS or not console.is_terminal:
        yield lambda _name: None
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, transient=True) as bar:
        def step(name: str) -> Callable[[int], None]:
            task = bar.add_task(name, total=total)
            return lambda done: bar.update(task, completed=done)
        yield step


def _print(integrity: ChainReport, replayed: ReplayReport | None) -> None:
    if integrity.ok:
        click.echo(f"integrity: ok ({integrity.events} events, every hash, link, payload and referenced blob checked)")
    else:
        click.echo(f"integrity: BROKEN: {integrity.problem.describe()}")  # type: ignore[union-attr]
        return
    assert replayed is not None
    span = f"events {replayed.from_seq}..{replayed.to_seq}"
    if replayed.ok:
        click.echo(f"replay: ok ({span}: {replayed.calls} export calls and {replayed.host_calls} host calls "
                   "re-executed, every result and its fuel as recorded; every call continues the state before it)")
    else:
        d = replayed.divergence
        assert d is not None
        at = f"event {d.seq} ({d.hash.hex() if d.hash else 'past the end'})"
        if isinstance(d, ContinuityBreak):
            click.echo(f"replay: the record contradicts itself at {at}: {d.what}")
            click.echo(f"  recorded:                   {jsonable(d.expected, readable=True)}")
            click.echo(f"  implied by the events before: {jsonable(d.actual, readable=True)}")
        else:
            click.echo(f"replay: DIVERGED at {at}: {d.what}")
            click.echo(f"  recorded: {jsonable(d.expected, readable=True)}")
            click.echo(f"  replayed: {jsonable(d.actual, readable=True)}")
        if d.hint:
            click.echo(f"  hint: {d.hint}")
    _print_interrupted(replayed.interrupted)


def _print_interrupted(calls: tuple[InterruptedCall, ...]) -> None:
    if not calls:
        return
    click.echo(f"interrupted: {len(calls)} call{'s' if len(calls) != 1 else ''} with no recorded end "
               "(the runtime stopped during them: their host calls are checked, none of their effects was released)")
    for call in calls[:INTERRUPTED_SHOWN]:
        after = "the record ends during it" if call.resumed_at is None else f"resumed at event {call.resumed_at}"
        click.echo(f"  event {call.seq} ({call.hash.hex()[:16]})  {call.export}  {after}")
    if len(calls) > INTERRUPTED_SHOWN:
        click.echo(f"  ... and {len(calls) - INTERRUPTED_SHOWN} more (--json lists them all)")
