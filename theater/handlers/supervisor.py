"""Handler ``supervisor``: an actor spawns, resumes, stops, restarts and inspects its own children.

Host functions run on the parent's thread. Starting a child runs its instance and ``init`` in place, inside the
parent's host call (``Actor.start_here_queued``; a start nested deeper than ``runtime.MAX_IN_PLACE_DEPTH`` goes to
a worker while the parent waits): ``spawn`` answers ``ok`` only once the child's ``init`` succeeded, and ``err``
(recorded) when it failed. The child's events are handed to the writer without waiting for their commit; the
parent's record of the spawn depends on them (docs/design.md). Everything a child later tells its parent goes
through the parent's mailbox (``theater.supervision``). A function given an id that is not one of the caller's
children answers ``err``.

The ``manifest`` argument of ``spawn`` and ``resume`` is one of:

* TOML text (it contains a newline);
* ``store:LABEL`` or a 64-hex-digit blake3 hash: the TOML is a blob in the store;
* a path to a manifest file, relative to the parent's manifest directory.

The guest chose every byte of it, so the manifest never makes the host open a file by a name the guest chose
(``theater.files``): when the tree was started by the operator from a manifest file on disk, a path (the argument
itself, the component's, an ``init_state`` file's) may name a regular file inside that file's directory, relative,
without ``..``, not leading out through a symlink, within the runtime's size maximums; when it was started on a
server with its project uploaded (``theater start``), a path may name one of the uploaded files (the same rules,
read from the blob store, never from the server's disk); otherwise no path is accepted and the component comes by
hash or ``store:LABEL``, the state inline or as ``init-bytes``. Errors returned to the guest never quote a file's
content.

A child's handlers must be a subset of its parent's, each handler's config within its parent's (paths inside paths,
variables, programs, store ids, limits no larger) and its limits within its parent's
(``theater.handlers.check_permissions``, which supervision is given).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from replay.derived import Derived, chain_result
from store.errors import NotFoundError, TheaterError
from theater.errors import ManifestError
from theater.files import FileAccess
from theater.handlers._base import Handler
from theater.manifest import Manifest, ManifestCache, load_manifest

_HASH = re.compile(r"[0-9a-fA-F]{64}")
_LABEL_PREFIX = "store:"


class SupervisorHandler(Handler):
    """The ``supervisor`` interface."""

    type = "supervisor"
    interface = "theater:simple/supervisor"
    # The manifests this instance's spawns parsed, by text (a loop spawning one manifest parses it once); small,
    # since a guest chooses them.
    _manifests: ManifestCache | None = None
    _files: FileAccess | None = None  # the access of its children's manifests, made on its first spawn

    def functions(self) -> dict[str, Callable[..., Any]]:
        return {
            "spawn": self.spawn,
            "resume": self.resume,
            "list-children": self.list_children,
            "stop-child": self.stop_child,
            "restart-child": self.restart_child,
            "get-child-state": self.get_child_state,
            "get-child-events": self.get_child_events,
        }

    def spawn(self, manifest: str, init_bytes: dict[str, Any] | None) -> dict[str, Any]:
        state = None if init_bytes is None else init_bytes["some"]
        return self._start(manifest, state, call_init=True)

    def resume(self, manifest: str, init_state: dict[str, Any] | None) -> dict[str, Any]:
        state = None if init_state is None else init_state["some"]
        return self._start(manifest, state, call_init=False)

    def _start(self, text: str, state: bytes | None, *, call_init: bool) -> dict[str, Any]:
        try:
            manifest = self._manifest(text)
            child = self.actor.children.spawn(manifest, init_state=state, call_init=call_init)
        except TheaterError as exc:
            return {"err": str(exc)}
        return {"ok": str(child)}

    def _manifest(self, text: str) -> Manifest:
        if self._files is None or self._manifests is None:
            self._files = self.actor.manifest.files.for_child(f"actor {self.actor.id}")
            self._manifests = ManifestCache(capacity=16, max_bytes=256 * 1024)
        files, cache, maximums = self._files, self._manifests, self.actor.maximums
        if _HASH.fullmatch(text) or text.startswith(_LABEL_PREFIX):
            return cache.parse(self._stored(text), source=text, files=files, maximums=maximums)
        if "\n" in text:
            source = f"<inline, spawned by {self.actor.id}>"
            return cache.parse(text, source=source, files=files, maximums=maximums)
        return load_manifest(text, files=files, maximums=maximums, cache=cache)

    def _stored(self, ref: str) -> str:
        blobs = self.actor.store.blobs
        try:
            if ref.startswith(_LABEL_PREFIX):
                digest = blobs.get_label(ref.removeprefix(_LABEL_PREFIX))
            else:
                digest = bytes.fromhex(ref)
            if blobs.size(digest) > self.actor.maximums.manifest_file_bytes:
                raise ManifestError(ref, "", "the blob is larger than the maximum size of a manifest")
            data = blobs.get(digest)
        except NotFoundError as exc:
            raise ManifestError(ref, "", f"no such manifest in the store ({exc})") from None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise ManifestError(ref, "", "the blob is not a UTF-8 manifest") from None

    def list_children(self) -> list[str]:
        return [str(c) for c in self.actor.children.ids()]

    def stop_child(self, child_id: str) -> dict[str, Any]:
        return self._unit(lambda: self.actor.children.stop(child_id, "requested by the parent"))

    def restart_child(self, child_id: str) -> dict[str, Any]:
        return self._unit(lambda: self.actor.children.restart(child_id))

    def _unit(self, op: Callable[[], None]) -> dict[str, Any]:
        try:
            op()
        except TheaterError as exc:
            return {"err": str(exc)}
        return {"ok": None}

    def get_child_state(self, child_id: str) -> dict[str, Any]:
        try:
            state = self.actor.children.get(child_id).state
        except TheaterError as exc:
            return {"err": str(exc)}
        return {"ok": None if state is None else {"some": state}}

    def get_child_events(self, child_id: str) -> Derived | dict[str, Any]:
        try:
            child = self.actor.children.get(child_id)
            remote = getattr(child, "chain_events", None)  # a child on another node (theater.cluster.remote)
            if remote is not None:
                events = remote()  # its chain up to its durable head, pulled into this home
            else:
                child.tape.wait_durable()  # what the child has recorded so far, committed
                events = self.actor.store.log.events(child.id)
        except TheaterError as exc:
            return {"err": str(exc)}
        # Recorded by reference to the child's head (replay.derived): the child's chain (here) holds the events.
        return chain_result(events, actor=child.id, ok=True)
