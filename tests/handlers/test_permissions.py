"""One permission model: a child's grants lie within its parent's, handler by handler, and the refusal names the
handler, the field and both values."""

from __future__ import annotations

import pytest

from tests.handlers._host import FakeActor
from theater.errors import ManifestError
from theater.files import FileAccess
from theater.handlers import check_origin, check_permissions
from theater.handlers.random import RandomHandler
from theater.handlers.timing import TimingHandler
from theater.manifest import parse_manifest


def manifest(handlers: str, *, name: str = "m", files: FileAccess | None = None):
    text = f'name = "{name}"\ncomponent = "{"ab" * 32}"\n{handlers}'
    return parse_manifest(text, source=f"{name}.toml", files=files or FileAccess.trusted())


def grant(type_: str, config: str = "") -> str:
    return f'\n[[handlers]]\ntype = "{type_}"\n' + (f"config = {config}\n" if config else "")


def test_a_child_widening_its_parents_grants_is_refused_naming_handler_field_and_values(tmp_path):
    parent = manifest(grant("filesystem", f'{{ path = "{tmp_path}" }}'), name="parent")
    child = manifest(grant("filesystem", '{ path = "/" }'), name="child")
    with pytest.raises(ManifestError) as caught:
        check_permissions(child, parent)
    assert caught.value.field == "handlers.filesystem.config"
    assert caught.value.source == "child.toml"
    text = str(caught.value)
    assert "'filesystem'" in text and "path = '/'" in text and repr(str(tmp_path)) in text


def test_a_child_with_an_invalid_config_is_refused_before_it_is_compared(tmp_path):
    parent = manifest(grant("store", '{ store_ids = ["a"] }'), name="parent")
    child = manifest(grant("store", '{ store_ids = ["../a"] }'), name="child")
    with pytest.raises(ManifestError) as caught:
        check_permissions(child, parent)
    assert caught.value.field == "handlers.store.config.store_ids[0]"


def test_a_child_asking_for_a_handler_its_parent_lacks_is_still_refused():
    with pytest.raises(ManifestError, match="environment"):
        check_permissions(manifest(grant("environment")), manifest(""))


def test_a_child_with_the_same_grants_as_its_parent_is_accepted(tmp_path):
    handlers = grant("filesystem", f'{{ path = "{tmp_path}" }}') + grant("timing", "{ max_sleep_ms = 10 }")
    check_permissions(manifest(handlers), manifest(handlers))


def test_a_child_sleeping_longer_than_its_parent_may_is_refused():
    wider = TimingHandler.config_within({"max_sleep_ms": 10}, {})
    assert wider is not None and "max_sleep_ms" in wider and "10" in wider
    assert TimingHandler.config_within({"max_sleep_duration": 10}, {"max_sleep_ms": 5}) is None


def test_a_child_asking_for_more_random_bytes_than_its_parent_is_refused():
    assert "max_bytes" in RandomHandler.config_within({"max_bytes": 16}, {})
    assert "max_int" in RandomHandler.config_within({"max_int": 100}, {"max_int": 1000})
    assert RandomHandler.config_within({}, {"seed": 7, "max_bytes": 16}) is None


@pytest.mark.parametrize("type_", ["filesystem", "environment", "process"])
@pytest.mark.parametrize("files", [FileAccess.none("an API client"), FileAccess.stored({}, blobs=None)])
def test_a_manifest_not_the_operators_granting_the_hosts_world_is_refused(tmp_path, type_, files):
    config = f'{{ path = "{tmp_path}" }}' if type_ == "filesystem" else ""
    with pytest.raises(ManifestError) as caught:
        check_origin(manifest(grant(type_, config), files=files))
    assert caught.value.field == "handlers[0].type"
    assert "only the operator's own manifests" in str(caught.value)


def test_the_operators_manifest_and_a_recorded_one_may_grant_the_hosts_world(tmp_path):
    check_origin(manifest(grant("environment"), files=FileAccess.trusted()))
    check_origin(manifest(grant("environment"), files=FileAccess.recorded()))
    check_origin(manifest(grant("store"), files=FileAccess.none("an API client")))  # the home's store is not the host


# The original Theater's config keys.


def test_timing_takes_the_originals_sleep_bounds():
    timing = TimingHandler(FakeActor(), {"max_sleep_duration": 50, "min_sleep_duration": 10})
    assert "longer than the maximum of 50 ms" in timing.sleep(51)["err"]
    assert "shorter than the minimum of 10 ms" in timing.sleep(9)["err"]
    assert timing.sleep(10) == {"ok": None}
    with pytest.raises(ManifestError, match="not both"):
        TimingHandler(FakeActor(), {"max_sleep_duration": 50, "max_sleep_ms": 50})


def test_random_takes_the_originals_bounds():
    rng = RandomHandler(FakeActor(), {"max_bytes": 4, "max_int": 10, "allow_crypto_secure": True})
    assert "at most 4" in rng.random_bytes(5)["err"]
    assert len(rng.random_bytes(4)["ok"]) == 4
    assert "max_int of 10" in rng.random_range(0, 11)["err"]
    assert 0 <= rng.random_range(0, 10)["ok"] < 10
    with pytest.raises(ManifestError) as caught:
        RandomHandler(FakeActor(), {"max_bytes": 1 << 30})
    assert caught.value.field == "handlers.random.config.max_bytes"
