"""IAM users, their access keys, and the generation counter every change to them bumps."""

from __future__ import annotations

from sqlalchemy import (
    Connection,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from pier import errors
from pier.storage import schema
from pier.storage.metadata import AccessKeyRow, Conflict, UserRow, UserRows
from pier.storage.sql.engine import SqlBase

_users = schema.iam_users
_keys = schema.iam_access_keys
_generation = schema.iam_generation
_GENERATION = select(_generation.c.generation).where(_generation.c.id == 1)


class IamUserRows(SqlBase):
    def user_rows(self, unless_generation: int | None = None) -> UserRows | None:
        with self._reading(snapshot=True) as conn:
            generation = int(conn.execute(_GENERATION).scalar() or 0)
            if generation == unless_generation:
                return None
            users = [
                UserRow(r.account_id, r.name, r.user_id, r.policy_text, r.created_at)
                for r in conn.execute(select(_users).order_by(_users.c.account_id, _users.c.name))
            ]
            keys = [
                AccessKeyRow(r.access_key_id, r.account_id, r.user_name, r.secret, r.created_at)
                for r in conn.execute(select(_keys).order_by(_keys.c.created_at))
            ]
        return UserRows(generation, users, keys)

    def insert_user(self, user: UserRow, key: AccessKeyRow | None) -> None:
        try:
            with self._writing() as conn:
                conn.execute(
                    insert(_users).values(
                        account_id=user.account_id,
                        name=user.name,
                        user_id=user.user_id,
                        policy_text=user.policy_text,
                        created_at=user.created_at,
                    )
                )
                if key is not None:
                    conn.execute(insert(_keys).values(**_key_columns(key)))
                self._bump(conn)
        except IntegrityError as error:
            raise Conflict(user.name) from error

    def set_user_policy(self, account_id: str, name: str, policy_text: str | None) -> bool:
        with self._writing() as conn:
            changed = conn.execute(
                update(_users)
                .where(_users.c.account_id == account_id, _users.c.name == name)
                .values(policy_text=policy_text)
            ).rowcount
            if changed:
                self._bump(conn)
        return bool(changed)

    def insert_access_key(self, key: AccessKeyRow, limit: int) -> bool:
        try:
            with self._writing() as conn:
                # The user's row, locked (PostgreSQL; SQLite's writers take turns anyway), so two keys
                # created at once cannot both pass the count.
                found = conn.execute(
                    select(_users.c.user_id)
                    .where(_users.c.account_id == key.account_id, _users.c.name == key.user_name)
                    .with_for_update()
                ).first()
                if found is None:
                    return False
                count = conn.execute(
                    select(func.count())
                    .select_from(_keys)
                    .where(_keys.c.account_id == key.account_id, _keys.c.user_name == key.user_name)
                ).scalar_one()
                if count >= limit:
                    raise errors.LimitExceeded("access keys per user", limit)
                conn.execute(insert(_keys).values(**_key_columns(key)))
                self._bump(conn)
        except IntegrityError as error:
            raise Conflict(key.access_key_id) from error
        return True

    def delete_access_key(self, account_id: str, name: str, access_key_id: str) -> bool:
        with self._writing() as conn:
            deleted = conn.execute(
                delete(_keys).where(
                    _keys.c.access_key_id == access_key_id,
                    _keys.c.account_id == account_id,
                    _keys.c.user_name == name,
                )
            ).rowcount
            if deleted:
                self._bump(conn)
        return bool(deleted)

    def delete_user(self, account_id: str, name: str) -> bool:
        with self._writing() as conn:
            conn.execute(delete(_keys).where(_keys.c.account_id == account_id, _keys.c.user_name == name))
            deleted = conn.execute(
                delete(_users).where(_users.c.account_id == account_id, _users.c.name == name)
            ).rowcount
            if deleted:
                self._bump(conn)
        return bool(deleted)

    def _bump(self, conn: Connection) -> None:
        """Count one more change, in the transaction that makes it (the row is made by the first change)."""
        conn.execute(self._insert_or_ignore(_generation).values(id=1, generation=0))
        conn.execute(update(_generation).where(_generation.c.id == 1).values(generation=_generation.c.generation + 1))


def _key_columns(key: AccessKeyRow) -> dict[str, object]:
    return {
        "access_key_id": key.access_key_id,
        "account_id": key.account_id,
        "user_name": key.user_name,
        "secret": key.secret,
        "created_at": key.created_at,
    }
