"""Bounds on upload bodies in flight, per account and per client address.

A body in flight costs little (a coroutine, a batch of memory) but not nothing, and a crowd of them from
one account or one address must not crowd out everyone else. Past a bound, a new upload body is refused
before it is read (429 / ThrottlingException with Retry-After); the client tries again shortly.

Counted per pier process, like the rate limits: with --workers N, each worker allows the bounds.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

RETRY_AFTER = 1  # seconds


class TooManyBodies(Exception):
    def __init__(self, whose: str, limit: int) -> None:
        super().__init__(f"{limit} upload bodies are already in flight for this {whose}; try again shortly")
        self.whose = whose
        self.limit = limit


class BodySlots:
    def __init__(self, per_account: int, per_client: int) -> None:
        self.per_account = per_account
        self.per_client = per_client
        self._accounts: Counter[str] = Counter()
        self._clients: Counter[str] = Counter()

    @contextmanager
    def hold(self, account: str | None, client: str) -> Iterator[None]:
        """A slot for one body while the block runs, or TooManyBodies at once. Event-loop only (no locks)."""
        if self._clients[client] >= self.per_client:
            raise TooManyBodies("client address", self.per_client)
        if account is not None and self._accounts[account] >= self.per_account:
            raise TooManyBodies("account", self.per_account)
        self._clients[client] += 1
        if account is not None:
            self._accounts[account] += 1
        try:
            yield
        finally:
            _decrement(self._clients, client)
            if account is not None:
                _decrement(self._accounts, account)

    def in_flight(self) -> int:
        return sum(self._clients.values())


def _decrement(counts: Counter[str], key: str) -> None:
    counts[key] -= 1
    if counts[key] <= 0:
        del counts[key]
