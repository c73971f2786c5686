"""Errors of the management API, and the one place where Theater's errors become HTTP statuses.

Every error answer has the body ``{"error": "ErrorName", "message": "..."}`` (plus a few structured fields for
some errors). ``ErrorName`` is the class name of the Theater error (``ActorNotFound``, ``ManifestError``, ...) or,
for a problem with the HTTP request itself, the name of an ``ApiError`` (``InvalidJSON``, ``Unauthorized``, ...).
"""

from __future__ import annotations

from typing import Any

from replay.errors import ComponentError, GuestFault, RecordIncomplete, ReplayError, ReplayTimeout, SettingsMismatch
from store.errors import (
    AmbiguousPrefixError,
    ChecksumMismatch,
    CorruptRecordError,
    InvalidInputError,
    NotFoundError,
    CosignatureRefused,
    ProofError,
    StaleHeadError,
    StoreClosedError,
    StoreFullError,
    StoreWriteError,
    TheaterError,
)
from store.replicated import ReplicationError
from theater.errors import (
    ActorNotFound,
    ActorNotRunning,
    ChannelNotFound,
    ErrAnswered,
    LinkError,
    MailboxFull,
    ManifestError,
    MessageError,
    MessageTooLarge,
    ReceiveTimeout,
    ReplyTimeout,
    ResourceExhausted,
    RevertRefused,
    BundleConflict,
    BundleRefused,
    SupervisionError,
    UpgradeRefused,
)


class ApiError(Exception):
    """A problem with an HTTP request itself (malformed JSON, a missing field, no token, a timeout).

    Attributes:
        status: the HTTP status to answer with.
        name: the ``error`` field of the answer.
        message: the ``message`` field of the answer.
    """

    def __init__(self, status: int, name: str, message: str) -> None:
        self.status = status
        self.name = name
        self.message = message
        super().__init__(message)


def bad_request(message: str, name: str = "InvalidRequest") -> ApiError:
    """A 400 answer: the request is malformed."""
    return ApiError(400, name, message)


def unprocessable(message: str, name: str) -> ApiError:
    """A 422 answer: the request is well formed but this server cannot do what it names (``NotInACluster``: a
    start naming a node on a server started without ``--cluster``)."""
    return ApiError(422, name, message)


# Most specific first: the first class the error is an instance of decides.
STATUSES: tuple[tuple[type[BaseException], int], ...] = (
    (ActorNotFound, 404),
    (ActorNotRunning, 409),
    (ManifestError, 422),
    (LinkError, 422),
    (MailboxFull, 429),
    (MessageTooLarge, 413),
    (ReplyTimeout, 504),
    (ReceiveTimeout, 504),
    (ChannelNotFound, 404),
    (MessageError, 409),  # ChannelRejected, ChannelClosed, RequestCancelled, ExportMissing, ReplyAbandoned
    (SupervisionError, 409),
    (RevertRefused, 409),
    (BundleConflict, 409),  # before BundleRefused, its base
    (BundleRefused, 422),
    (UpgradeRefused, 409),
    (ResourceExhausted, 503),
    (AmbiguousPrefixError, 400),
    (NotFoundError, 404),
    (InvalidInputError, 400),
    (StaleHeadError, 409),
    (CosignatureRefused, 403),  # a witness key the operator did not list, or a forged cosignature
    (ProofError, 409),  # an event newer than the checkpoint asked for; a signing key that is unsafe or replaced
    (StoreFullError, 507),
    (StoreClosedError, 503),
    (StoreWriteError, 503),
    (ReplicationError, 503),  # in a cluster: the append was not replicated (this node lost the actor, or is cut off)
    (ChecksumMismatch, 500),
    (CorruptRecordError, 500),
    (ComponentError, 422),
    (GuestFault, 422),
    (SettingsMismatch, 409),
    (RecordIncomplete, 422),
    (ReplayTimeout, 504),
    (ReplayError, 422),
    (TheaterError, 500),
)


def status_of(exc: BaseException) -> int:
    """The HTTP status for an error raised by Theater (500 for anything not listed in ``STATUSES``)."""
    if isinstance(exc, ApiError):
        return exc.status
    for cls, status in STATUSES:
        if isinstance(exc, cls):
            return status
    return 500


def error_body(exc: BaseException) -> dict[str, Any]:
    """The JSON body that describes ``exc`` to a client."""
    if isinstance(exc, ApiError):
        return {"error": exc.name, "message": exc.message}
    body: dict[str, Any] = {"error": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, GuestFault):
        body.update(kind=exc.kind, export=exc.export, detail=exc.detail)
        if isinstance(exc, ErrAnswered):  # the actor answered err and keeps running
            body.update(actor=exc.actor_id, answered=True)
    elif isinstance(exc, ActorNotRunning):
        body.update(actor=exc.actor_id, status=exc.status)
    elif isinstance(exc, ActorNotFound):
        body.update(actor=exc.actor_id)
    elif isinstance(exc, MailboxFull):
        body.update(actor=exc.actor_id, waiting=exc.waiting, max_messages=exc.max_messages, max_bytes=exc.max_bytes)
    elif isinstance(exc, MessageTooLarge):
        body.update(actor=exc.actor_id, size=exc.size, limit=exc.limit)
    elif isinstance(exc, ReplyTimeout):
        body.update(timeout=exc.seconds)
    elif isinstance(exc, ResourceExhausted):
        body.update(resource=exc.resource, actor=exc.actor_id)
    elif isinstance(exc, ManifestError):
        body.update(field=exc.field, problem=exc.problem)
    return body


__all__ = ["STATUSES", "ApiError", "bad_request", "error_body", "status_of"]
