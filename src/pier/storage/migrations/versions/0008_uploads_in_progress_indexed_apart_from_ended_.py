"""uploads in progress indexed apart from ended ones

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 11:55:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("uploads", schema=None) as batch_op:
        batch_op.create_index(
            "ix_uploads_in_progress",
            ["repository_id"],
            unique=False,
            sqlite_where=sa.text("size != -1"),
            postgresql_where=sa.text("size != -1"),
        )


def downgrade() -> None:
    with op.batch_alter_table("uploads", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_uploads_in_progress", sqlite_where=sa.text("size != -1"), postgresql_where=sa.text("size != -1")
        )
