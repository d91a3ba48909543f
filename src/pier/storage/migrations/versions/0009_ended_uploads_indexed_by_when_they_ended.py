"""ended uploads indexed by when they ended

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 21:56:18.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("uploads", schema=None) as batch_op:
        batch_op.create_index(
            "ix_uploads_ended",
            ["updated_at"],
            unique=False,
            sqlite_where=sa.text("size = -1"),
            postgresql_where=sa.text("size = -1"),
        )


def downgrade() -> None:
    with op.batch_alter_table("uploads", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_uploads_ended", sqlite_where=sa.text("size = -1"), postgresql_where=sa.text("size = -1")
        )
