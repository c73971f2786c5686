"""``theater upgrade-check``: recorded chains re-executed against a new build of their component, classified."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import click
from rich.table import Table
from rich.text import Text

from replay import ReplayLimits
from replay.upgrade import ChainCheck, UpgradeReport, Verdict
from theater.cli._context import Context, emit_json
from theater.cli._render import console, data_summary, short
from theater.porcelain.upgrade import chains_named, new_build, upgrade_check, upgrade_json

pass_context = click.make_pass_decorator(Context)
ACCEPTABLE = (str(Verdict.STATE_ONLY), str(Verdict.DIFFERENT))
SUMMARY_WIDTH = 60


@click.command("upgrade-check")
@click.argument("new_component", type=click.Path(exists=True))
@click.argument("targets", nargs=-1)
@click.option("--all", "everything", is_flag=True,
              help="Check every chain in the home (with a project directory: those created with the project's "
                   "name; see --name).")
@click.option("--name", help="With --all: only chains whose manifest has this name.")
@click.option("--accept", "accepted", multiple=True, type=click.Choice(ACCEPTABLE),
              help="Also pass chains with this verdict (repeatable), e.g. --accept state-only.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True),
              help="Give up a chain's re-execution after this many seconds.")
@click.option("--cache-dir", type=click.Path(file_okay=False), envvar="THEATER_BUILD_CACHE",
              help="Build cache for a project directory ($THEATER_BUILD_CACHE).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON report.")
@pass_context
def upgrade_check_command(ctx: Context, new_component: str, targets: tuple[str, ...], everything: bool,
                          name: str | None, accepted: tuple[str, ...], timeout: float | None, cache_dir: str | None,
                          as_json: bool) -> None:
    """Replay recorded chains against NEW_COMPONENT (a .wasm file, or an actor project directory that is built)
    and classify each: identical; state-only (same host calls and outputs, another state encoding); different
    (another output, outcome or host call: the first difference is shown); fails (the new build traps, returns
    err, lacks an export or cannot be instantiated); unchecked (the record cannot be re-executed: a broken chain,
    a forged or truncated bundle). Every host call is answered from the record; nothing is written to the home.

    TARGETS are actor ids (or unique prefixes) in the home, and bundle files (`theater chain export`).

    \b
    Exit codes:
      0  every chain's verdict is accepted (identical, plus those named by --accept)
      3  a chain differs (different, or state-only without --accept state-only)
      4  a chain fails with the new build, or could not be checked
      1  an error (the new component cannot be read or built, an actor is not in the home)
      2  a usage error
    """
    if not targets and not everything:
        raise click.UsageError("name the chains to check (actor ids or bundle files), or --all")
    build = new_build(Path(new_component), cache_dir=Path(cache_dir) if cache_dir else None)
    bundles = [Path(t) for t in targets if os.path.isfile(t)]
    refs = [t for t in targets if not os.path.isfile(t)]
    actors: list[uuid.UUID] = [ctx.actor(ref) for ref in refs]
    store = ctx.store(readonly=True) if actors or everything else None
    if everything and store is not None:
        actors += [a for a in chains_named(store, name or build.name) if a not in actors]
    report = upgrade_check(build.wasm, store=store, actors=actors, bundles=bundles,
                           accept=[Verdict(a) for a in accepted], limits=ReplayLimits(timeout_s=timeout))
    if as_json:
        emit_json({"source": build.source, **upgrade_json(report)})
    else:
        _show(report, build.source)
    if report.exit_code:
        raise click.exceptions.Exit(report.exit_code)


def _show(report: UpgradeReport, source: str) -> None:
    out = console()
    out.print(f"new component {short(report.new_component)} ({source}): {len(report.chains)} chain(s)",
              markup=False, highlight=False)
    table = Table(show_edge=False, box=None, pad_edge=False)
    for column in ("chain", "from component", "verdict", "calls", "first difference"):
        table.add_column(column, no_wrap=column != "first difference")
    for c in report.chains:
        verdict = str(c.verdict) + ("" if c.accepted(report.accept) else " ✗")
        cells = (_name(c), short(c.old_component), verdict, str(c.calls), _difference(c))
        table.add_row(*(Text(cell) for cell in cells))
    out.print(table)
    refused = [c for c in report.chains if not c.accepted(report.accept)]
    out.print("passed" if not refused else f"refused: {len(refused)} of {len(report.chains)} chain(s)",
              markup=False, highlight=False)


def _name(check: ChainCheck) -> str:
    return check.source if check.source != str(check.actor) else str(check.actor)[:13]


def _difference(check: ChainCheck) -> str:
    d = check.difference
    parts = []
    if d is not None:
        parts.append(f"seq {d.seq} {d.event or '(past the record)'} {d.what}: recorded "
                     f"{data_summary(d.recorded, SUMMARY_WIDTH)}, new {data_summary(d.new, SUMMARY_WIDTH)}")
    if check.detail and (d is None or check.verdict != Verdict.DIFFERENT):
        parts.append(check.detail)
    return "; ".join(parts) or "-"
