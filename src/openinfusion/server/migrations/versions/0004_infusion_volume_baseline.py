"""Infusions remember the pump's channel volume counter at their start.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "infusions",
        sa.Column("volume_at_start_ml", sa.Float(), nullable=False, server_default="0"),
    )


def downgrade() -> None:
    with op.batch_alter_table("infusions") as batch:
        batch.drop_column("volume_at_start_ml")
