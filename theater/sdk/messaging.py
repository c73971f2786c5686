"""The ``message-server-host`` interface (handler ``message-server``): talk to other actors.

Messages are bytes; a ``str`` is sent as UTF-8. Everything sent is released only once the sending call's events
are durable, so nothing another actor sees can be lost by a crash of the sender.
"""

from ._host import as_bytes, call


def send(actor_id: str, message: bytes | str) -> None:
    """Send a one-way message to another actor.

    Raises:
        HostError: no such running actor, or the message is too large.
    """
    call("message_server_host", "send", actor_id, as_bytes(message))


def request(actor_id: str, message: bytes | str) -> bytes:
    """Send a request and wait for the answer (this actor handles nothing else meanwhile).

    Raises:
        HostError: no such running actor, it failed, or no answer came in time.
    """
    return call("message_server_host", "request", actor_id, as_bytes(message))


def open_channel(actor_id: str, message: bytes | str = b"") -> str:
    """Open a channel to another actor with a first message; returns the channel id.

    Raises:
        HostError: the other actor rejected the channel or is not running.
    """
    return call("message_server_host", "open_channel", actor_id, as_bytes(message))


def send_on_channel(channel_id: str, message: bytes | str) -> None:
    """Send a message on an open channel.

    Raises:
        HostError: no such open channel.
    """
    call("message_server_host", "send_on_channel", channel_id, as_bytes(message))


def close_channel(channel_id: str) -> None:
    """Close a channel; the other end's ``on_channel_close`` runs.

    Raises:
        HostError: no such open channel.
    """
    call("message_server_host", "close_channel", channel_id)


def outstanding() -> list[str]:
    """Ids of requests this actor deferred (returned ``DEFER`` for) and has not answered yet."""
    return list(call("message_server_host", "list_outstanding_requests"))


def respond(request_id: str, response: bytes | str) -> None:
    """Answer a deferred request.

    Raises:
        HostError: no such outstanding request.
    """
    call("message_server_host", "respond_to_request", request_id, as_bytes(response, "a response"))


def cancel(request_id: str) -> None:
    """Drop a deferred request without answering; the requester gets an error.

    Raises:
        HostError: no such outstanding request.
    """
    call("message_server_host", "cancel_request", request_id)
