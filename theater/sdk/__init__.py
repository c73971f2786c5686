"""The actor SDK: Python that runs *inside* a Theater component built by ``theater build``.

An actor module subclasses ``Actor``, overrides the handlers it needs and registers the class with ``run``::

    from theater_sdk import Actor, run

    class Counter(Actor):
        def init(self):
            self.state = {"count": 0}

        def on_send(self, message):
            self.state["count"] += 1

        def on_request(self, message):
            return str(self.state["count"])

    run(Counter)

Inside a component this package is importable as ``theater_sdk`` (``theater build`` stages a copy of it under that
name next to the generated entry module); on the host it is ``theater.sdk``. It imports only the standard library,
the bindings componentize-py generates for the actor's world (``wit_world``) and ``componentize_py_types``, and
only relatively among its own modules, so it works under both names. Host capabilities are small typed wrappers:
``runtime`` (log, chain, shutdown), ``timing``, ``random``, ``messaging``, ``supervisor``, ``store``, ``fs``
(filesystem), ``env`` (environment variables), ``process``, ``http`` (the ``http-client`` interface) and ``web``
(serving: ``@route``, ``@middleware``, ``Request``, ``Response``; ``http-framework``). A wrapper whose
interface is not in the actor's world raises ``CapabilityError`` naming the WIT import and the manifest handler.
"""

from . import env, fs, http, messaging, process, random, runtime, store, supervisor, timing, web
from ._actor import DEFER, Actor, ChannelAnswer, ChildError, accept, reject, run
from ._host import CapabilityError, HostError, SandboxError
from .web import Request, Response, middleware, route

__all__ = [
    "DEFER",
    "Actor",
    "CapabilityError",
    "ChannelAnswer",
    "ChildError",
    "HostError",
    "Request",
    "Response",
    "http",
    "middleware",
    "route",
    "web",
    "SandboxError",
    "accept",
    "env",
    "fs",
    "messaging",
    "process",
    "random",
    "reject",
    "run",
    "runtime",
    "store",
    "supervisor",
    "timing",
]
