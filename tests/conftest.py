"""Settings shared by every test suite: a pinned, derandomised hypothesis profile so CI is repeatable."""

from __future__ import annotations

import tracemalloc  # noqa: F401  (imported here, before any thread runs: pytest's hook for an exception raised
# where nothing can catch it imports it on first use, and two threads doing so at once see a half-made module,
# which failed a cluster test with the hook's own error instead of the exception's)

from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None, max_examples=100, database=None, print_blob=True)
settings.load_profile("ci")
