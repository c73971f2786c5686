"""Builders of small ``theater:simple`` test components (component WAT text).

See :mod:`tests.components.wat` for the behaviour menu and message formats.
"""

from .wat import *  # noqa: F403
from .wat import __all__  # noqa: F401
