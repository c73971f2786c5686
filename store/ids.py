"""Actor ids: UUIDs, 16 raw bytes inside the store, text at the edges."""

from __future__ import annotations

import uuid

from store.errors import InvalidInputError


def parse_actor_id(value: str | uuid.UUID) -> uuid.UUID:
    """Return ``value`` as a UUID.

    Raises:
        InvalidInputError: ``value`` is not a UUID in a form ``uuid.UUID`` accepts (canonical text, with or
            without hyphens or braces, or a ``urn:uuid:`` URN).
    """
    if isinstance(value, uuid.UUID):
        return value
    if not isinstance(value, str):
        raise InvalidInputError("actor id", value, "a UUID string")
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidInputError("actor id", value, "a UUID such as 1b4e28ba-2fa1-11d2-883f-0016d3cca427") from None


def new_actor_id() -> uuid.UUID:
    """A random UUIDv4 from the OS CSPRNG (``uuid.uuid4`` reads ``os.urandom``)."""
    return uuid.uuid4()
