"""``theater run`` and ``theater demo``: run actors in-process on the home, with no server."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import click

from replay import Replayer, state_at
from store import parse_actor_id, verify_chain
from theater.cli._context import Context
from theater.cli._maximums import max_option
from theater.cli._render import short
from theater.manifest import Maximums
from theater.runtime import Theater

pass_context = click.make_pass_decorator(Context)


@click.command()
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False))
@click.option("--send", "sends", multiple=True, help="Send this message (UTF-8) after start; repeatable.")
@click.option("--request", "requests", multiple=True, help="Send this request and print the response; repeatable.")
@click.option("--stop/--no-stop", default=True, show_default=True, help="Record a stop when done.")
@max_option
@pass_context
def run(ctx: Context, manifest: str, sends: tuple[str, ...], requests: tuple[str, ...], stop: bool,
        maximums: Maximums) -> None:
    """Start the actor of MANIFEST in this process, deliver messages, print its id.

    Everything is recorded in the home; inspect it afterwards with `theater events ID` and `theater verify ID`.
    MANIFEST is yours: it may name any regular file, within the --max sizes; the manifests its actors hand to
    their supervisor may name only files in MANIFEST's directory.
    """
    with Theater(ctx.home, maximums=maximums) as theater:
        actor = theater.start(Path(manifest))
        click.echo(actor)
        for message in sends:
            theater.send(actor, message.encode())
        for message in requests:
            click.echo(_show(theater.request(actor, message.encode())))
        if stop:
            theater.stop(actor)


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
@pass_context
def demo(ctx: Context) -> None:
    """Run the bundled counter actor end to end: messages, its chain, time travel, and proof by replay."""
    wat = resources.files("theater").joinpath("_demo/counter.wat").read_text()
    work = ctx.home / "demo"
    work.mkdir(parents=True, exist_ok=True)
    (work / "counter.wat").write_text(wat)
    (work / "manifest.toml").write_text('name = "counter"\ncomponent = "counter.wat"\n')
    click.echo(f"home: {ctx.home}")
    with Theater(ctx.home) as theater:
        actor = theater.start(work / "manifest.toml")
        click.echo(f"started counter actor {actor}")
        for _ in range(3):
            theater.send(actor, b"tick")
        click.echo(f"sent 3 messages; request -> count = {int.from_bytes(theater.request(actor, b'count'), 'little')}")
        theater.stop(actor)
    st = ctx.store(readonly=True)
    actor_id = parse_actor_id(actor)
    events = list(st.log.events(actor_id))
    click.echo(f"\nits chain: {len(events)} events")
    for e in events:
        click.echo(f"  {e.seq:>3}  {short(e.hash)}  {e.type}")
    earlier = next(e for e in events if e.type == "wasm/result" and e.seq > 4)
    value = state_at(st, actor_id, earlier.seq)
    count = int.from_bytes(value or b"", "little")
    click.echo(f"\nstate after event {earlier.seq}: count = {count}  (time travel, no re-execution)")
    integrity = verify_chain(st, actor_id)
    replayed = Replayer(st).replay(actor_id)
    click.echo(f"integrity: {'ok' if integrity.ok else 'BROKEN'}; replay: "
               f"{'ok' if replayed.ok else 'DIVERGED'} ({replayed.calls} calls re-executed from the record)")
    click.echo(f"\nnext: theater --home {ctx.home} events {actor}\n      theater --home {ctx.home} verify {actor}")
    if not (integrity.ok and replayed.ok):
        raise click.exceptions.Exit(1)
