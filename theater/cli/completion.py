"""``theater completion``: shell completion scripts, and completion of actor ids from the running server."""

from __future__ import annotations

import uuid
from typing import Any

import click
from click.shell_completion import CompletionItem, get_completion_class

from store import parse_actor_id
from store.errors import InvalidInputError
from theater.porcelain.actors import ID_CHARS, MIN_PREFIX
from theater.cli.client import RemoteError, client_for

COMPLETION_TIMEOUT_S = 0.5


class ActorId(click.ParamType):
    """An actor id (a UUID, a unique prefix of one of at least 4 characters, or ``-`` where a command reads it
    from stdin); in shell completion, the ids of the running server's actors (none when it is not reachable).

    A prefix goes to the server as it is: the server resolves it among its home's actors
    (``theater.porcelain.resolve_actor``), as the commands that read the home do.
    """

    name = "actor_id"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        """The id in canonical form, or a prefix in lowercase, checked before it goes into a URL.

        Raises:
            InvalidInputError: neither a UUID nor a prefix of one (also when the argument is not valid UTF-8).
        """
        if value == "-" or isinstance(value, uuid.UUID):
            return str(value)
        try:
            return str(parse_actor_id(value))
        except InvalidInputError:
            text = value.lower() if isinstance(value, str) else ""
            if len(text) < MIN_PREFIX or not set(text) <= ID_CHARS:
                raise
            return text

    def shell_complete(self, ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
        try:
            actors = client_for(ctx, timeout=COMPLETION_TIMEOUT_S).get("/v1/actors")["actors"]
        except (RemoteError, OSError, ValueError, KeyError, TypeError):
            return []
        return [
            CompletionItem(a["id"], help=f"{a.get('name')} ({a.get('status')})")
            for a in actors
            if a["id"].startswith(incomplete)
        ]


ACTOR_ID = ActorId()


@click.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the completion script for SHELL.

    \b
    bash:  eval "$(theater completion bash)"          (e.g. in ~/.bashrc)
    zsh:   eval "$(theater completion zsh)"           (e.g. in ~/.zshrc)
    fish:  theater completion fish > ~/.config/fish/completions/theater.fish

    Actor ids complete from the server at --address when it is running.
    """
    root: Any = click.get_current_context().find_root().command
    cls = get_completion_class(shell)
    assert cls is not None  # click provides all three
    click.echo(cls(root, {}, "theater", "_THEATER_COMPLETE").source())


__all__ = ["ACTOR_ID", "ActorId", "completion"]
