"""The keys tokens are signed with (kept in the database so every pier process shares them)."""

from __future__ import annotations

from sqlalchemy import (
    delete,
    insert,
    select,
)

from pier.storage import schema
from pier.storage.metadata import (
    SigningKey,
)
from pier.storage.sql.engine import SqlBase


class SigningKeyRows(SqlBase):
    # Signing keys

    def signing_keys(self) -> list[SigningKey]:
        table = schema.signing_keys
        with self._reading() as conn:
            rows = conn.execute(select(table).order_by(table.c.created_at.desc())).mappings().all()
        return [SigningKey(row["key_id"], bytes.fromhex(row["secret"]), row["created_at"]) for row in rows]

    def add_signing_key(self, key: SigningKey) -> None:
        with self._writing() as conn:
            conn.execute(
                insert(schema.signing_keys).values(
                    key_id=key.key_id, secret=key.secret.hex(), created_at=key.created_at
                )
            )

    def remove_signing_keys_except(self, key_id: str) -> None:
        table = schema.signing_keys
        with self._writing() as conn:
            conn.execute(delete(table).where(table.c.key_id != key_id))
