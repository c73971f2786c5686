"""Tracebacks for the WIT ``err`` an export returns when the actor's code raised.

Frames of the SDK's dispatcher are left out, and the ``/N/`` prefix componentize-py gives each directory of the
Python path is dropped, so a traceback names ``app.py`` as the developer knows it.
"""

import re
import traceback
from types import TracebackType

_PATH_PREFIX = re.compile(r'File "/\d+/')


def format_error(exc: BaseException, skip_file: str) -> str:
    """The traceback of ``exc`` as text, without the leading frames that run code from ``skip_file``."""
    tb: TracebackType | None = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == skip_file:
        tb = tb.tb_next
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    return _PATH_PREFIX.sub('File "', text).rstrip("\n")
