"""A Theater home's store: one LMDB environment holding the blob store and the event logs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from store._commit import Pending, ReadOnlyWriter, Writer
from store._env import DEFAULT_MAP_SIZE, Environment
from store.artifacts import ARTIFACT_DIR, ArtifactCache
from store.audit import Audit
from store.blobs import BlobStore
from store.chain import EventLog
from store.codec import DEFAULT_SPILL_THRESHOLD
from store.errors import InvalidInputError, ReadOnlyError, StoreOpenError

DURABILITY_MODES = ("sync", "buffered")


class Store:
    """The storage of one Theater home.

    ``blobs`` holds the content-addressed blobs and labels, ``log`` the event logs (both in LMDB), ``artifacts`` the
    compiled components sealed with the home's key (files in ``<path>/compiled``, out of reach of every label).

    Args:
        path: the store directory (``<home>/store``); created if missing unless ``readonly``.
        durability: ``"sync"`` (default) fsyncs every group commit, so an acknowledged append survives power loss;
            ``"buffered"`` leaves flushing to the OS: faster, and still safe against a crash of the process, but
            the last commits can be lost if the machine itself goes down.
        map_size: initial LMDB map size; it doubles automatically whenever a write does not fit.
        readonly: read only, for example the CLI reading while a server writes; it sees consistent snapshots.
        spill_threshold: byte strings in event data longer than this go to the blob store.

    Raises:
        StoreOpenError: the path is not a Theater store, is corrupted, or cannot be opened.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        durability: str = "sync",
        map_size: int = DEFAULT_MAP_SIZE,
        readonly: bool = False,
        spill_threshold: int = DEFAULT_SPILL_THRESHOLD,
    ) -> None:
        if durability not in DURABILITY_MODES:
            raise InvalidInputError("durability", durability, " or ".join(DURABILITY_MODES))
        self.path = Path(path)
        if not readonly and not self.path.exists():
            try:
                self.path.mkdir(parents=True)
            except OSError as exc:
                raise StoreOpenError(str(self.path), f"cannot create the directory: {exc.strerror}") from None
        self.env = Environment(self.path, sync=durability == "sync", map_size=map_size, readonly=readonly)
        self.readonly = readonly
        writer = ReadOnlyWriter(self.env) if readonly else Writer(self.env)
        self._writer: Writer | ReadOnlyWriter | None = writer
        self._submit = writer.submit_many
        self.blobs = BlobStore(self.env, writer)
        self.log = EventLog(self.env, writer, self.blobs, spill_threshold=spill_threshold)
        self.artifacts = ArtifactCache(self.path / ARTIFACT_DIR, readonly=readonly)
        self.audit = Audit(self.env, writer, self.log)  # the Merkle log's key, checkpoints and proofs

    def submit(self, writes: list[Pending[Any]], *, hold: bool = False) -> None:
        """Hand writes prepared by ``log.prepare`` and ``blobs.prepare`` to the writer together, in order: they are
        committed in one batch (unless they outgrow one), so holding an operation's writes and submitting them at
        its end costs one commit, not one per write. A closed store fails them (``wait`` raises
        ``StoreClosedError``).

        With ``hold``, the caller commits them itself next (``lead``, before it waits for anything): an idle
        writer thread is not woken for them.

        Raises:
            ReadOnlyError: the store is open read-only.
        """
        self._submit(writes, hold=hold)

    def lead(self) -> bool:
        """Commit the writes handed over so far on this thread if the store's writer thread is idle (a thread about
        to wait for its writes saves the hand-off to the writer and back; see ``store._commit.Writer.lead``); True
        when it did. Does nothing while the writer is at work, or on a read-only store.

        Call it holding no lock that a settle listener's effects may take: they run on this thread.
        """
        writer = self._writer
        return isinstance(writer, Writer) and writer.lead()

    def add_commit_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` after every commit (on the thread that ran it, the writer's or a leader's (``lead``):
        keep it short, e.g. set an event).

        Subscribers use it to read the feed from where they stopped instead of polling.

        Raises:
            ReadOnlyError: the store is open read-only (it commits nothing).
        """
        if not isinstance(self._writer, Writer):
            raise ReadOnlyError(str(self.path))
        self._writer.listeners.append(listener)

    def add_settle_listener(self, listener: Callable[[bool], None]) -> None:
        """Call ``listener(on_writer)`` whenever writes have finished: committed, failed, or refused by a closing store.

        ``on_writer`` is True on the thread that committed them, right after the batch (before the commit
        listeners): the writer thread, or a thread that committed its own writes (``lead``); it holds no lock of
        the caller's, but must never wait on the store, so keep it short (the runtime's releaser
        settles its futures there). It is False on a thread that finished writes itself (a closing store refused
        them, a replicated store failed them): that thread may hold locks of its own, so only wake someone.

        Raises:
            ReadOnlyError: the store is open read-only (it commits nothing).
        """
        if not isinstance(self._writer, Writer):
            raise ReadOnlyError(str(self.path))
        self._writer.settle_listeners.append(listener)

    def add_commit_timing(self, observer: Callable[[float, int], None]) -> None:
        """Call ``observer(seconds, writes)`` after every commit of writes: how long the batch took to commit
        (from the writer taking it to durable) and how many writes it held. On the thread that committed it (the
        writer's, or a leader's): keep it short.

        Raises:
            ReadOnlyError: the store is open read-only (it commits nothing).
        """
        if not isinstance(self._writer, Writer):
            raise ReadOnlyError(str(self.path))
        self._writer.timings.append(observer)

    def close(self) -> None:
        """Commit what is queued and close the environment. Safe to call twice."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self.env.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
