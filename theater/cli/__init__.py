"""The ``theater`` command line: a thin click layer that parses, calls the library and renders.

One module per noun. Errors become ``ErrorName: message`` on stderr with a non-zero exit code, from ``main``.
"""

from __future__ import annotations

import sys

import click

from store.errors import TheaterError
from theater import __version__
from theater.cli._context import Context
from theater.cli.actors import COMMANDS as ACTOR_COMMANDS
from theater.cli.audit import audit
from theater.cli.build import build, create, quickstart
from theater.cli.chain import chain
from theater.cli.cluster import cluster
from theater.cli.client import DEFAULT_ADDRESS
from theater.cli.completion import completion
from theater.cli.events import events, state
from theater.cli.lineage import COMMANDS as LINEAGE_COMMANDS
from theater.cli.replay import replay_command
from theater.cli.run import demo, run
from theater.cli.server import server
from theater.cli.store import store
from theater.cli.upgrade import upgrade_check_command
from theater.cli.verify import verify
from theater.cli.witness import witness


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="theater")
@click.option(
    "--home",
    type=click.Path(file_okay=False),
    envvar="THEATER_HOME",
    help="Theater home directory (default: $THEATER_HOME, else ~/.theater).",
)
@click.option(
    "--address",
    envvar="THEATER_ADDRESS",
    default=DEFAULT_ADDRESS,
    show_default=True,
    help="HOST:PORT of the theater server that start, list, message, subscribe, ... talk to ($THEATER_ADDRESS).",
)
@click.pass_context
def cli(ctx: click.Context, home: str | None, address: str) -> None:
    """Theater: WebAssembly actors with supervision and a verifiable, replayable record."""
    ctx.obj = Context(home)
    ctx.call_on_close(ctx.obj.close)


for command in (
    audit, build, chain, cluster, completion, create, demo, events, quickstart, replay_command, run, server, state,
    store, verify, upgrade_check_command, witness,
    *ACTOR_COMMANDS, *LINEAGE_COMMANDS,
):
    cli.add_command(command)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; every Theater error becomes ``ErrorName: message`` on stderr and exit code 1."""
    try:
        # Without standalone mode click returns the code of a ``click.exceptions.Exit`` instead of exiting.
        code = cli.main(args=argv, prog_name="theater", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except TheaterError as exc:
        click.echo(f"{type(exc).__name__}: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    except OSError as exc:
        click.echo(f"{type(exc).__name__}: {exc}", err=True)
        sys.exit(1)
    except UnicodeError as exc:  # an argument or input that is not valid UTF-8 text (a surrogate-escaped argv)
        click.echo(f"InvalidInputError: an argument or input is not valid UTF-8 text ({exc})", err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
