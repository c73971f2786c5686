"""Project templates for Python actors, and ``create_project`` that renders one (``theater create``).

Each template directory holds ``*.tmpl`` files; ``{{name}}`` (the actor's name), ``{{class}}`` (its Python class
name) and ``{{package}}`` (its WIT package namespace and world name) are filled in. ``_common/`` is added to
every project. The ``theater:simple`` WIT package is vendored into ``wit/deps/theater-simple/``.

| template | the actor | granted |
|---|---|---|
| ``basic`` | a counter: one-way messages and a request | nothing (``runtime`` only) |
| ``request`` | a key-value store answering requests, some deferred | ``timing``, ``message-server`` |
| ``channels`` | accepts channels and answers on them | ``message-server`` |
| ``supervisor`` | starts workers and hears about their failures | ``supervisor`` |
| ``documents`` | keeps documents in the content-addressed store by name | ``store`` (its own store id only) |
| ``http-server`` | a small JSON API served with ``@route`` methods | ``http-framework`` |
| ``agent`` | asks a chat-completions model (a stand-in ships), serves ``/ask`` | ``http-client``, ``http-framework`` |
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from theater.build import package_wit
from theater.errors import BuildError

TEMPLATES = ("basic", "request", "channels", "supervisor", "documents", "http-server", "agent")
HERE = Path(__file__).resolve().parent
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_DESTINATIONS = {
    "app.py.tmpl": "app.py",
    "manifest.toml.tmpl": "manifest.toml",
    "worker.toml.tmpl": "worker.toml",
    "world.wit.tmpl": "wit/world.wit",
    "README.md.tmpl": "README.md",
    "test_app.py.tmpl": "tests/test_app.py",
    "stand_in.py.tmpl": "stand_in.py",
    "gitignore.tmpl": ".gitignore",
}


def identifiers(name: str) -> dict[str, str]:
    """The names a template needs, derived from the actor's name.

    Raises:
        BuildError: the name does not start with a letter or holds other characters than letters, digits, ``-``
            and ``_``.
    """
    if not _NAME.fullmatch(name):
        raise BuildError(name, "an actor name starts with a letter and holds only letters, digits, '-' and '_'")
    words = [w for w in re.split(r"[-_]+", name) if w]
    package = "-".join(w.lower() if w[0].isalpha() else f"n{w.lower()}" for w in words)
    cls = "".join(w[:1].upper() + w[1:] for w in words)
    return {"name": name, "class": cls if cls[0].isalpha() else f"Actor{cls}", "package": package}


def render(text: str, names: dict[str, str]) -> str:
    """Fill in ``{{key}}`` placeholders."""
    for key, value in names.items():
        text = text.replace("{{" + key + "}}", value)
    return text


def create_project(name: str, *, template: str = "basic", parent: Path | str = ".") -> Path:
    """Create the project directory ``parent/name`` from a template; returns its path.

    Raises:
        BuildError: unknown template, invalid name, or the directory exists and is not empty.
    """
    if template not in TEMPLATES:
        raise BuildError(template, f"unknown template; choose one of {', '.join(TEMPLATES)}")
    names = identifiers(name)
    root = Path(parent) / name
    if root.exists() and any(root.iterdir()):
        raise BuildError(str(root), "already exists and is not empty")
    for source in [*sorted((HERE / template).glob("*.tmpl")), *sorted((HERE / "_common").glob("*.tmpl"))]:
        target = root / _DESTINATIONS[source.name]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(render(source.read_text(), names))
    vendored = root / "wit" / "deps" / "theater-simple"
    vendored.mkdir(parents=True, exist_ok=True)
    for wit in sorted(package_wit().glob("*.wit")):
        shutil.copyfile(wit, vendored / wit.name)
    return root
