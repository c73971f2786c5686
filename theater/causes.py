"""Causal links: each delivery from another actor names, in its ``wasm/call``'s ``cause``, the sender's event it
follows (``theater.envelope``, ``docs/events.md``). ``check_links`` checks every link of a chain against the
senders' chains in the same home, so a forged link (an event that does not exist, or that is not a message to this
actor) is caught by ``theater verify``.

What a link must name, by the export it delivers to:

- ``handle-send``: the sender's ``message-server-host/send`` naming this actor and this message, answered ok;
- ``handle-channel-message``, ``handle-channel-close``: its ``send-on-channel`` / ``close-channel`` with this
  channel (and message), answered ok;
- ``handle-request``, ``handle-channel-open``: the sender's event right before its ``request`` / ``open-channel``
  (that host call's own event records the answer, so it is appended after the delivery). The event after it must be
  that host call naming this actor and this message; or nothing yet (the sender waits for the answer); or a new
  instance (the sender's runtime went down, or a commit failed, while it waited).

A sender's event is named by one delivery at most. Chains recorded before links existed have none: nothing to
check.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from replay.schema import WASM_CALL, WASM_INSTANTIATE
from store import Event, Store, parse_actor_id
from store.errors import InvalidInputError, NotFoundError

HOST = "theater:simple/message-server-host/"
CLIENT = "theater:simple/message-server-client."
SEND, REQUEST, OPEN_CHANNEL = f"{HOST}send", f"{HOST}request", f"{HOST}open-channel"
SEND_ON_CHANNEL, CLOSE_CHANNEL = f"{HOST}send-on-channel", f"{HOST}close-channel"
HANDLE_SEND, HANDLE_REQUEST = f"{CLIENT}handle-send", f"{CLIENT}handle-request"
HANDLE_CHANNEL_OPEN, HANDLE_CHANNEL_MESSAGE = f"{CLIENT}handle-channel-open", f"{CLIENT}handle-channel-message"
HANDLE_CHANNEL_CLOSE = f"{CLIENT}handle-channel-close"
CAUSE_TEXT = b"\x65cause"  # the CBOR text "cause": a body without it holds no causal link


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkProblem:
    """The first link that does not hold: the delivery's ``seq`` and ``hash``, the ``cause`` it names, and why."""

    seq: int
    hash: bytes
    cause: Any
    detail: str

    def describe(self) -> str:
        cause = self.cause.hex() if isinstance(self.cause, bytes) else repr(self.cause)
        return f"event {self.seq} ({self.hash.hex()[:16]}) names cause {cause[:16]}: {self.detail}"


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkReport:
    """Every causal link of a chain checked (``links``: how many), and the first that does not hold."""

    links: int
    problem: LinkProblem | None

    @property
    def ok(self) -> bool:
        return self.problem is None


def check_links(store: Store, actor: uuid.UUID, *, to: int | None = None) -> LinkReport:
    """Check the causal link of every delivery in the actor's events ``0..to`` against the senders' chains."""
    cited: set[bytes] = set()
    links = 0
    for seq, value in store.log.raw_events(actor, 0, None if to is None else to + 1):
        if CAUSE_TEXT not in value:  # most events: no cause key in the body, nothing to decode
            continue
        event = store.log.at(actor, seq)
        data = event.data
        if event.type != WASM_CALL or not isinstance(data, dict) or "cause" not in data:
            continue
        links += 1
        detail = _check(store, actor, event, data, cited)
        if detail is not None:
            return LinkReport(links=links, problem=LinkProblem(seq=event.seq, hash=event.hash, cause=data["cause"],
                                                               detail=detail))
    return LinkReport(links=links, problem=None)


def _check(store: Store, actor: uuid.UUID, call: Event, data: dict[str, Any], cited: set[bytes]) -> str | None:
    cause, export, params = data["cause"], data.get("export"), data.get("params")
    if not isinstance(cause, bytes) or len(cause) != 32:
        return "it is not a 32-byte event hash"
    if cause in cited:
        return "an earlier delivery names the same event (one message delivered twice)"
    cited.add(cause)
    try:
        sender, seq = store.log.locate(cause)
        source = store.log.get(cause)
    except NotFoundError:
        return "no event of this home has that hash"
    if not isinstance(params, list) or not params:
        return "the delivery has no params to compare"
    if export == HANDLE_SEND:
        return _sent(source, SEND, actor, [params[0]])
    if export == HANDLE_CHANNEL_MESSAGE:
        return _sent(source, SEND_ON_CHANNEL, None, params)
    if export == HANDLE_CHANNEL_CLOSE:
        return _sent(source, CLOSE_CHANNEL, None, params[:1])
    if export in (HANDLE_REQUEST, HANDLE_CHANNEL_OPEN):
        if len(params) < 2:
            return "the delivery has no message to compare"
        host = REQUEST if export == HANDLE_REQUEST else OPEN_CHANNEL
        return _asked(store, sender, seq, host, actor, params[1])
    return f"a cause on {export!r}, which is not a delivery from another actor"


def _sent(source: Event, host: str, actor: uuid.UUID | None, expected: list[Any]) -> str | None:
    """``source`` must be the host call ``host`` answered ok; its params name ``actor`` (when given) first, then
    ``expected``; without ``actor`` its params are ``expected`` (channel id first)."""
    if source.type != host:
        return f"it is a {source.type!r} event of actor {source.actor}, not a {host.rsplit('/', 1)[1]!r}"
    sent = source.data.get("params") if isinstance(source.data, dict) else None
    result = source.data.get("result") if isinstance(source.data, dict) else None
    if not isinstance(result, dict) or "ok" not in result:
        return "that host call was answered err: it delivered nothing"
    if actor is not None:
        if not isinstance(sent, list) or len(sent) != 2 or not _names(sent[0], actor):
            return f"that {host.rsplit('/', 1)[1]!r} was addressed to another actor"
        sent = sent[1:]
    if sent != expected:
        return "that host call sent another message (or on another channel) than this delivery took"
    return None


def _asked(store: Store, sender: uuid.UUID, seq: int, host: str, actor: uuid.UUID, message: Any) -> str | None:
    """The sender's event after ``seq`` must be ``host`` to ``actor`` with ``message``, or absent, or a new
    instance (the sender's wait was interrupted)."""
    try:
        after = store.log.at(sender, seq + 1)
    except NotFoundError:
        return None  # the sender still waits for the answer
    if after.type == WASM_INSTANTIATE:
        return None  # the sender's runtime stopped, or a commit failed, while it waited: its host call is not recorded
    if after.type != host:
        return f"the sender's next event is {after.type!r}, not the {host.rsplit('/', 1)[1]!r} this delivery answers"
    asked = after.data.get("params") if isinstance(after.data, dict) else None
    if not isinstance(asked, list) or len(asked) != 2 or not _names(asked[0], actor):
        return f"that {host.rsplit('/', 1)[1]!r} was addressed to another actor"
    if asked[1] != message:
        return f"that {host.rsplit('/', 1)[1]!r} carried another message than this delivery took"
    return None


def _names(value: Any, actor: uuid.UUID) -> bool:
    try:
        return isinstance(value, str) and parse_actor_id(value) == actor
    except InvalidInputError:
        return False


__all__ = ["LinkProblem", "LinkReport", "check_links"]
