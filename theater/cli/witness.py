"""``theater witness URL``: follow a server's checkpoints, verify and re-execute what they cover, co-sign them."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click

from store import Store
from store.checkpoint import VerifierKey
from store.errors import InvalidInputError
from theater.witness import (
    EVIDENCE_DIR,
    HALT_FILE,
    KEY_FILE,
    WITNESS_DIR,
    RewriteFound,
    Witness,
    WitnessError,
    WitnessHalted,
    clear_halt,
    load_cosigner,
)

DEFAULT_HOME = "~/.theater-witness"
EXIT_REWRITE = 2
EXIT_HALTED = 3


@click.command("witness")
@click.argument("url", required=False)
@click.option("--home", "home", type=click.Path(file_okay=False), default=DEFAULT_HOME, show_default=True,
              help="The witness's own home: its store (the copied events and blobs, its progress) and evidence.")
@click.option("--key-file", type=click.Path(dir_okay=False), default=None,
              help="The witness's Ed25519 key (32-byte seed, mode 0600), created on first use "
                   "(default: <home>/witness/ed25519.key).")
@click.option("--name", default=None, help="The witness's name in its cosignatures (default: "
                                           "theater-witness/<16 hex digits of its key's SHA-256>).")
@click.option("--server-key", default=None, metavar="VKEY",
              help="The server's verifier key (theater audit key); default: pinned on first contact.")
@click.option("--token", envvar="THEATER_TOKEN", default=None, help="The server's API token ($THEATER_TOKEN).")
@click.option("--once", is_flag=True, help="One round: verify and co-sign the newest checkpoint, then exit "
                                           "(exit 2 when a rewrite or divergence is found, 3 when halted by one "
                                           "found before).")
@click.option("--interval", type=click.FloatRange(min=0.01), default=1.0, show_default=True,
              help="Seconds between polls of the server's checkpoints.")
@click.option("--print-key", is_flag=True, help="Print the witness's key (for theater server --witness-key) and exit.")
@click.option("--clear-halt", "clear_halt_mark", is_flag=True,
              help="Clear the halt mark a rewrite or divergence left (after checking its evidence) and exit; the "
                   "evidence files stay.")
def witness(url: str | None, home: str, key_file: str | None, name: str | None, server_key: str | None,
            token: str | None, once: bool, interval: float, print_key: bool, clear_halt_mark: bool) -> None:
    """Witness the server at URL: co-sign each checkpoint only after checking and re-executing what it covers.

    Each round checks the newest checkpoint's signature with the server key (pinned on first contact, or
    --server-key), checks it extends the last one accepted (consistency proof), copies the new events and
    blobs into the witness's own home (each hashed and linked to its chain), checks they reproduce the signed
    root, re-executes every chain that moved from where it stopped, keeps its progress, and posts a C2SP
    cosignature (the server accepts it only when started with --witness-key and this key). Killed and
    restarted, it goes on from the last checkpoint it accepted.

    A rewrite (a checkpoint by another key, inconsistent checkpoints, a changed event, leaves that do not
    reproduce the root) or a divergence is written as evidence to <home>/witness/evidence/, reported, not
    co-signed, and ends the witness with exit code 2. The witness then stays halted: started again, it refuses
    to run (exit code 3) until the operator has checked the evidence and run 'theater witness --clear-halt'.
    """
    root = Path(home).expanduser()
    if clear_halt_mark:
        cleared = clear_halt(root / WITNESS_DIR / HALT_FILE)
        if cleared is None:
            click.echo("the witness is not halted")
        else:
            click.echo(f"cleared the halt ({cleared.get('kind')}; evidence kept: {cleared.get('evidence')})")
        return
    cosigner = load_cosigner(Path(key_file).expanduser() if key_file else root / WITNESS_DIR / KEY_FILE, name)
    if print_key:
        click.echo(cosigner.key.text)
        return
    if not url:
        raise click.UsageError("give the server's URL (http://HOST:PORT), or --print-key")
    if "://" not in url:
        url = "http://" + url
    pinned = None
    if server_key is not None:
        try:
            pinned = VerifierKey.parse(server_key)
        except InvalidInputError as exc:
            raise click.BadParameter(str(exc), param_hint="--server-key") from None
    stop = threading.Event()
    _on_term(stop)
    store = Store(root / "store")
    try:
        found = Witness(url, store, cosigner, root / WITNESS_DIR / EVIDENCE_DIR, token=token, server_key=pinned,
                        log=lambda line: click.echo(line, err=True))
        click.echo(f"witness {cosigner.key.text} following {url}", err=True)
        _follow(found, once, interval, stop)
    except RewriteFound as exc:
        click.echo(f"WITNESS ALERT: {exc}", err=True)
        raise click.exceptions.Exit(EXIT_REWRITE) from None
    except WitnessHalted as exc:
        click.echo(f"WITNESS HALTED: {exc}", err=True)
        raise click.exceptions.Exit(EXIT_HALTED) from None
    except WitnessError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        store.close()


def _follow(found: Witness, once: bool, interval: float, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            done = found.round()
        except RewriteFound:
            raise
        except WitnessError as exc:
            if once:
                raise
            click.echo(f"WitnessError: {exc} (trying again)", err=True)
        else:
            if done.number is not None:
                click.echo(f"checkpoint {done.number}: {done.size} events, {done.events} new verified, "
                           f"{done.calls} calls re-executed; co-signed")
                sys.stdout.flush()
        if once:
            return
        stop.wait(interval)


def _on_term(stop: threading.Event) -> None:
    def handler(signum: int, frame: Any) -> None:
        stop.set()

    if threading.current_thread() is threading.main_thread() and os.name == "posix":
        signal.signal(signal.SIGTERM, handler)
