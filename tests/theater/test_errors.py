"""One error tree: every error of the live system is a ``theater.TheaterError``, and each defect of the tree that
issue 12 found has a test here."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import theater
import theater.errors
from store.errors import TheaterError
from theater.errors import HomeLocked, LinkError, ManifestError, MessageError, ServerError
from theater.handlers import IMPLEMENTED, check_grants
from theater.manifest import parse_manifest
from theater.server import ServerError as ExportedServerError
from theater.server.serve import home_lock

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = 'name = "clock"\ncomponent = "{digest}"\n[[handlers]]\ntype = "random"\n'


def test_theater_exports_its_root_error():
    assert theater.TheaterError is TheaterError
    assert "TheaterError" in theater.__all__


def test_every_error_of_the_live_system_is_in_the_tree():
    errors = [cls for _, cls in inspect.getmembers(theater.errors, inspect.isclass) if issubclass(cls, Exception)]
    assert errors and all(issubclass(cls, TheaterError) for cls in errors), errors


def test_a_second_server_on_a_home_is_refused_with_an_error_of_the_tree(tmp_path):
    assert ExportedServerError is ServerError and issubclass(ServerError, TheaterError)
    with home_lock(tmp_path), pytest.raises(HomeLocked, match=r"another theater server is running on the home"):
        with home_lock(tmp_path):
            pass


def test_check_grants_names_the_import_and_the_handler_that_would_grant_it():
    manifest = parse_manifest(MANIFEST.format(digest="ab" * 32), source="clock.toml")
    imports = {"theater:simple/random": {"random-bytes": None}, "theater:simple/timing@0.1.0": {"now": None}}
    with pytest.raises(LinkError, match=r"^clock imports 'theater:simple/timing@0.1.0', .* of type 'timing'$"):
        check_grants(manifest, imports)
    check_grants(manifest, {"theater:simple/random": {"random-bytes": None}, "theater:simple/timing": {}})


def test_check_grants_refuses_a_handler_this_build_lacks(monkeypatch):
    # Every handler type of the manifest format is built today; a build without one must still refuse it clearly.
    monkeypatch.delitem(IMPLEMENTED, "random")
    with pytest.raises(ManifestError, match=r"handler type 'random' is not available in this build"):
        check_grants(parse_manifest(MANIFEST.format(digest="ab" * 32), source="clock.toml"), {})


def test_a_missing_grant_becomes_link_error_in_one_place():
    # The runtime (before an actor is recorded) and the actor (before each instance) both call check_grants.
    raising = [path.relative_to(ROOT).as_posix() for path in (ROOT / "theater").rglob("*.py")
               if re.search(r"raise LinkError\(", path.read_text())]
    assert raising == ["theater/handlers/__init__.py"]


def test_routes_pick_no_status_for_theater_errors_by_hand():
    # Statuses of Theater's errors are mapped in theater/server/errors.py only.
    for path in (ROOT / "theater" / "server" / "routes").glob("*.py"):
        assert not re.search(r"ApiError\(\s*\d", path.read_text()), path.name


def test_message_errors_keep_their_structured_fields():
    error = theater.errors.MessageTooLarge("a", size=9, limit=8, declared=8, call_limit=16)
    assert isinstance(error, MessageError) and (error.size, error.limit) == (9, 8)
    assert str(error) == "message of 9 bytes is larger than actor a's limit of 8"
    timeout = theater.errors.ReplyTimeout("request to a", 0.5)
    assert (timeout.what, timeout.seconds) == ("request to a", 0.5)
    assert str(timeout) == "request to a got no answer within 0.5 s"
