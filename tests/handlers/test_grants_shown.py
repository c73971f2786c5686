"""``theater inspect`` (the porcelain's ``describe``) shows an actor's effective grants, read from the manifest its
``actor/created`` records."""

from __future__ import annotations

import uuid

from tests._fixtures import ManifestWriter
from tests.components import wat
from theater.porcelain import describe
from theater.runtime import Theater


def test_inspect_shows_the_handlers_an_actor_was_granted_with_their_configs(tmp_path):
    (tmp_path / "actors").mkdir()
    path = ManifestWriter(tmp_path / "actors")("echo", wat.echo_actor(), ["message-server", "environment"],
                                               config={"environment": {"allowed_vars": ["LANG"]}})
    with Theater(tmp_path / "home", durability="buffered") as theater:
        actor = theater.start(path)
        grants = describe(theater.store, uuid.UUID(actor), theater)["grants"]
    assert grants == [{"type": "runtime", "config": {}}, {"type": "message-server", "config": {}},
                      {"type": "environment", "config": {"allowed_vars": ["LANG"]}}]
