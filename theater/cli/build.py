"""``theater create``, ``theater build`` and ``theater quickstart``: Python actors from template to verified chain."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from replay.schema import WASM_RESULT
from theater.build import BuildResult, build_project
from theater.build import precompile as precompile_component
from theater.cli._context import Context, emit_json
from theater.cli._render import short, summary
from theater.porcelain import select_events, state_point, verify_actor
from theater.porcelain.forms import bytes_json, state_json, verify_json
from theater.runtime import Theater
from theater.templates import TEMPLATES, create_project

pass_context = click.make_pass_decorator(Context)
REPO_COUNTER = Path(__file__).resolve().parents[2] / "examples" / "counter"


@click.command()
@click.argument("name")
@click.option("--template", type=click.Choice(TEMPLATES), default="basic", show_default=True,
              help="basic: a counter; request: answers (and defers) requests; channels: serves channels; "
                   "supervisor: starts workers; documents: keeps documents in the store; "
                   "http-server: serves a JSON API; agent: asks a chat-completions model, serves /ask.")
@click.option("--dir", "parent", type=click.Path(file_okay=False), default=".", show_default=True,
              help="Create the project directory NAME inside this directory.")
def create(name: str, template: str, parent: str) -> None:
    """Create an actor project NAME: app.py, manifest.toml, wit/ (theater:simple vendored), README and a test."""
    root = create_project(name, template=template, parent=Path(parent))
    click.echo(f"created {root} from the {template!r} template")
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "deps" not in p.parts):
        click.echo(f"  {path.relative_to(root)}")
    click.echo(f"  wit/deps/theater-simple/  (the theater:simple WIT package)\n\nnext:\n  cd {root}\n  theater build")


@click.command()
@click.argument("directory", default=".", type=click.Path(exists=True, file_okay=False))
@click.option("--module", default="app", show_default=True, help="The actor module (app.py or an app/ package).")
@click.option("--world", help="The WIT world to build (default: the one world in wit/).")
@click.option("--force", is_flag=True, help="Rebuild even when the inputs are unchanged.")
@click.option("--precompile/--no-precompile", default=True, show_default=True,
              help="Compile for this machine and cache it in the home, so the first start is fast.")
@click.option("--cache-dir", type=click.Path(file_okay=False), envvar="THEATER_BUILD_CACHE",
              help="A directory of earlier builds by input hash, shared between projects ($THEATER_BUILD_CACHE).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON report.")
@pass_context
def build(ctx: Context, directory: str, module: str, world: str | None, force: bool, precompile: bool,
          cache_dir: str | None, as_json: bool) -> None:
    """Build the actor project in DIRECTORY into build/<name>.wasm with componentize-py.

    The component is put in the home's blob store and the manifest's `component` points at build/<name>.wasm.
    Unchanged inputs (Python files, WIT, SDK, componentize-py version) are not rebuilt.
    """
    store = ctx.store()
    result = build_project(directory, module=module, world=world, store=store, force=force,
                           cache_dir=Path(cache_dir) if cache_dir else None)
    compile_s = precompile_component(store, result.digest) if precompile else None
    if as_json:
        emit_json(_result_json(result, compile_s))
        return
    click.echo(_describe(result))
    if compile_s is not None and compile_s >= 0.5:
        click.echo(f"compiled for this machine in {compile_s:.1f} s (cached in {ctx.home}; starts skip this)")


def _describe(result: BuildResult) -> str:
    project = result.project
    rel = result.wasm.relative_to(project.root)
    what = {"up to date": "is up to date", "cache": "restored from the build cache",
            "store": "restored from the home's store", "built": f"built in {result.seconds:.1f} s"}[result.how]
    lines = [f"{project.name} {what}: {project.root / rel}",
             f"  {result.size / 1e6:.1f} MB, componentize-py {result.tool_version}",
             f"  blake3 {result.digest.hex()}  (pin a manifest to this build with component = \"<this hash>\")"]
    if result.manifest_changed:
        lines.append(f'  manifest.toml now points at it: component = "{rel.as_posix()}"')
    return "\n".join(lines)


def _result_json(result: BuildResult, compile_s: float | None) -> dict:
    return {"project": str(result.project.root), "name": result.project.name, "wasm": str(result.wasm),
            "digest": result.digest.hex(), "key": result.key, "how": result.how, "seconds": result.seconds,
            "size": result.size, "componentize_py": result.tool_version, "manifest_changed": result.manifest_changed,
            "compile_seconds": compile_s}


@click.command()
@click.argument("directory", required=False, type=click.Path(file_okay=False))
@click.option("--cache-dir", type=click.Path(file_okay=False), envvar="THEATER_BUILD_CACHE",
              help="A directory of earlier builds by input hash ($THEATER_BUILD_CACHE).")
@click.option("--json", "as_json", is_flag=True,
              help='Print {"home", "build", "actor", "response", "events", "state", "verify"} as JSON instead.')
@pass_context
def quickstart(ctx: Context, directory: str | None, cache_dir: str | None, as_json: bool) -> None:
    """Build the Python counter example, run it, read its chain and past state, and prove the chain by replay.

    DIRECTORY defaults to examples/counter of this checkout, else a new project from the basic template in the
    home.
    """
    say = (lambda _text: None) if as_json else click.echo
    root = Path(directory) if directory else _default_counter(ctx.home)
    say(f"home: {ctx.home}\n\n1. build {root} (componentize-py; the first build takes a while)")
    with Theater(ctx.home) as theater:
        result = build_project(root, store=theater.store, cache_dir=Path(cache_dir) if cache_dir else None)
        say(_describe(result))
        started = time.perf_counter()
        theater.engine.load(theater.store, result.digest)
        compile_s = time.perf_counter() - started
        if compile_s >= 0.5:
            say(f"compiled for this machine in {compile_s:.1f} s (cached in the home: later starts skip this)")
        say("\n2. run it: start, three messages, one request")
        actor = theater.start(result.project.manifest)
        for message in (b"+1", b"+2", b"+3"):
            theater.send(actor, message)
        response = theater.request(actor, b"get")
        say(f"  actor {actor}\n  sent +1 +2 +3; request get -> {response.decode()}")
        say(f"  its log: {list(theater.actor(actor).logs)}")
        theater.stop(actor)
        report = _show_record(theater, actor, say)
    say(f"\nnext:\n  theater --home {ctx.home} events {actor}\n  theater --home {ctx.home} state {actor} --seq 7"
        f"\n  theater --home {ctx.home} verify {actor}")
    if as_json:
        emit_json({"home": str(ctx.home), "build": _result_json(result, compile_s), "actor": actor,
                   "response": bytes_json(response), **report})
    if not report["verify"]["ok"]:
        raise click.exceptions.Exit(1)


def _default_counter(home: Path) -> Path:
    if (REPO_COUNTER / "app.py").is_file():
        return REPO_COUNTER
    target = home / "quickstart" / "counter"
    if not (target / "app.py").is_file():
        create_project("counter", template="basic", parent=target.parent)
    return target


def _show_record(theater: Theater, actor: str, say: Callable[[str], None]) -> dict[str, Any]:
    """Steps 3 to 5 of the quickstart (chain, state at a point, verify); returns them as JSON forms."""
    store = theater.store
    actor_id = uuid.UUID(actor)
    events = select_events(store, actor_id).events
    say(f"\n3. its chain: {len(events)} events (theater events {actor[:8]}...)")
    for event in events:
        kind = event.type.replace("theater:simple/", "")
        data = summary(event, 200).replace("theater:simple/", "")[:90]
        say(f"  {event.seq:>3}  {short(event.hash)}  {kind:<18} {data}")
    earlier = [e for e in events if e.type == WASM_RESULT][1]
    point = state_point(store, actor_id, seq=earlier.seq)
    say(f"\n4. state right after event {earlier.seq}: {(point.state or b'').decode()}  (from the record, no re-run)")
    report = verify_actor(store, actor_id)
    replayed = report.replay
    say(f"\n5. verify: integrity {'ok' if report.integrity.ok else 'BROKEN'}; replay "
        f"{'ok' if report.ok else 'DIVERGED'} ({replayed.calls if replayed else 0} calls and "
        f"{replayed.host_calls if replayed else 0} host calls re-executed, every result and its fuel as recorded)")
    return {"events": len(events), "state": state_json(point), "verify": verify_json(report)}
