"""Without the system's Chromium the browser tests skip and say which package to install; under CI they fail."""

from __future__ import annotations

import pytest

from tests.explorer import conftest


@pytest.fixture
def no_chromium(monkeypatch, tmp_path):
    monkeypatch.setattr(conftest, "CHROMIUM", tmp_path / "no-chromium")
    monkeypatch.setattr(conftest.shutil, "which", lambda name: None)


def test_a_missing_browser_skips_and_names_the_package_outside_ci(no_chromium, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install -y chromium"):
        conftest.require_chromium()


def test_a_missing_browser_fails_the_run_in_ci(no_chromium, monkeypatch):
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y chromium"):
        conftest.require_chromium()


def test_the_installed_browser_is_found(monkeypatch, tmp_path):
    fake = tmp_path / "chromium"
    fake.write_text("")
    monkeypatch.setattr(conftest, "CHROMIUM", fake)
    assert conftest.require_chromium() == fake
