"""images: the format (partclone | chunked) and a chunked differential image's added bytes
(issue 14)

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("format", sa.String(length=12), server_default="partclone", nullable=False)
        )
        batch_op.add_column(
            sa.Column("added_size", sa.BigInteger(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.drop_column("added_size")
        batch_op.drop_column("format")
