"""The ``environment`` handler: only the variables its config grants, denied wins, and nothing by default."""

from __future__ import annotations

import pytest

from tests.handlers._host import FakeActor
from theater.errors import ManifestError
from theater.handlers.environment import EnvironmentHandler


@pytest.fixture
def env(monkeypatch):
    for name, value in {"APP_MODE": "test", "APP_SECRET": "hunter2", "HOME_DIR": "/home/x", "PLAIN": "p"}.items():
        monkeypatch.setenv(name, value)


def handler(**config):
    return EnvironmentHandler(FakeActor(), config)


def test_an_allowed_variable_is_read(env):
    h = handler(allowed_vars=["PLAIN"])
    assert h.get_var("PLAIN") == {"some": "p"}
    assert h.exists("PLAIN") is True


def test_a_variable_under_an_allowed_prefix_is_read(env):
    assert handler(allowed_prefixes=["APP_"]).get_var("APP_MODE") == {"some": "test"}


def test_reading_a_denied_variable_is_refused_even_under_an_allowed_prefix(env):
    h = handler(allowed_prefixes=["APP_"], denied_vars=["APP_SECRET"])
    assert h.get_var("APP_SECRET") is None
    assert h.exists("APP_SECRET") is False


def test_a_denied_variable_looks_exactly_like_an_unset_one(env):
    h = handler(allowed_vars=["APP_SECRET", "NOT_SET"], denied_vars=["APP_SECRET"])
    assert (h.get_var("APP_SECRET"), h.exists("APP_SECRET")) == (h.get_var("NOT_SET"), h.exists("NOT_SET"))


def test_a_variable_outside_every_grant_is_refused(env):
    h = handler(allowed_prefixes=["APP_"])
    assert h.get_var("HOME_DIR") is None
    assert h.exists("HOME_DIR") is False


def test_nothing_is_reachable_without_a_grant(env):
    h = handler()
    assert h.get_var("PLAIN") is None
    assert h.list_vars() == []


def test_listing_all_vars_without_allow_list_all_gives_nothing(env):
    assert handler(allowed_prefixes=["APP_", "PLAIN"]).list_vars() == []


def test_listing_gives_only_the_reachable_variables(env):
    h = handler(allowed_prefixes=["APP_"], allowed_vars=["PLAIN"], denied_vars=["APP_SECRET"], allow_list_all=True)
    assert h.list_vars() == [["APP_MODE", "test"], ["PLAIN", "p"]]


@pytest.mark.parametrize(("config", "field"), [
    ({"allowed_vars": "PLAIN"}, "handlers.environment.config.allowed_vars"),
    ({"allowed_vars": ["ok", 3]}, "handlers.environment.config.allowed_vars[1]"),
    ({"allowed_prefixes": [""]}, "handlers.environment.config.allowed_prefixes[0]"),
    ({"allow_all": True}, "handlers.environment.config.allow_all"),
])
def test_a_bad_config_is_refused_naming_the_field(config, field):
    with pytest.raises(ManifestError) as caught:
        handler(**config)
    assert caught.value.field == field


@pytest.mark.parametrize(("parent", "child", "problem"), [
    ({"allowed_vars": ["A"]}, {"allowed_vars": ["A", "B"]}, "'B'"),
    ({"allowed_prefixes": ["APP_"]}, {"allowed_prefixes": ["AP"]}, "'AP'"),
    ({"allowed_prefixes": ["APP_"], "denied_vars": ["APP_SECRET"]}, {"allowed_prefixes": ["APP_"]}, "APP_SECRET"),
    ({"allowed_vars": ["A"], "denied_vars": ["A"]}, {"allowed_vars": ["A"]}, "'A'"),
    ({}, {"allow_list_all": True}, "allow_list_all"),
])
def test_a_child_widening_its_parents_variables_is_refused(parent, child, problem):
    wider = EnvironmentHandler.config_within(parent, child)
    assert wider is not None and problem in wider


@pytest.mark.parametrize(("parent", "child"), [
    ({"allowed_vars": ["A", "B"]}, {"allowed_vars": ["A"]}),
    ({"allowed_prefixes": ["APP_"]}, {"allowed_prefixes": ["APP_X"], "allowed_vars": ["APP_Y"]}),
    ({"allowed_prefixes": ["APP_"], "denied_vars": ["APP_SECRET"]},
     {"allowed_prefixes": ["APP_"], "denied_vars": ["APP_SECRET"]}),
    ({"allowed_vars": ["A"]}, {"allowed_vars": ["A", "B"], "denied_vars": ["B"]}),
    ({"allow_list_all": True, "allowed_vars": ["A"]}, {}),
])
def test_a_child_within_its_parents_variables_is_accepted(parent, child):
    assert EnvironmentHandler.config_within(parent, child) is None
