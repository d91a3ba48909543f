"""IAM users inside an account: `arn:aws:iam::<account>:user/<name>`, each with access keys (at most two,
as in IAM) and an identity policy saying what it may do.

Users come from two places: the metadata database (`pier users ...`, so every pier process sharing it
sees them) and pier.toml ([[users]] for the default account, [[accounts.users]] for others), which the
CLI lists but does not change. A pier.toml user shadows a database user of the same name.

Directory is what a serving process knows of them: read whole into memory, then kept fresh by reading
one generation counter (which every change bumps) at most every RELOAD_SECONDS while signed requests
come in, and reading everything again when it moved. A key or user it does not know (one created a
moment ago) makes it look again at once, though no more often than every MISS_SECONDS. What it knows is
never used once older than MAX_AGE_SECONDS (the database not answering meanwhile): a user's request is
then answered 503, never with rights that may have been revoked. So a deleted key or user, or a changed
policy, holds in every process within MAX_AGE_SECONDS.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import string
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pier import errors
from pier.core import policies
from pier.core.accounts import Account, Accounts
from pier.core.principals import user_arn
from pier.core.secrets import SecretBox, SecretUnreadable
from pier.storage.metadata import AccessKeyRow, Conflict, MetadataStore, UserRow, UserRows

log = logging.getLogger("pier.users")

USER_NAME = re.compile(r"[A-Za-z0-9_+=,.@-]{1,64}")  # IAM's user names
KEYS_PER_USER = 2  # IAM's quota
RELOAD_SECONDS = 2.0
MISS_SECONDS = 0.25  # an unknown key looks again no sooner: random key ids cannot flood the database
MAX_AGE_SECONDS = 10.0  # the revocation bound the README states
_KEY_ALPHABET = string.ascii_uppercase + string.digits


@dataclass(frozen=True)
class User:
    account_id: str
    name: str
    user_id: str
    policy_text: str | None
    key_ids: tuple[str, ...] = ()
    declared: bool = False  # in pier.toml (the CLI does not change it)
    created_at: float | None = None

    @property
    def arn(self) -> str:
        return user_arn(self.account_id, self.name)

    @property
    def policy(self) -> policies.Policy | None:
        return policies.parse(self.policy_text)


@dataclass(frozen=True)
class DeclaredUser:
    """A user pier.toml declares. The secret is None where its environment variable is not set (the CLI
    lists such users; `pier serve` refuses to start without it)."""

    account_id: str
    name: str
    access_key_id: str
    secret_access_key: str | None = field(repr=False)
    policy_text: str | None


@dataclass(frozen=True)
class Credential:
    """An access key SigV4 can verify, and whose it is."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    account: Account
    user: User | None = None  # None: the account's root key
    session_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class NewKey:
    access_key_id: str
    secret_access_key: str = field(repr=False)


def declared_user_id(account_id: str, name: str) -> str:
    """A pier.toml user's id: stable across restarts and processes, as it has no row to keep one in."""
    return "AIDP" + hashlib.sha256(f"{account_id}:{name}".encode()).hexdigest()[:17].upper()


class Directory:
    """Users and keys as one serving process knows them (see the module's notes on freshness)."""

    def __init__(
        self,
        store: MetadataStore,
        accounts: Accounts,
        declared: Sequence[DeclaredUser],
        box: SecretBox,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.accounts = accounts
        self._store = store
        self._declared = tuple(declared)
        self._box = box
        self._clock = clock
        self._roots = {
            a.access_key_id: Credential(a.access_key_id, a.secret_access_key, a, None, a.session_token)
            for a in accounts.all
        }
        self._lock = threading.Lock()
        self._generation: int | None = None
        self._users: dict[tuple[str, str], User] = {}
        self._keys: dict[str, Credential] = {}
        self._loaded_at = float("-inf")
        self._warned: set[str] = set()
        self._failed_at = float("-inf")
        self.refresh()

    def fresh(self) -> bool:
        """Whether what this process knows is recent enough to answer from memory, without a look."""
        return self._age() <= RELOAD_SECONDS

    def needs_refresh_for_key(self, access_key_id: str) -> bool:
        """Whether verifying this key calls for ensure_fresh() first: a user's key, and memory is not fresh
        or does not know the key."""
        if access_key_id in self._roots:
            return False
        return not self.fresh() or (access_key_id not in self._keys and self._age() > MISS_SECONDS)

    def needs_refresh_for_user(self, account_id: str, name: str, user_id: object, access_key_id: object) -> bool:
        """The same, for a token naming a user (and the key it logged in with)."""
        user = self._users.get((account_id, name))
        known = (
            user is not None and user.user_id == user_id and (access_key_id is None or access_key_id in user.key_ids)
        )
        return not self.fresh() or (not known and self._age() > MISS_SECONDS)

    def ensure_fresh(self, within: float = RELOAD_SECONDS) -> None:
        """Look for changes unless the last look is at most `within` seconds old (blocking: call it from a
        worker thread). A database that does not answer is logged and tried again on the next request; what
        is known meanwhile ages out."""
        if self._age() <= within:
            return
        with self._lock:
            if self._age() <= within:
                return
            try:
                self.refresh()
            except Exception as error:
                now = self._clock()
                if now - self._failed_at >= 60:
                    self._failed_at = now
                    log.warning("users: cannot read changes (%s); trying again on the next request", error)

    def refresh(self) -> None:
        started = self._clock()
        rows = self._store.user_rows(self._generation)
        if rows is not None:
            self._load(rows)
        self._loaded_at = started

    def credential(self, access_key_id: str) -> Credential | None:
        """The credential of an access key: an account's root key (from config), or a user's."""
        root = self._roots.get(access_key_id)
        if root is not None:
            return root
        self._check_age()
        return self._keys.get(access_key_id)

    def user(self, account_id: str, name: str) -> User | None:
        self._check_age()
        return self._users.get((account_id, name))

    def _age(self) -> float:
        return self._clock() - self._loaded_at

    def _check_age(self) -> None:
        if self._age() > MAX_AGE_SECONDS:
            raise errors.Unavailable("metadata database", "users and access keys cannot be confirmed right now")

    def _load(self, rows: UserRows) -> None:
        declared_names = {(d.account_id, d.name) for d in self._declared}
        taken = set(self._roots) | {d.access_key_id for d in self._declared}
        secrets_by_user: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for key in rows.keys:
            owner = (key.account_id, key.user_name)
            if key.access_key_id in taken or owner in declared_names:
                self._warn_once(key.access_key_id, "is also configured in pier.toml or as an account key; ignored")
                continue
            try:
                secret = self._box.open(key.secret, key.access_key_id)
            except SecretUnreadable as reason:
                self._warn_once(key.access_key_id, f"cannot be used: its secret is {reason}")
                continue
            secrets_by_user.setdefault(owner, []).append((key.access_key_id, secret))
        users: dict[tuple[str, str], User] = {}
        keys: dict[str, Credential] = {}
        for row in rows.users:
            owner = (row.account_id, row.name)
            account = self.accounts.by_id(row.account_id)
            if account is None or owner in declared_names:
                continue
            held = secrets_by_user.get(owner, [])
            user = _stored_user(row, [k for k, _ in held])
            users[owner] = user
            for key_id, secret in held:
                keys[key_id] = Credential(key_id, secret, account, user)
        for declared in self._declared:
            account = self.accounts.by_id(declared.account_id)
            if account is None:
                continue
            user = _declared_user(declared)
            users[(declared.account_id, declared.name)] = user
            if declared.secret_access_key is not None:
                keys[declared.access_key_id] = Credential(
                    declared.access_key_id, declared.secret_access_key, account, user
                )
        self._users, self._keys, self._generation = users, keys, rows.generation

    def _warn_once(self, access_key_id: str, problem: str) -> None:
        if access_key_id not in self._warned:
            self._warned.add(access_key_id)
            log.warning("users: access key %s %s", access_key_id, problem)


class UserAdmin:
    """Managing users in the database (what `pier users` does), checked against the accounts and pier.toml."""

    def __init__(
        self,
        store: MetadataStore,
        accounts: Accounts,
        declared: Sequence[DeclaredUser],
        box: SecretBox,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._accounts = accounts
        self._declared = {(d.account_id, d.name): d for d in declared}
        self._box = box
        self._clock = clock

    def create(self, account_id: str, name: str, policy_text: str | None = None) -> tuple[User, NewKey]:
        self._account(account_id)
        if not USER_NAME.fullmatch(name):
            raise errors.InvalidParameter(
                f"The user name {name!r} must be 1-64 letters, digits and _+=,.@- (IAM's rule)"
            )
        if (account_id, name) in self._declared:
            raise errors.DeclaredInConfig(account_id, name)
        if policy_text is not None:
            policies.check(policy_text, "identity")
        user_id = "AIDP" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(17))
        row = UserRow(account_id, name, user_id, policy_text, self._clock())
        key = self._new_key()
        try:
            self._store.insert_user(row, self._key_row(account_id, name, key))
        except Conflict:
            raise errors.UserAlreadyExists(account_id, name) from None
        return _stored_user(row, [key.access_key_id]), key

    def put_policy(self, account_id: str, name: str, policy_text: str) -> None:
        self._changeable(account_id, name)
        policies.check(policy_text, "identity")
        if not self._store.set_user_policy(account_id, name, policy_text):
            raise errors.UserNotFound(account_id, name)

    def list(self, account_id: str) -> list[User]:
        self._account(account_id)
        rows = self._store.user_rows()
        assert rows is not None
        key_ids: dict[str, list[str]] = {}
        for key in rows.keys:
            if key.account_id == account_id:
                key_ids.setdefault(key.user_name, []).append(key.access_key_id)
        found = {
            row.name: _stored_user(row, key_ids.get(row.name, ())) for row in rows.users if row.account_id == account_id
        }
        for (owner, name), declared in self._declared.items():
            if owner == account_id:
                found[name] = _declared_user(declared)
        return [found[name] for name in sorted(found)]

    def create_key(self, account_id: str, name: str) -> NewKey:
        self._changeable(account_id, name)
        for _ in range(3):  # a random 16-character id taken already: practically never, but try another
            key = self._new_key()
            try:
                if not self._store.insert_access_key(self._key_row(account_id, name, key), KEYS_PER_USER):
                    raise errors.UserNotFound(account_id, name)
            except Conflict:
                continue
            return key
        raise errors.Unavailable("metadata database", "no free access key id was found")

    def delete_key(self, account_id: str, name: str, access_key_id: str) -> None:
        self._changeable(account_id, name)
        if not self._store.delete_access_key(account_id, name, access_key_id):
            raise errors.AccessKeyNotFound(account_id, name, access_key_id)

    def delete(self, account_id: str, name: str) -> None:
        self._changeable(account_id, name)
        if not self._store.delete_user(account_id, name):
            raise errors.UserNotFound(account_id, name)

    def _account(self, account_id: str) -> Account:
        account = self._accounts.by_id(account_id)
        if account is None:
            raise errors.AccountNotFound(account_id, [a.id for a in self._accounts.all])
        return account

    def _changeable(self, account_id: str, name: str) -> None:
        self._account(account_id)
        if (account_id, name) in self._declared:
            raise errors.DeclaredInConfig(account_id, name)

    def _new_key(self) -> NewKey:
        return NewKey("AKPU" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(16)), secrets.token_urlsafe(30))

    def _key_row(self, account_id: str, name: str, key: NewKey) -> AccessKeyRow:
        return AccessKeyRow(
            key.access_key_id, account_id, name, self._box.seal(key.secret_access_key, key.access_key_id), self._clock()
        )


def _stored_user(row: UserRow, key_ids: Sequence[str]) -> User:
    """A user the CLI made (its row in the store), with the ids of its access keys."""
    return User(row.account_id, row.name, row.user_id, row.policy_text, tuple(key_ids), False, row.created_at)


def _declared_user(declared: DeclaredUser) -> User:
    """A user pier.toml declares (one access key, never changed by the CLI)."""
    user_id = declared_user_id(declared.account_id, declared.name)
    return User(declared.account_id, declared.name, user_id, declared.policy_text, (declared.access_key_id,), True)
