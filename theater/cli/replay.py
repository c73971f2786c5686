"""``theater replay EVENT``: reproduce the history that led to an event and show the call it belongs to."""

from __future__ import annotations

import difflib
import json
import uuid

import click

from replay import CallView, Replayer, call_around, state_at
from replay.schema import WASM_ERR_ANSWER, WASM_ERROR
from store import Event, Store
from theater.cli._context import Context, emit_json
from theater.cli._render import short, summary
from theater.cli.lineage import whatif
from theater.handlers.http_events import http_summary
from theater.porcelain.forms import jsonable, readable_text

pass_context = click.make_pass_decorator(Context)


@click.command("replay")
@click.argument("event")
@click.option("--step", is_flag=True, help="Walk the chain event by event from there: n(ext), p(revious), q(uit).")
@click.option("--override", "overrides", multiple=True, metavar="SEQ=VALUE",
              help="What-if: answer the host call at event SEQ with VALUE (JSON in the recorded form, bytes as "
                   "\"hex:...\"; e.g. '{\"ok\": 7}' or '{\"err\": \"refused\"}'). Repeatable.")
@click.option("--fork", "make_fork", is_flag=True, help="With --override: start the what-if state as a new actor "
                                                         "on the server (a fork of EVENT).")
@click.option("--name", "fork_name", help="With --fork: the new actor's name.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON report.")
@pass_context
def replay_command(ctx: Context, event: str, step: bool, overrides: tuple[str, ...], make_fork: bool,
                   fork_name: str | None, as_json: bool) -> None:
    """Re-execute an actor's history up to EVENT (a hash or unique prefix) and show what happened there.

    Shows the export call the event belongs to, the host calls it made with their recorded results (bytes that are
    UTF-8 text shown as text; --json keeps them as "hex:..."), the state
    before and after (a diff when the state is JSON), and the error if the call failed. Exit code 1 if
    re-execution does not reproduce the record.

    With --override, a what-if: history is re-executed with those host results replaced, each call starting from
    the state the what-if run reached, and shown beside the record (the first call that ends differently, states
    and outputs side by side). It goes on while the record can answer the guest's host calls and stops, saying
    where, at the first one it cannot (another import, or other parameters, than recorded). Nothing is written;
    --fork starts the result as a new actor on the server.
    """
    st = ctx.store(readonly=True)
    actor, seq = st.log.locate(st.log.resolve(event))
    view = call_around(st, actor, seq)
    end = view.outcome.seq if view is not None and view.outcome is not None else seq
    if overrides or make_fork:
        if not overrides:
            raise click.BadParameter("--fork needs at least one --override (to fork a recorded event: theater "
                                     "fork EVENT)", param_hint="--fork")
        whatif(st, actor, end, list(overrides), as_json=as_json, fork_name=fork_name, make_fork=make_fork)
        return
    report = Replayer(st).replay(actor, to_seq=end)
    if as_json:
        emit_json({"actor": str(actor), "seq": seq, "reproduced": report.ok, "call": _view_json(view),
                   "divergence": None if report.ok else str(report.divergence)})
    else:
        _show(actor, seq, view)
        click.echo(f"\nre-executed events 0..{report.to_seq}: " + ("the record is reproduced" if report.ok
                                                               else f"DIVERGED: {report.divergence}"))
    if step:
        _walk(st, actor, seq)
    if not report.ok:
        raise click.exceptions.Exit(1)


def _show(actor: uuid.UUID, seq: int, view: CallView | None) -> None:
    click.echo(f"actor {actor}, event {seq}")
    if view is None:
        click.echo("  (outside any export call)")
        return
    click.echo(f"call    {view.call.seq:>5}  {view.call.data['export']}  "
               f"params {readable_text(view.call.data['params'])}")
    _http(view.call)
    for host in view.host_calls:
        mark = "->" if host.seq == seq else "  "
        click.echo(f"host {mark} {host.seq:>5}  {host.type}  {readable_text(host.data.get('params'))} = "
                   f"{readable_text(host.data.get('result'))}")
        _http(host)
    if view.outcome is None:
        click.echo("        (the call has no recorded end: the actor stopped or crashed during it)")
    elif view.outcome.type == WASM_ERR_ANSWER:
        click.echo(f"err     {view.outcome.seq:>5}  answered: {view.outcome.data['detail']}  (the actor went on, "
                   "its state unchanged)")
    elif view.outcome.type == WASM_ERROR:
        click.echo(f"error   {view.outcome.seq:>5}  {view.outcome.data['kind']}: {view.outcome.data['detail']}")
    else:
        click.echo(f"result  {view.outcome.seq:>5}  output {readable_text(view.outcome.data['output'])}  "
                   f"fuel {view.outcome.data['fuel']}")
    click.echo("state before: " + _state(view.state_before))
    click.echo("state after:  " + _state(view.state_after))
    diff = _diff(view.state_before, view.state_after)
    if diff:
        click.echo(diff)


def _http(event: Event) -> None:
    """An HTTP event's method, path, status and sizes, on a line of its own."""
    reading = http_summary(event.type, event.data)
    if reading is not None:
        click.echo(f"        http: {reading}")


def _state(value: bytes | None) -> str:
    if value is None:
        return "(none)"
    try:
        return json.dumps(json.loads(value), sort_keys=True)
    except ValueError:
        return f"<{len(value)} bytes> {value[:64].hex()}"


def _diff(before: bytes | None, after: bytes | None) -> str:
    try:
        a = json.dumps(json.loads(before or b"null"), indent=2, sort_keys=True).splitlines()
        b = json.dumps(json.loads(after or b"null"), indent=2, sort_keys=True).splitlines()
    except ValueError:
        return ""
    return "\n".join(difflib.unified_diff(a, b, "before", "after", lineterm=""))


def _view_json(view: CallView | None) -> dict | None:
    if view is None:
        return None
    return {
        "call": {"seq": view.call.seq, "hash": view.call.hash.hex(), "data": jsonable(view.call.data)},
        "host_calls": [{"seq": h.seq, "type": h.type, "data": jsonable(h.data)} for h in view.host_calls],
        "outcome": None if view.outcome is None else {"seq": view.outcome.seq, "type": view.outcome.type,
                                                       "data": jsonable(view.outcome.data)},
        "state_before": jsonable(view.state_before, readable=True),
        "state_after": jsonable(view.state_after, readable=True),
    }


def _walk(st: Store, actor: uuid.UUID, seq: int) -> None:
    last = st.log.head(actor).seq
    while True:
        event: Event = st.log.at(actor, seq)
        click.echo(f"\n[{seq}/{last}] {short(event.hash)} {event.type} {summary(event)}")
        click.echo("  state after: " + _state(state_at(st, actor, seq)))
        command = click.prompt("n/p/q", default="n", show_default=False, err=True).strip().lower()
        if command.startswith("q"):
            return
        seq = max(0, seq - 1) if command.startswith("p") else min(last, seq + 1)
