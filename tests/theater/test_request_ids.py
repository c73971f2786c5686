"""Request ids: version-4 UUIDs in their usual text form, distinct, made without a system call per request."""

import uuid

from theater.router import new_request_id


def test_a_request_id_is_a_version_4_uuid_in_its_usual_text_form():
    for _ in range(2000):
        text = new_request_id()
        parsed = uuid.UUID(text)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
        assert str(parsed) == text


def test_request_ids_do_not_repeat():
    ids = {new_request_id() for _ in range(100_000)}
    assert len(ids) == 100_000
