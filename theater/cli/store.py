"""``theater store``: the content-addressed blob store and its labels.

Labels the runtime reserves (``build/``, ``compiled/``, ``theater/``) cannot be set or removed here.
"""

from __future__ import annotations

import sys
from typing import IO, Any

import click

from theater.cli._context import Context, emit_json
from theater.porcelain.blobs import blob_info, put_blob, resolve_blob, set_label
from theater.porcelain.forms import blob_json

pass_context = click.make_pass_decorator(Context)


@click.group()
def store() -> None:
    """Put, get and label blobs in the home's content-addressed store."""


@store.command()
@click.argument("file", type=click.File("rb"))
@click.option("--label", help="Also point this label at the blob.")
@click.option("--json", "as_json", is_flag=True, help='Print {"hash", "size", "label"} as JSON.')
@pass_context
def put(ctx: Context, file: IO[bytes], label: str | None, as_json: bool) -> None:
    """Store FILE (or - for stdin) and print its blake3 hash."""
    stored = put_blob(ctx.store(), file.read(), label)
    if as_json:
        emit_json({**blob_json(stored), "label": label})
    else:
        click.echo(stored.digest.hex())


@store.command()
@click.argument("hash")
@click.option("-o", "--output", type=click.File("wb"), help="Write to this file instead of stdout.")
@pass_context
def get(ctx: Context, hash: str, output: IO[bytes] | None) -> None:
    """Write the blob HASH (a unique hex prefix, store:LABEL or a label name) to stdout or a file."""
    st = ctx.store(readonly=True)
    data = st.blobs.get(resolve_blob(st, hash))
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        output.write(data)


@store.command("ls")
@click.option("--labels", is_flag=True, help="List labels instead of blobs.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
def ls(ctx: Context, labels: bool, as_json: bool) -> None:
    """List the blobs (hash and size) or the labels."""
    st = ctx.store(readonly=True)
    if labels:
        rows = [{"label": name, "hash": digest.hex()} for name, digest in st.blobs.labels()]
        if as_json:
            emit_json(rows)
        for row in [] if as_json else rows:
            click.echo(f"{row['label']}\t{row['hash']}")
        return
    sizes: list[dict[str, Any]] = [{"hash": d.hex(), "size": st.blobs.size(d)} for d in st.blobs]
    if as_json:
        emit_json(sizes)
        return
    for row in sizes:
        click.echo(f"{row['hash']}\t{row['size']}")


@store.command()
@click.argument("name")
@click.argument("hash")
@pass_context
def label(ctx: Context, name: str, hash: str) -> None:
    """Point label NAME at blob HASH (a unique hex prefix). Names starting with build/, compiled/ or theater/
    belong to the runtime and are refused."""
    set_label(ctx.store(), name, hash)


@store.command("rm-label")
@click.argument("name")
@pass_context
def rm_label(ctx: Context, name: str) -> None:
    """Remove label NAME (the blob stays). The runtime's own labels cannot be removed."""
    ctx.store().blobs.remove_label(name)


@store.command()
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True, help='Print {"hash", "size"} as JSON.')
@pass_context
def resolve(ctx: Context, ref: str, as_json: bool) -> None:
    """Print the full hash (and size) of the blob REF names: a unique hex prefix, store:LABEL or a label name."""
    info = blob_info(ctx.store(readonly=True), ref)
    if as_json:
        emit_json(blob_json(info))
    else:
        click.echo(f"{info.digest.hex()}\t{info.size}")
