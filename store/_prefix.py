"""Lookup of a 32-byte key by a unique hex prefix (as git does), over any database keyed by digests (or any
sorted list of them: ``pick_one`` is the rule every backend applies to its candidates)."""

from __future__ import annotations

import string
from collections.abc import Callable

import lmdb

from store.errors import AmbiguousPrefixError, InvalidInputError, NotFoundError

_HEX = frozenset(string.hexdigits)


def parse_hex_prefix(text: str, kind: str) -> tuple[bytes, str]:
    """Validate ``text``; return (the whole bytes of the even-length part, the normalised lowercase text).

    Raises:
        InvalidInputError: not hex, shorter than 4 digits, or longer than 64.
    """
    if not isinstance(text, str) or not text or not set(text) <= _HEX:
        raise InvalidInputError(f"{kind} hash", text, "hexadecimal digits")
    if not 4 <= len(text) <= 64:
        raise InvalidInputError(f"{kind} hash", text, "between 4 and 64 hex digits")
    text = text.lower()
    return bytes.fromhex(text[: len(text) // 2 * 2]), text


def resolve_prefix(
    txn: lmdb.Transaction[bytes],
    db: lmdb._Database,
    text: str,
    kind: str,
    extra: Callable[[bytes], list[bytes]] | None = None,
) -> bytes:
    """Return the one key of ``db`` whose hex form starts with ``text``.

    ``extra(start)`` gives more candidate keys starting with the bytes ``start``, kept outside ``db`` (the hash
    index's tail).

    Raises:
        InvalidInputError: ``text`` is not a hex prefix.
        NotFoundError: no key starts with it.
        AmbiguousPrefixError: more than one key starts with it.
    """
    start, text = parse_hex_prefix(text, kind)
    cursor = txn.cursor(db=db)
    matches: list[str] = []
    if cursor.set_range(start):
        for key in cursor.iternext(keys=True, values=False):
            hexkey = bytes(key).hex()
            if not hexkey.startswith(text[: len(start) * 2]):
                break
            if hexkey.startswith(text):
                matches.append(hexkey)
                if len(matches) > 4:
                    break
    if extra is not None:
        more = {key.hex() for key in extra(start)}
        matches = sorted(set(matches) | {key for key in more if key.startswith(text)})
    return pick_one(kind, text, matches)


def pick_one(kind: str, text: str, matches: list[str]) -> bytes:
    """The one match (hex, sorted) of a normalised prefix ``text``.

    Raises:
        NotFoundError: none. AmbiguousPrefixError: more than one (the first five are named).
    """
    if not matches:
        raise NotFoundError(kind, text)
    if len(matches) > 1:
        raise AmbiguousPrefixError(kind, text, matches[:5])
    return bytes.fromhex(matches[0])
