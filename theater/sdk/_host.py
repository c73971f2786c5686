"""The bindings of the host interfaces in the actor's world, and the errors a host call can raise.

componentize-py generates one module per imported interface (``wit_world.imports.<name>``). They are imported
here, when the actor module is imported at build time: at run time a component built with ``--stub-wasi`` cannot
read files, so a module that was not imported at build time cannot be imported later. An interface missing from
the world is simply absent; calling into it raises ``CapabilityError``.

A host function that returns the WIT ``err`` raises ``componentize_py_types.Err`` in the guest; ``call`` turns it
into ``HostError`` so actors catch one exception type.
"""

import importlib
from typing import Any

try:
    from componentize_py_types import Err
except ImportError:  # on the host, without componentize-py's runtime

    class Err(Exception):  # type: ignore[no-redef]
        """Stand-in for ``componentize_py_types.Err`` outside a component."""

        def __init__(self, value: Any) -> None:
            super().__init__(value)
            self.value = value


INTERFACES = {
    "types": None,
    "runtime": "runtime",
    "message_server_host": "message-server",
    "timing": "timing",
    "random": "random",
    "supervisor": "supervisor",
    "store": "store",
    "environment": "environment",
    "filesystem": "filesystem",
    "process": "process",
    "http_types": None,
    "websocket_types": None,
    "http_client": "http-client",
    "http_framework": "http-framework",
}


class HostError(Exception):
    """A host function answered with the WIT ``err``.

    Attributes:
        function: ``interface.function`` that failed, e.g. ``message-server-host.request``.
        message: the host's error text.
    """

    def __init__(self, function: str, message: str) -> None:
        self.function = function
        self.message = message
        super().__init__(f"{function}: {message}")


class CapabilityError(HostError):
    """The actor's world does not import the interface a wrapper needs."""

    def __init__(self, interface: str) -> None:
        wit = interface.replace("_", "-")
        handler = INTERFACES.get(interface) or wit
        super().__init__(
            wit,
            f"this actor's world does not import theater:simple/{wit}: add `import theater:simple/{wit};` to the "
            f"world in wit/world.wit and grant it in manifest.toml with a [[handlers]] entry of type {handler!r}",
        )


class SandboxError(OSError):
    """Something that needs the operating system was used inside an actor (clock, files, entropy).

    A component built with ``--stub-wasi`` has no operating system: these calls would trap and poison the
    instance. The SDK makes the common ones raise this error instead, naming the host capability to use.
    """


def _load(name: str) -> Any:
    try:
        return importlib.import_module(f"wit_world.imports.{name}")
    except ImportError:
        return None


BINDINGS = {name: _load(name) for name in INTERFACES}


def binding(interface: str) -> Any:
    """The generated bindings module of ``interface`` (snake_case WIT name).

    Raises:
        CapabilityError: the interface is not in the actor's world.
    """
    module = BINDINGS.get(interface)
    if module is None:
        raise CapabilityError(interface)
    return module


def call(interface: str, function: str, *args: Any) -> Any:
    """Call a host function, turning its WIT ``err`` into ``HostError``.

    Raises:
        CapabilityError: the interface is not in the actor's world.
        HostError: the host answered ``err``.
    """
    module = binding(interface)
    try:
        return getattr(module, function)(*args)
    except Err as err:
        name = f"{interface.replace('_', '-')}.{function.replace('_', '-')}"
        raise HostError(name, str(err.value)) from None


def as_bytes(value: bytes | bytearray | memoryview | str, what: str = "a message") -> bytes:
    """Bytes from bytes-like or ``str`` (UTF-8).

    Raises:
        TypeError: anything else.
    """
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    raise TypeError(f"{what} must be bytes or str, got {type(value).__name__}")
