"""Identifiers every layer checks before they touch a path or a key: content digests and upload ids.

A digest is `<algorithm>:<encoded>` (OCI image-spec, descriptor.md). pier supports the two algorithms the
spec registers: sha256, the canonical one, and sha512; their encoded part is lowercase hex of a fixed
length. Everything that names a blob or a manifest by digest accepts either, and a digest keeps its
algorithm everywhere: a blob pushed as sha512 is stored, listed and served under its sha512 digest.
Upload ids are the lowercase UUIDs pier hands out.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import Any

CANONICAL = "sha256"
ALGORITHMS: dict[str, int] = {"sha256": 64, "sha512": 128}  # algorithm -> hex digits of its encoded part
MAX_LENGTH = max(len(name) + 1 + digits for name, digits in ALGORITHMS.items())  # 135, for sha512
# What an upload whose algorithm is not known yet is hashed in, as its bytes arrive. Only the canonical
# one: hashing in sha512 too cost a PATCH-streamed push (docker's way) ~2.5 CPU s per GiB and ~40% of
# its throughput here, for every push, while a sha512 upload the client did not declare (spec: it SHOULD
# send digest-algorithm) is simply read once more when its digest arrives.
WHILE_UNKNOWN: tuple[str, ...] = (CANONICAL,)
SUPPORTED = " or ".join(f"{name}:<{digits} lowercase hex digits>" for name, digits in ALGORITHMS.items())

_VALID = re.compile("|".join(f"{name}:[0-9a-f]{{{digits}}}" for name, digits in ALGORITHMS.items()))
# The grammar of any digest (image-spec): what tells "an algorithm pier lacks" from "not a digest at all".
_ANY = re.compile(r"([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)")
UPLOAD_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def is_digest(value: str) -> bool:
    """A digest pier supports: sha256:<64 lowercase hex> or sha512:<128 lowercase hex>."""
    return _VALID.fullmatch(value) is not None


def problem(value: str) -> str | None:
    """Why pier refuses a digest, a sentence for the client that names what it supports; None if it does not."""
    if is_digest(value):
        return None
    shown = value if len(value) <= 160 else value[:160] + "..."
    match = _ANY.fullmatch(value)
    if match is None:
        return f"'{shown}' is not a digest (<algorithm>:<encoded>); pier supports {SUPPORTED}"
    algorithm = match[1]
    if algorithm not in ALGORITHMS:
        return f"The digest algorithm '{algorithm}' is not supported; pier supports {SUPPORTED}"
    return f"'{shown}' is not a valid {algorithm} digest; pier supports {SUPPORTED}"


def is_algorithm(name: str) -> bool:
    return name in ALGORITHMS


def algorithm_problem(name: str) -> str | None:
    if is_algorithm(name):
        return None
    shown = name if len(name) <= 40 else name[:40] + "..."
    return f"The digest algorithm '{shown}' is not supported; pier supports {', '.join(ALGORITHMS)}"


def algorithm_of(digest: str) -> str:
    """The algorithm of a digest pier supports (callers check it first)."""
    return digest.split(":", 1)[0]


def encoded(digest: str) -> str:
    """The hex part of a digest pier supports."""
    return digest.split(":", 1)[1]


def of(data: bytes, algorithm: str = CANONICAL) -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


class Hashes:
    """Running hashes of the same bytes in one or more algorithms."""

    def __init__(self, algorithms: Iterable[str]) -> None:
        self._hashes: dict[str, Any] = {name: hashlib.new(name) for name in algorithms}

    def update(self, data: bytes) -> None:
        for running in self._hashes.values():
            running.update(data)

    def covers(self, algorithm: str) -> bool:
        return algorithm in self._hashes

    def digest(self, algorithm: str) -> str:
        """The digest so far in `algorithm` (one these hashes cover)."""
        return f"{algorithm}:{self._hashes[algorithm].hexdigest()}"

    def keep_only(self, algorithm: str) -> None:
        """Hash in `algorithm` alone from now on (the upload's digest will be one of those)."""
        self._hashes = {name: running for name, running in self._hashes.items() if name == algorithm}


def is_upload_id(upload_id: str) -> bool:
    return UPLOAD_ID.fullmatch(upload_id) is not None
