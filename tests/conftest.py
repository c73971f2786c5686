"""Settings shared by every test suite: a pinned, derandomised hypothesis profile so CI is repeatable."""

from __future__ import annotations

from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None, max_examples=100, database=None, print_blob=True)
settings.load_profile("ci")
