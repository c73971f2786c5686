"""The LMDB environment of a home: opening, named databases, read snapshots and automatic map growth.

Map growth needs every transaction of this process closed (LMDB does not check this itself), so read snapshots
pass a gate that a resize closes. Another process that grew the map is noticed as ``MapResizedError`` and adopted.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import lmdb

from store.errors import StoreClosedError, StoreFullError, StoreOpenError

DB_NAMES = ("meta", "blobs", "labels", "events", "event_index", "heads", "feed", "merkle", "search")
# Added after homes existed: a read-only open of a home no writer of this version opened yet goes without them.
OPTIONAL_DB_NAMES = ("merkle", "search")
STORE_MAGIC = b"theater-store"
STORE_FORMAT = b"1"
DEFAULT_MAP_SIZE = 1 << 30
MAX_MAP_SIZE = 1 << 44


class Environment:
    """One LMDB environment with Theater's named databases.

    Args:
        path: the directory holding ``data.mdb``; created when ``create`` is true.
        sync: fsync on every commit (durable against power loss) when true; OS-buffered otherwise
            (durable against a process crash, not against an OS crash or power loss).
        map_size: the initial map size; the map doubles whenever a write does not fit.
        readonly: open for reading only (another process may be writing).
    """

    def __init__(
        self,
        path: Path,
        *,
        sync: bool = True,
        map_size: int = DEFAULT_MAP_SIZE,
        readonly: bool = False,
        create: bool = True,
    ) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self._gate = threading.Condition(threading.Lock())
        self._readers = 0
        self._resizing = False
        self._closed = False
        self.env = self._open(sync=sync, map_size=map_size, create=create)
        try:
            self._check_foreign()
            self.dbs = {}
            for name in DB_NAMES:
                db = self._open_db(name)
                if db is not None:
                    self.dbs[name] = db
            self._check_magic()
        except BaseException:
            self.env.close()  # never leave a second handle on the same file open in this process
            raise

    def _open(self, *, sync: bool, map_size: int, create: bool) -> lmdb.Environment:
        if not self.path.exists() and not (create and not self.readonly):
            raise StoreOpenError(str(self.path), "no such directory (create it by opening the home for writing)")
        if self.path.exists() and not self.path.is_dir():
            raise StoreOpenError(str(self.path), "not a directory")
        _check_data_file(self.path / "data.mdb")
        try:
            return lmdb.open(
                str(self.path),
                map_size=map_size,
                max_dbs=len(DB_NAMES) + 1,
                sync=sync,
                metasync=sync,
                readonly=self.readonly,
                create=create and not self.readonly,
                max_readers=1024,
                max_spare_txns=16,
            )
        except lmdb.InvalidError:
            raise StoreOpenError(str(self.path), "data.mdb is not an LMDB file (corrupt or foreign)") from None
        except lmdb.Error as exc:
            raise StoreOpenError(str(self.path), _describe(exc)) from None

    def _check_foreign(self) -> None:
        """Refuse an LMDB environment that holds data but not Theater's databases (before creating any)."""
        with self.env.begin() as txn:
            names = set(txn.cursor().iternext(keys=True, values=False))
        if names and b"meta" not in names:
            raise StoreOpenError(str(self.path), "not a Theater store (an LMDB environment holding other data)")

    def _open_db(self, name: str) -> lmdb._Database | None:
        try:
            return self.env.open_db(name.encode(), create=not self.readonly)
        except lmdb.NotFoundError:
            if name in OPTIONAL_DB_NAMES:
                return None
            raise StoreOpenError(str(self.path), f"database {name!r} is missing: not a Theater store") from None
        except lmdb.Error as exc:
            raise StoreOpenError(str(self.path), f"database {name!r}: {_describe(exc)}") from None

    def _check_magic(self) -> None:
        meta = self.dbs["meta"]
        with self.read() as txn:
            magic = txn.get(b"magic", db=meta)
            fmt = txn.get(b"format", db=meta)
        if magic is None and not self.readonly:
            with self.env.begin(write=True) as txn:
                txn.put(b"magic", STORE_MAGIC, db=meta)
                txn.put(b"format", STORE_FORMAT, db=meta)
            return
        if magic != STORE_MAGIC:
            raise StoreOpenError(str(self.path), "not a Theater store (meta/magic is missing or wrong)")
        if fmt != STORE_FORMAT:
            raise StoreOpenError(str(self.path), f"store format {fmt!r} is not supported (this build reads 1)")

    @contextmanager
    def read(self) -> Iterator[lmdb.Transaction[bytes]]:
        """A consistent read snapshot; it never blocks writers."""
        self._enter()
        try:
            while True:
                try:
                    txn = self.env.begin(buffers=False)
                    break
                except lmdb.MapResizedError:
                    self._adopt_resize()
            try:
                yield txn
            finally:
                txn.abort()
        finally:
            self._leave()

    def _enter(self) -> None:
        with self._gate:
            while self._resizing:
                self._gate.wait()
            if self._closed:
                raise StoreClosedError()
            self._readers += 1

    def _leave(self) -> None:
        with self._gate:
            self._readers -= 1
            if self._readers == 0:
                self._gate.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Wait until no read snapshot of this process is open, and keep new ones out meanwhile."""
        with self._gate:
            while self._resizing:
                self._gate.wait()
            self._resizing = True
            while self._readers:
                self._gate.wait()
        try:
            yield
        finally:
            with self._gate:
                self._resizing = False
                self._gate.notify_all()

    def grow(self) -> None:
        """Double the map. Call only from the writer, with no write transaction open.

        Raises:
            StoreFullError: the map is already at its maximum size.
        """
        current = self.env.info()["map_size"]
        if current >= MAX_MAP_SIZE:
            raise StoreFullError(str(self.path), f"the map is at its maximum of {MAX_MAP_SIZE} bytes")
        with self.exclusive():
            self.env.set_mapsize(min(current * 2, MAX_MAP_SIZE))

    def _adopt_resize(self) -> None:
        self._leave()
        try:
            with self.exclusive():
                self.env.set_mapsize(0)
        finally:
            self._enter()

    def close(self) -> None:
        with self._gate:
            if self._closed:
                return
            self._closed = True
            while self._readers:
                self._gate.wait()
        self.env.close()


_META_MAGIC = 0xBEEFC0DE
_META_AT = 16  # after the page header


def _check_data_file(data: Path) -> None:
    """Refuse a data file shorter than its last committed transaction needs.

    LMDB maps the file and would die of SIGBUS reading past its end, so a truncated file must be caught before
    it is opened. Reads the two meta pages (magic, page size, last page, transaction id) and checks the size.

    Raises:
        StoreOpenError: the file is not an LMDB file, or is truncated.
    """
    try:
        size = data.stat().st_size
        with data.open("rb") as f:
            head = f.read(_META_AT + 160)
            if size < 2 * 4096 or len(head) < _META_AT + 160:
                raise StoreOpenError(str(data.parent), f"data.mdb is {size} bytes, too short for an LMDB file")
            psize = int.from_bytes(head[_META_AT + 24 : _META_AT + 28], "little")
            if psize not in (4096, 8192, 16384, 32768, 65536):
                raise StoreOpenError(str(data.parent), "data.mdb is not an LMDB file (corrupt or foreign)")
            f.seek(psize)
            metas = [head, f.read(_META_AT + 160)]
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StoreOpenError(str(data.parent), f"cannot read data.mdb: {exc.strerror}") from None
    best: tuple[int, int] | None = None
    for meta in metas:
        if int.from_bytes(meta[_META_AT : _META_AT + 4], "little") != _META_MAGIC:
            continue
        last_pg = int.from_bytes(meta[_META_AT + 120 : _META_AT + 128], "little")
        txnid = int.from_bytes(meta[_META_AT + 128 : _META_AT + 136], "little")
        if best is None or txnid > best[0]:
            best = (txnid, last_pg)
    if best is None:
        raise StoreOpenError(str(data.parent), "data.mdb is not an LMDB file (corrupt or foreign)")
    needed = (best[1] + 1) * psize
    if size < needed:
        raise StoreOpenError(
            str(data.parent), f"data.mdb is truncated: {size} bytes, its last transaction needs {needed} bytes"
        )


def _describe(exc: lmdb.Error) -> str:
    text = str(exc)
    if isinstance(exc, lmdb.CorruptedError):
        return f"the LMDB file is corrupted ({text})"
    if isinstance(exc, lmdb.VersionMismatchError):
        return f"the LMDB file was written by an incompatible LMDB version ({text})"
    if isinstance(exc, lmdb.ReadonlyError):
        return f"permission denied ({text})"
    return text


def is_disk_full(exc: BaseException) -> bool:
    """True when an LMDB or OS error means the disk (not the map) is full."""
    code = getattr(exc, "errno", None)
    if code in (errno.ENOSPC, errno.EDQUOT):
        return True
    return isinstance(exc, lmdb.Error) and os.strerror(errno.ENOSPC) in str(exc)
