"""Labels the runtime uses are reserved: no client (API, CLI, embedding code) may set or remove them.

The server's and the CLI's refusals are tested in tests/server/test_origin.py and tests/cli/test_reserved_labels.py.
"""

from __future__ import annotations

import pytest

from store import RESERVED_LABEL_PREFIXES, ReservedLabelError, Store
from store.blobs import check_client_label
from store.errors import InvalidInputError, NotFoundError

RESERVED = [f"{prefix}{'ab' * 32}" for prefix in RESERVED_LABEL_PREFIXES]


@pytest.mark.parametrize("name", RESERVED)
def test_clients_cannot_point_a_reserved_label_at_a_blob(store: Store, name: str) -> None:
    blob = store.blobs.put(b"native code of the attacker")

    with pytest.raises(ReservedLabelError, match=f"^label '{name}' is reserved: names starting with"):
        store.blobs.set_label(name, blob)

    assert store.blobs.labels() == []


@pytest.mark.parametrize("name", RESERVED)
def test_clients_cannot_remove_a_reserved_label(store: Store, name: str) -> None:
    blob = store.blobs.put(b"the runtime's")
    store.blobs.set_runtime_label(name, blob)

    with pytest.raises(ReservedLabelError, match="is reserved"):
        store.blobs.remove_label(name)

    assert store.blobs.get_label(name) == blob


def test_a_reserved_label_error_is_an_invalid_input_error_naming_the_prefix() -> None:
    with pytest.raises(InvalidInputError) as caught:
        check_client_label("compiled/x")
    assert isinstance(caught.value, ReservedLabelError) and caught.value.prefix == "compiled/"


@pytest.mark.parametrize("name", ["compiled", "builds/x", "my/compiled/x", "Theater/x", "counter/latest"])
def test_names_merely_resembling_a_reserved_prefix_stay_usable(store: Store, name: str) -> None:
    blob = store.blobs.put(b"x")

    store.blobs.set_label(name, blob)
    store.blobs.remove_label(name)

    with pytest.raises(NotFoundError):
        store.blobs.get_label(name)


def test_the_runtime_path_takes_only_reserved_names(store: Store) -> None:
    blob = store.blobs.put(b"x")

    with pytest.raises(InvalidInputError, match="invalid runtime label 'counter'"):
        store.blobs.set_runtime_label("counter", blob)
    store.blobs.set_runtime_label("build/0123", blob)

    assert store.blobs.labels() == [("build/0123", blob)]
