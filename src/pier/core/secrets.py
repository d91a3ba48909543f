"""Users' secret access keys at rest: kept so SigV4 can be verified, sealed when PIER_SECRETS_KEY is set.

SigV4 signs with the secret itself, so pier must keep it readable (a hash would not do). Stored forms:
    plain:<secret>                        no PIER_SECRETS_KEY (the database file is mode 0600 either way)
    aes256gcm:<base64url(nonce|sealed)>   AES-256-GCM under PIER_SECRETS_KEY, with the access key id as
                                          associated data (a sealed secret moved to another key's row
                                          does not open)
PIER_SECRETS_KEY is 32 random bytes in base64 (`openssl rand -base64 32`). Rows stored without it stay
readable after it is set; a sealed row cannot be read without it (that key then fails to authenticate).
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PLAIN = "plain:"
SEALED = "aes256gcm:"
NONCE_BYTES = 12


class SecretUnreadable(Exception):
    """A stored secret that cannot be opened here (sealed under another key, or no key is set)."""


def parse_key(text: str) -> bytes:
    """The 32-byte key PIER_SECRETS_KEY holds (base64, standard or URL-safe); ValueError otherwise."""
    cleaned = text.strip()
    try:
        key = base64.b64decode(cleaned.replace("-", "+").replace("_", "/") + "=" * (-len(cleaned) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("PIER_SECRETS_KEY must be base64 (e.g. from `openssl rand -base64 32`)") from None
    if len(key) != 32:
        raise ValueError(f"PIER_SECRETS_KEY must hold 32 bytes (it holds {len(key)}): `openssl rand -base64 32`")
    return key


class SecretBox:
    def __init__(self, key: bytes | None) -> None:
        self._aead = AESGCM(key) if key else None

    @property
    def seals(self) -> bool:
        return self._aead is not None

    def seal(self, secret: str, access_key_id: str) -> str:
        if self._aead is None:
            return PLAIN + secret
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, secret.encode(), access_key_id.encode())
        return SEALED + base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, stored: str, access_key_id: str) -> str:
        if stored.startswith(PLAIN):
            return stored[len(PLAIN) :]
        if not stored.startswith(SEALED):
            raise SecretUnreadable("unknown form")
        if self._aead is None:
            raise SecretUnreadable("sealed, and PIER_SECRETS_KEY is not set")
        try:
            data = base64.urlsafe_b64decode(stored[len(SEALED) :])
            return self._aead.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], access_key_id.encode()).decode()
        except (InvalidTag, ValueError, binascii.Error):
            raise SecretUnreadable("sealed under another PIER_SECRETS_KEY") from None
