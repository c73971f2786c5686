"""Compiled artifacts of components, kept where only the engine writes and sealed with this home's key.

A compiled artifact is native code: loading one means running whatever it says. So artifacts never live in the
blob store or under a label (both are reachable by API clients), but in ``<store>/compiled/`` as
``<name>.bin`` files, each ending in a seal: a keyed blake3 over its name and bytes, made with the home's secret
key ``<store>/compiled/key`` (32 random bytes, mode 0600, created on first use). ``get`` hands back an artifact
only when its seal checks out, so an artifact this home did not write itself is never returned.

The cache holds bytes only; what the names mean (component hash, wasmtime version, engine settings) and how the
bytes are compiled or loaded is the engine's business (``replay.engine``). The directory is a cache: deleting it
costs a compilation per component, nothing else.
"""

from __future__ import annotations

import hmac
import os
import re
import secrets
import tempfile
import threading
from pathlib import Path

import blake3

from store.errors import ArtifactRejected, InvalidInputError, StoreWriteError

ARTIFACT_DIR = "compiled"
KEY_FILE = "key"
KEY_SIZE = 32
SEAL_MAGIC = b"theater-artifact-seal/1\n"
SEAL_SIZE = len(SEAL_MAGIC) + 32
_MAC_DOMAIN = b"theater compiled artifact/1\0"
_NAME = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]{0,199}")
_PARALLEL_MAC_FROM = 1 << 20


def check_name(name: str) -> str:
    """Return ``name`` if it can name an artifact file (letters, digits, ``._-``; at most 200 characters).

    Raises:
        InvalidInputError: anything else (a path separator, a leading dot, an empty name).
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidInputError("artifact name", name, "letters, digits and '._-', not starting with '.' or '-'")
    return name


class ArtifactCache:
    """The sealed compiled artifacts of one home.

    Args:
        directory: where the artifacts and the key live (``<store>/compiled``); created on the first ``put``.
        readonly: never create the directory or the key, never write (``put`` does nothing).
    """

    def __init__(self, directory: Path, *, readonly: bool = False) -> None:
        self.directory = Path(directory)
        self.readonly = readonly
        self._key: bytes | None = None
        self._lock = threading.Lock()

    def path(self, name: str) -> Path:
        """The file that holds artifact ``name``."""
        return self.directory / f"{check_name(name)}.bin"

    def get(self, name: str) -> bytes | None:
        """The artifact's bytes, when it is there and sealed by this home's key; None when there is none.

        Raises:
            ArtifactRejected: a file is there but its seal is missing or wrong (it was not written by this home's
                engine for this name, or it was damaged): the caller must not load it, and should compile instead.
        """
        path = self.path(name)
        try:
            with path.open("rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size < SEAL_SIZE:
                    raise ArtifactRejected(str(path), "it is too short to carry a seal")
                artifact = f.read(size - SEAL_SIZE)
                seal = f.read(SEAL_SIZE)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ArtifactRejected(str(path), f"it cannot be read ({exc.strerror})") from None
        if len(artifact) + len(seal) != size or not seal.startswith(SEAL_MAGIC):
            raise ArtifactRejected(str(path), "it carries no seal")
        key = self._read_key()
        if key is None or not hmac.compare_digest(seal[len(SEAL_MAGIC):], _mac(key, name, artifact)):
            raise ArtifactRejected(str(path), "its seal was not made with this home's key")
        return artifact

    def put(self, name: str, artifact: bytes | bytearray) -> None:
        """Seal ``artifact`` with the home's key and keep it as ``name`` (replacing what was there), atomically.

        Does nothing on a read-only cache.

        Raises:
            StoreWriteError: the file or the key cannot be written (a full disk, permissions).
        """
        path = self.path(name)
        if self.readonly:
            return
        try:
            key = self._key_for_writing()
            seal = SEAL_MAGIC + _mac(key, name, artifact)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=self.directory)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(artifact)
                    f.write(seal)
                os.replace(tmp, path)
            except BaseException:
                os.unlink(tmp)
                raise
        except OSError as exc:
            reason = f"cannot keep a compiled artifact: {exc.strerror or exc}"
            raise StoreWriteError(str(self.directory), reason) from None

    def _read_key(self) -> bytes | None:
        """The home's key, or None when the home has none (yet) or it is unreadable: then no artifact is valid."""
        with self._lock:
            if self._key is None:
                try:
                    key = (self.directory / KEY_FILE).read_bytes()
                except OSError:
                    return None
                if len(key) != KEY_SIZE:
                    return None  # a damaged key seals nothing; the next ``put`` replaces it
                self._key = key
            return self._key

    def _key_for_writing(self) -> bytes:
        """The home's key, created when missing.

        Raises:
            OSError: it cannot be created.
        """
        key = self._read_key()
        if key is None:
            with self._lock:
                _create_key(self.directory)
            key = self._read_key()
        if key is None:
            raise OSError(0, "the artifact key cannot be read back")
        return key


def _create_key(directory: Path) -> None:
    """Write a new random key to ``directory/key`` (mode 0600), atomically and at most once among processes.

    The key is written to a temporary file and linked into place: a reader never sees half a key, and when
    another process got there first its key stays (unless it is damaged, then it is replaced).
    """
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    target = directory / KEY_FILE
    fd, tmp = tempfile.mkstemp(prefix=".key-", dir=directory)  # mkstemp creates the file with mode 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(KEY_SIZE))
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, target)
        except FileExistsError:
            if target.stat().st_size != KEY_SIZE:
                os.replace(tmp, target)
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass


def _mac(key: bytes, name: str, artifact: bytes | bytearray) -> bytes:
    """The keyed blake3 of an artifact and the name it is kept under."""
    threads = blake3.blake3.AUTO if len(artifact) >= _PARALLEL_MAC_FROM else 1
    mac = blake3.blake3(_MAC_DOMAIN + name.encode() + b"\0", key=key, max_threads=threads)
    mac.update(artifact)
    return mac.digest()


__all__ = ["ARTIFACT_DIR", "ArtifactCache", "check_name"]
