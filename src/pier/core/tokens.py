"""Signed, expiring tokens: verified with a key, never looked up.

A token is ``<payload>.<key id>.<signature>``: the payload is base64url JSON, the signature an
HMAC-SHA256 over the first two parts. The alphabet is base64url plus '.', so a token is safe in a URL,
in a header and after 'AWS:' in a Docker password (awscli splits that on the first ':').
Keys live in the metadata store so every pier process sharing it accepts the same tokens; adding a
key rotates (new tokens use it, old ones still verify until they expire).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import secrets
import time
from collections.abc import Callable
from typing import Any

from pier.core.reads import drop_oldest
from pier.storage.metadata import MetadataStore, SigningKey


class InvalidToken(Exception):
    """Malformed, tampered with, signed by an unknown key, or expired."""


# How often a process looks for keys another process (or `pier rotate-key`) added or revoked.
RELOAD_SECONDS = 60
FRESH_SECONDS = 1.0  # how recent a read of the keys must be for a MAC no known key matches to be refused
VERIFIED_MAX = 4096  # tokens whose verification is remembered, per process


class TokenSigner:
    def __init__(self, store: MetadataStore, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock
        self._verified: dict[tuple[str, str], tuple[str, Any, dict[str, Any]]] = {}
        if not store.signing_keys():
            self._store.add_signing_key(self._new_key())
        self._reload()

    def _new_key(self) -> SigningKey:
        return SigningKey(secrets.token_hex(8), secrets.token_bytes(32), self._clock())

    def _reload(self) -> None:
        keys = self._store.signing_keys()
        self._keys = {key.key_id: key.secret for key in keys}
        self._current = keys[0]
        self._loaded_at = self._clock()

    def rotate(self, revoke_others: bool = False) -> str:
        """Start signing with a fresh key; returns its id. Tokens signed with older keys stay valid until
        they expire, unless revoke_others removes those keys (then they fail everywhere within a minute)."""
        key = self._new_key()
        self._store.add_signing_key(key)
        if revoke_others:
            self._store.remove_signing_keys_except(key.key_id)
        self._reload()
        return key.key_id

    def sign(self, purpose: str, claims: dict[str, Any], ttl: float | None) -> str:
        if self._clock() - self._loaded_at > RELOAD_SECONDS:
            self._reload()
        body = {"p": purpose, **claims}
        if ttl is not None:
            body["exp"] = math.ceil(self._clock() + ttl)  # rounded up: a token never lives less than its ttl
        payload = _b64(json.dumps(body, separators=(",", ":"), sort_keys=True).encode())
        signed = f"{payload}.{self._current.key_id}"
        return f"{signed}.{_b64(self._mac(self._current.secret, signed))}"

    def verify(self, purpose: str, token: str) -> dict[str, Any]:
        """The claims of a valid token signed for `purpose`; InvalidToken otherwise.

        A token verified before answers from memory (a client sends the same one with every request) while
        its key is still known and fresh and it has not expired: the same answer, without the HMAC."""
        remembered = self._verified.get((purpose, token))
        if remembered is not None:
            key_id, expires, claims = remembered
            if self._knows(key_id) and (expires is None or expires >= self._clock()):
                return dict(claims)
            del self._verified[(purpose, token)]
        claims = self._verify(purpose, token)
        if len(self._verified) >= VERIFIED_MAX:
            drop_oldest(self._verified)
        self._verified[(purpose, token)] = (token.split(".")[1], claims.get("exp"), dict(claims))
        return claims

    def _verify(self, purpose: str, token: str) -> dict[str, Any]:
        parts = token.split(".")
        if len(parts) != 3:
            raise InvalidToken("malformed")
        payload, key_id, signature = parts
        secret = self._key(key_id)
        expected = _b64(self._mac(secret, f"{payload}.{key_id}"))
        if not hmac.compare_digest(expected, signature):
            raise InvalidToken("bad signature")
        try:
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except ValueError as error:
            raise InvalidToken("malformed") from error
        if not isinstance(claims, dict) or claims.pop("p", None) != purpose:
            raise InvalidToken("wrong purpose")
        expires = claims.get("exp")
        if expires is not None and expires < self._clock():
            raise InvalidToken("expired")
        return claims

    def secrets(self, fresh: bool = False) -> list[bytes]:
        """The keys' secrets, the one that signs now first (for MACs that are not tokens: core/upload_ids.py).
        `fresh`: read again unless read in the last second (a key another process added since)."""
        if self._clock() - self._loaded_at > (FRESH_SECONDS if fresh else RELOAD_SECONDS):
            self._reload()
        current = self._current.secret
        return [current, *(secret for secret in self._keys.values() if secret != current)]

    def signs_from_memory(self) -> bool:
        """Whether sign() needs no database read (its keys are fresh): it may then run on the event loop."""
        return self._clock() - self._loaded_at <= RELOAD_SECONDS

    def answers_from_memory(self, token: str) -> bool:
        """Whether verify(token) needs no database read (its key is known and fresh): the case of nearly
        every request, which may then verify on the event loop instead of hopping to a thread."""
        parts = token.split(".")
        return len(parts) != 3 or self._knows(parts[1])

    def _knows(self, key_id: str) -> bool:
        """The key is in memory, and memory is recent enough to trust (a revocation elsewhere reaches us)."""
        return key_id in self._keys and self._clock() - self._loaded_at <= RELOAD_SECONDS

    def _key(self, key_id: str) -> bytes:
        if not self._knows(key_id):
            self._reload()  # a key added by another process, or one revoked since we looked
        if key_id not in self._keys:
            raise InvalidToken("unknown key")
        return self._keys[key_id]

    @staticmethod
    def _mac(secret: bytes, message: str) -> bytes:
        return hmac.new(secret, message.encode(), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
