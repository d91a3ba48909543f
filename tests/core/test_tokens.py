"""Signed tokens: lifetimes, tampering, purposes, rotation (real SQLite store, a controlled clock)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pier.core.tokens import RELOAD_SECONDS, InvalidToken, TokenSigner
from pier.storage.sql import SqlMetadataStore


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def signer(tmp_path: Path, clock: Clock) -> TokenSigner:
    return TokenSigner(SqlMetadataStore.from_url(f"sqlite:///{tmp_path / 'tokens.db'}"), clock)


def test_a_token_lives_at_least_its_ttl(tmp_path: Path) -> None:
    clock = Clock(100.9)  # a fractional start once cut a 1-second token to 0.1 s
    tokens = signer(tmp_path, clock)
    token = tokens.sign("bearer", {"a": "x"}, ttl=1)
    clock.now = 101.89
    assert tokens.verify("bearer", token)["a"] == "x"
    clock.now = 102.01
    with pytest.raises(InvalidToken):
        tokens.verify("bearer", token)


def test_tampering_purpose_and_revocation(tmp_path: Path) -> None:
    clock = Clock(1000.0)
    tokens = signer(tmp_path, clock)
    token = tokens.sign("login", {"a": "123"}, ttl=60)
    payload, key_id, signature = token.split(".")
    with pytest.raises(InvalidToken):
        tokens.verify("login", f"{payload}x.{key_id}.{signature}")
    with pytest.raises(InvalidToken):
        tokens.verify("bearer", token)  # signed for another purpose
    tokens.rotate()
    assert tokens.verify("login", token)["a"] == "123"  # older keys still verify
    tokens.rotate(revoke_others=True)
    with pytest.raises(InvalidToken):
        tokens.verify("login", token)


def test_a_key_another_process_made_is_read_from_the_store_not_assumed(tmp_path: Path) -> None:
    # Requests verify on the event loop only when the key is known and fresh; a key rotated in by
    # another process (here, a second signer on the same database) sends them to the store first.
    clock = Clock(1000.0)
    ours, theirs = signer(tmp_path, clock), signer(tmp_path, clock)
    mine = ours.sign("bearer", {"a": "1"}, ttl=600)
    assert ours.answers_from_memory(mine)
    clock.now += 1  # the newest key signs: keys are ordered by when they were made
    theirs.rotate()
    new = theirs.sign("bearer", {"a": "2"}, ttl=600)
    assert not ours.answers_from_memory(new)
    assert ours.verify("bearer", new)["a"] == "2"  # read the new key from the store
    assert ours.answers_from_memory(new)
    clock.now += 61  # keys are re-read at least every minute (a revocation elsewhere must reach us)
    assert not ours.answers_from_memory(mine)


def test_a_remembered_verification_obeys_expiry_and_revocation_elsewhere(tmp_path: Path) -> None:
    # A token verified once is answered from memory (clients resend it with every request), but never
    # past its expiry, nor past RELOAD_SECONDS after another process revoked its key.
    clock = Clock(1000.0)
    ours, theirs = signer(tmp_path, clock), signer(tmp_path, clock)
    token = ours.sign("bearer", {"a": "1"}, ttl=30)
    assert ours.verify("bearer", token) == ours.verify("bearer", token)
    claims = ours.verify("bearer", token)
    claims["a"] = "changed by a caller"
    assert ours.verify("bearer", token)["a"] == "1"  # what is remembered is not the caller's copy
    with pytest.raises(InvalidToken):
        ours.verify("login", token)  # remembered for its purpose only
    clock.now += 1
    theirs.rotate(revoke_others=True)
    clock.now += RELOAD_SECONDS + 1
    with pytest.raises(InvalidToken):
        ours.verify("bearer", token)
    fresh = ours.sign("bearer", {"a": "2"}, ttl=5)
    assert ours.verify("bearer", fresh)["a"] == "2"
    clock.now += 6
    with pytest.raises(InvalidToken):
        ours.verify("bearer", fresh)
