"""``theater run`` and ``theater demo``: run actors in-process on the home, with no server."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import click

from replay.schema import WASM_RESULT
from theater.cli._context import Context, emit_json
from theater.cli._maximums import max_option
from theater.cli._render import short
from theater.porcelain import select_events, state_point, verify_actor
from theater.porcelain.forms import bytes_json, state_json, verify_json
from theater.manifest import Maximums
from theater.runtime import Theater

pass_context = click.make_pass_decorator(Context)


@click.command()
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False))
@click.option("--send", "sends", multiple=True, help="Send this message (UTF-8) after start; repeatable.")
@click.option("--request", "requests", multiple=True, help="Send this request and print the response; repeatable.")
@click.option("--stop/--no-stop", default=True, show_default=True, help="Record a stop when done.")
@click.option("--json", "as_json", is_flag=True,
              help='Print {"actor", "responses": [payload, ...], "stopped"} as JSON (payloads as the API shows them).')
@max_option
@pass_context
def run(ctx: Context, manifest: str, sends: tuple[str, ...], requests: tuple[str, ...], stop: bool, as_json: bool,
        maximums: Maximums) -> None:
    """Start the actor of MANIFEST in this process, deliver messages, print its id.

    Everything is recorded in the home; inspect it afterwards with `theater events ID` and `theater verify ID`.
    MANIFEST is yours: it may name any regular file, within the --max sizes; the manifests its actors hand to
    their supervisor may name only files in MANIFEST's directory.
    """
    with Theater(ctx.home, maximums=maximums) as theater:
        actor = theater.start(Path(manifest))
        if not as_json:
            click.echo(actor)
        for message in sends:
            theater.send(actor, message.encode())
        responses = []
        for message in requests:
            responses.append(theater.request(actor, message.encode()))
            if not as_json:
                click.echo(_show(responses[-1]))
        if stop:
            theater.stop(actor)
    if as_json:
        emit_json({"actor": actor, "responses": [bytes_json(r) for r in responses], "stopped": stop})


def _show(value: bytes | None) -> str:
    if value is None:
        return "(none)"
    if len(value) == 8:
        return f"{int.from_bytes(value, 'little')}  (u64 LE: {value.hex()})"
    try:
        return value.decode()
    except UnicodeDecodeError:
        return value.hex()


@click.command()
@click.option("--json", "as_json", is_flag=True,
              help='Print {"home", "actor", "events", "count", "state", "verify"} as JSON instead of the tour.')
@pass_context
def demo(ctx: Context, as_json: bool) -> None:
    """Run the bundled counter actor end to end: messages, its chain, time travel, and proof by replay.

    Needs nothing but Theater: the counter is a small WebAssembly text component shipped with it. Everything is
    recorded in the home (under demo/ the manifest and the component it wrote).
    """
    say = (lambda _text: None) if as_json else click.echo
    wat = resources.files("theater").joinpath("_demo/counter.wat").read_text()
    work = ctx.home / "demo"
    work.mkdir(parents=True, exist_ok=True)
    (work / "counter.wat").write_text(wat)
    (work / "manifest.toml").write_text('name = "counter"\ncomponent = "counter.wat"\n')
    say(f"home: {ctx.home}")
    with Theater(ctx.home) as theater:
        actor = theater.start(work / "manifest.toml")
        say(f"started counter actor {actor}")
        for _ in range(3):
            theater.send(actor, b"tick")
        count = int.from_bytes(theater.request(actor, b"count"), "little")
        say(f"sent 3 messages; request -> count = {count}")
        theater.stop(actor)
    st = ctx.store(readonly=True)
    actor_id = ctx.actor(actor)
    events = select_events(st, actor_id).events
    say(f"\nits chain: {len(events)} events")
    for e in events:
        say(f"  {e.seq:>3}  {short(e.hash)}  {e.type}")
    earlier = next(e for e in events if e.type == WASM_RESULT and e.seq > 4)
    point = state_point(st, actor_id, seq=earlier.seq)
    say(f"\nstate after event {earlier.seq}: count = {int.from_bytes(point.state or b'', 'little')}  "
        "(time travel, no re-execution)")
    report = verify_actor(st, actor_id)
    replayed = report.replay
    say(f"integrity: {'ok' if report.integrity.ok else 'BROKEN'}; replay: "
        f"{'ok' if replayed is not None and replayed.ok else 'DIVERGED'} "
        f"({replayed.calls if replayed else 0} calls re-executed from the record)")
    say(f"\nnext: theater --home {ctx.home} events {actor}\n      theater --home {ctx.home} verify {actor}")
    if as_json:
        emit_json({"home": str(ctx.home), "actor": actor, "events": len(events), "count": count,
                   "state": state_json(point), "verify": verify_json(report)})
    if not report.ok:
        raise click.exceptions.Exit(1)
