"""Fixtures of the Python-actor tests (helpers in ``_support``): a ``Stage`` per test whose chains are all
verified and replayed afterwards, and copies of the examples to build."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ._support import EXAMPLES, Stage, chain_problems, copy_project, prune_cache


@pytest.fixture(scope="session", autouse=True)
def _pruned_cache() -> None:
    """Keep ``.cache/theater-build`` from growing without bound as sources and tools change."""
    prune_cache()


@pytest.fixture
def stage(tmp_path: Path) -> Iterator[Stage]:
    """A ``Stage`` (``.theater`` is the runtime); afterwards every chain must verify and replay."""
    opened = Stage(tmp_path / "home")
    try:
        yield opened
        problems = chain_problems(opened.theater)
    finally:
        opened.theater.close()
    if problems:
        pytest.fail("every actor must verify after its run:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture
def example(tmp_path: Path) -> Callable[[str], Path]:
    """``example("counter")``: a copy of ``examples/counter`` under ``tmp_path``, ready to build."""
    return lambda name: copy_project(EXAMPLES / name, tmp_path / "projects" / name)
