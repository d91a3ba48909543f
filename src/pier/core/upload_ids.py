"""Upload ids that prove which repository they were issued for, so that starting an upload writes nothing.

Starting an upload (a /v2/ POST, InitiateLayerUpload) used to insert its row: a write transaction and a
turn at SQLite's one writer for a request that stores no byte. Now the row is written with the upload's
first acknowledged bytes (core/uploads.py), and until then the id itself is the upload's whole state. It is
still a UUID (the form clients, file names and S3 keys expect), made of

    6 bytes: random, but the first bit, set when the client declared sha512 (digest-algorithm)
    | 4 bytes: when it was issued (seconds) | 6 bytes: HMAC-SHA256 of the above and the repository's
    id, under the token signing key (core/tokens.py)

so an id made up by a client, or issued for another repository, or older than the upload expiry is not an
upload (BLOB_UPLOAD_UNKNOWN, UploadNotFoundException), and nor is one that finished or was cancelled: its
row stays, marked ended, until the id expires. Rotating the signing key with revocation (`pier rotate-key
--revoke-others`) ends the ids not yet written to, like the tokens; a client then starts its upload again.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
import uuid

from pier.core.tokens import TokenSigner

_NONCE = 6
_SHA512_BIT = 0x80
_MAC = 6


def issue(signer: TokenSigner, repository_id: int, now: float, algorithm: str | None = None) -> str:
    nonce = bytearray(os.urandom(_NONCE))
    nonce[0] = (nonce[0] & 0x7F) | (_SHA512_BIT if algorithm == "sha512" else 0)
    head = bytes(nonce) + struct.pack(">I", int(now) & 0xFFFFFFFF)
    return str(uuid.UUID(bytes=head + _mac(signer.secrets()[0], head, repository_id)))


def issued_at(signer: TokenSigner, upload_id: str, repository_id: int) -> float | None:
    """When `upload_id` was issued for the repository, or None if it was not issued for it (by any key)."""
    raw = _raw(upload_id)
    if raw is None:
        return None
    head, mac = raw[: _NONCE + 4], raw[_NONCE + 4 :]
    if _signed(signer.secrets(), head, repository_id, mac) or _signed(signer.secrets(True), head, repository_id, mac):
        return float(struct.unpack(">I", head[_NONCE:])[0])
    return None  # (the second look reads the keys again: another process may sign with a newer one)


def may_be_written(upload_id: str, now: float, expiry: float) -> bool:
    """Whether an upload with no row may still get its first bytes under this id, by the time it says it
    was issued (unverified: a random id from before these ids says a random time, usually not a recent
    one). GC leaves the bytes of such an upload alone; the expiry sweep removes them once it has expired."""
    raw = _raw(upload_id)
    if raw is None:
        return False
    issued: int = struct.unpack(">I", raw[_NONCE : _NONCE + 4])[0]
    return now - expiry - 1 <= issued <= now + 60


def declared_algorithm(upload_id: str) -> str | None:
    """The algorithm the client declared when it started the upload, if it declared sha512 (unverified:
    it only chooses the hash the bytes are computed in as they come)."""
    raw = _raw(upload_id)
    return "sha512" if raw is not None and raw[0] & _SHA512_BIT else None


def _raw(upload_id: str) -> bytes | None:
    try:
        parsed = uuid.UUID(upload_id)
    except ValueError:
        return None
    return parsed.bytes if str(parsed) == upload_id else None  # the one form pier hands out


def _signed(secrets: list[bytes], head: bytes, repository_id: int, mac: bytes) -> bool:
    return any(hmac.compare_digest(_mac(secret, head, repository_id), mac) for secret in secrets)


def _mac(secret: bytes, head: bytes, repository_id: int) -> bytes:
    message = b"pier upload id\0" + head + struct.pack(">q", repository_id)
    return hmac.new(secret, message, hashlib.sha256).digest()[:_MAC]
