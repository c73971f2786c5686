"""``theater store``: the content-addressed blob store and its labels.

Labels the runtime reserves (``build/``, ``compiled/``, ``theater/``) cannot be set or removed here.
"""

from __future__ import annotations

import sys

import click

from store import Store
from store.blobs import check_client_label
from store.errors import InvalidInputError, NotFoundError
from theater.cli._context import Context, emit_json

pass_context = click.make_pass_decorator(Context)


@click.group()
def store() -> None:
    """Put, get and label blobs in the home's content-addressed store."""


@store.command()
@click.argument("file", type=click.File("rb"))
@click.option("--label", help="Also point this label at the blob.")
@pass_context
def put(ctx: Context, file: click.utils.LazyFile, label: str | None) -> None:
    """Store FILE (or - for stdin) and print its blake3 hash."""
    if label:
        check_client_label(label)  # a refused label stores nothing
    st = ctx.store()
    digest = st.blobs.put(file.read())
    if label:
        st.blobs.set_label(label, digest)
    click.echo(digest.hex())


@store.command()
@click.argument("hash")
@click.option("-o", "--output", type=click.File("wb"), help="Write to this file instead of stdout.")
@pass_context
def get(ctx: Context, hash: str, output: click.utils.LazyFile | None) -> None:
    """Write the blob HASH (a unique hex prefix or a label name) to stdout or a file."""
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
    rows = [{"hash": d.hex(), "size": st.blobs.size(d)} for d in st.blobs]
    if as_json:
        emit_json(rows)
        return
    for row in rows:
        click.echo(f"{row['hash']}\t{row['size']}")


@store.command()
@click.argument("name")
@click.argument("hash")
@pass_context
def label(ctx: Context, name: str, hash: str) -> None:
    """Point label NAME at blob HASH (a unique hex prefix). Names starting with build/, compiled/ or theater/
    belong to the runtime and are refused."""
    st = ctx.store()
    st.blobs.set_label(name, st.blobs.resolve(hash))


@store.command("rm-label")
@click.argument("name")
@pass_context
def rm_label(ctx: Context, name: str) -> None:
    """Remove label NAME (the blob stays). The runtime's own labels cannot be removed."""
    ctx.store().blobs.remove_label(name)


def resolve_blob(st: Store, ref: str) -> bytes:
    """A blob reference from the command line: a hex prefix of at least 4 digits, else a label name."""
    try:
        return st.blobs.resolve(ref)
    except (InvalidInputError, NotFoundError) as exc:
        try:
            return st.blobs.get_label(ref)
        except NotFoundError:
            raise exc from None
