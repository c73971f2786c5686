"""``theater fork``, ``theater revert`` (on the server), and the what-if form of ``theater replay`` (local)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import click

from replay import Replayer
from replay.whatif import WhatIfRun, run
from store import Store
from store.errors import InvalidInputError
from theater.cli._context import emit_json
from theater.cli.actors import upload
from theater.cli.client import client_for
from theater.cli.completion import ACTOR_ID
from theater.lineage import whatif_json
from theater.manifest import DEFAULT_MAXIMUMS, load_manifest
from theater.porcelain.forms import from_jsonable, jsonable, readable_text


@click.command()
@click.argument("event")
@click.option("--component", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Run this component (a .wasm or component text file) instead of the source's.")
@click.option("--manifest", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Run under this manifest instead of the one the source recorded.")
@click.option("--name", help="The new actor's name (default: the manifest's).")
@click.option("--bundle", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Fork from this bundle file (theater chain export): the server checks and re-executes it, imports "
                   "it into its home, then forks from EVENT of its chain.")
@click.option("--json", "as_json", is_flag=True, help="Print the server's answer as JSON.")
def fork(event: str, component: Path | None, manifest: Path | None, name: str | None, bundle: Path | None,
         as_json: bool) -> None:
    """Start a new actor on the server whose history begins at EVENT (a hash or unique prefix) of another actor.

    It starts from the source's state at EVENT, without init, and runs on the source's component and recorded
    manifest unless --component or --manifest say otherwise. Its first event records the source actor, EVENT and
    that state, so `theater verify` of the fork re-checks the source chain up to EVENT too.

    With --bundle FILE, EVENT is an event of the bundle's chain: the server first checks the bundle (every hash,
    link and blob) and re-executes its chain in a temporary store, refusing a damaged, forged or truncated one,
    then imports it into its home as `theater chain import` does (never resumed as a running actor), then forks.
    """
    api = client_for()
    path = "/v1/fork"
    if bundle is not None:
        imported = json.loads(api.raw("POST", "/v1/chains/import", bundle.read_bytes()))
        path = f"/v1/actors/{imported['actor']}/fork"  # EVENT must be of the bundle's chain
        if not as_json:
            click.echo(f"imported {bundle}: actor {imported['actor']}, {imported['events']} events, checked and "
                       "re-executed", err=True)
    body: dict[str, Any] = {"event": event, "name": name}
    if manifest is not None:
        parsed = load_manifest(manifest)
        body["manifest"] = parsed.source_text
        if parsed.component.kind == "path" and component is None:
            body["component_hash"] = upload(api, parsed.files.read(
                parsed.component.path, limit=DEFAULT_MAXIMUMS.component_file_bytes, what="component",
                source=str(manifest), field="component"))
    if component is not None:
        body["component_hash"] = upload(api, component.read_bytes())
    answer = api.post(path, body)
    if as_json:
        emit_json(answer)
    else:
        click.echo(f"forked {answer['name']} {answer['id']} ({answer['status']}) from event {event}")


@click.command()
@click.argument("actor", type=ACTOR_ID)
@click.option("--to", "to_event", required=True, help="The event (hash or unique prefix) of ACTOR's chain to go "
                                                      "back to.")
@click.option("--json", "as_json", is_flag=True, help="Print the server's answer as JSON.")
def revert(actor: str, to_event: str, as_json: bool) -> None:
    """Bring the running ACTOR back to its state at an earlier event of its chain.

    Nothing is deleted: the chain records the revert (actor/revert, naming the event and the state there) and a
    fresh instance from that state, and goes on from there. Refused while the actor holds an outstanding request,
    an open channel or a child.
    """
    answer = client_for().post(f"/v1/actors/{actor}/revert", {"to": to_event})
    if as_json:
        emit_json(answer)
    else:
        click.echo(f"reverted {answer['id']} to event {to_event} (recorded as event {answer['revert_seq']})")


def parse_override(text: str) -> tuple[int, Any]:
    """``SEQ=VALUE``: VALUE is JSON in the recorded form (``theater events --json``: bytes as ``"hex:..."``).

    Raises:
        click.BadParameter: naming what is wrong.
    """
    seq, sep, value = text.partition("=")
    if not sep or not (seq.strip().isascii() and seq.strip().isdigit()):
        raise click.BadParameter(f"{text!r} is not SEQ=VALUE (SEQ an event number)", param_hint="--override")
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        example = "e.g. '{\"ok\": 7}', '{\"err\": \"refused\"}', '\"hex:00ff\"' for bytes"
        raise click.BadParameter(f"the value of {seq.strip()} is not JSON ({exc}); {example}",
                                 param_hint="--override") from None
    return int(seq), from_jsonable(parsed)


def whatif(store: Store, actor: uuid.UUID, to_seq: int, overrides: list[str], *, as_json: bool,
           fork_name: str | None, make_fork: bool) -> None:
    """Run the what-if, show it beside the record, and with ``make_fork`` start its result as a new actor."""
    chosen = dict(parse_override(text) for text in overrides)
    try:
        result = run(Replayer(store), actor, to_seq=to_seq, overrides=chosen)
    except InvalidInputError as exc:
        raise click.BadParameter(str(exc), param_hint="--override") from None
    forked = None
    if make_fork:
        if result.stopped is not None:
            raise click.ClickException(f"no fork: {result.stopped}")
        head = store.log.at(actor, to_seq).hash.hex()
        forked = client_for().post("/v1/fork", {"event": head, "name": fork_name,
                                                "overrides": {str(k): jsonable(v) for k, v in chosen.items()}})
    if as_json:
        emit_json({**whatif_json(store, result), "fork": forked})
        return
    _show(store, result)
    if forked is not None:
        click.echo(f"forked {forked['name']} {forked['id']} from the what-if state")


def _outcome_text(outcome: dict[str, Any], state: bytes | None) -> str:
    if outcome["event"] == "wasm/result":
        return f"state {_state(state)}  output {readable_text(outcome.get('output'))}"
    if outcome["event"] == "wasm/err-answer":
        return f"err answered: {outcome.get('detail')}"
    return f"failed ({outcome.get('kind')}{': ' + str(outcome['detail']) if outcome.get('detail') else ''})"


def _state(value: bytes | None) -> str:
    if value is None:
        return "(none)"
    try:
        return json.dumps(json.loads(value), sort_keys=True)
    except ValueError:
        return f"<{len(value)} bytes> {value[:32].hex()}"


def _show(store: Store, result: WhatIfRun) -> None:
    click.echo(f"what-if of actor {result.actor}, events 0..{result.to_seq}, nothing written")
    for seq, value in sorted(result.overrides.items()):
        event = store.log.at(result.actor, seq)
        click.echo(f"  override {seq:>5}  {event.type}: recorded {readable_text(event.data.get('result'))} -> "
                   f"{readable_text(value)}")
    for call in result.calls:
        mark = "  " if call.same else "!="
        click.echo(f"{mark} call {call.seq:>5}  {call.export.rpartition('/')[2]}")
        if not call.same:
            click.echo(f"     recorded: {_outcome_text(call.recorded, call.recorded_state)}")
            click.echo(f"     what-if:  {_outcome_text(call.whatif, call.whatif_state)}")
            if call.whatif.get("skipped_host_calls"):
                skipped = call.whatif["skipped_host_calls"]
                click.echo(f"     what-if made none of the recorded host calls at events {skipped}")
    departure = result.departure
    if departure is not None:
        click.echo(f"first departure: the call at event {departure.seq} ({departure.export})")
    elif result.stopped is not None:
        click.echo("first departure: where the run stops (below); every call before it ends as recorded")
    else:
        click.echo("first departure: none: every call ends as recorded")
    if result.stopped is not None:
        click.echo(f"stopped: {result.stopped}")
    else:
        click.echo(f"reached event {result.last_seq}")
    click.echo(f"state at event {result.last_seq}: recorded {_state(result.recorded_state)} | what-if "
               f"{_state(result.state)}")


COMMANDS = (fork, revert)

__all__ = ["COMMANDS", "parse_override", "whatif", "whatif_json"]
