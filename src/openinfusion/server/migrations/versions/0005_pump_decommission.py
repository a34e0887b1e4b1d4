"""Pumps can be decommissioned: key refused, serial freed for re-enrolment (C-23).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("pumps", sa.Column("decommissioned_at", sa.DateTime(), nullable=True))
    op.add_column("pumps", sa.Column("decommissioned_serial", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pumps") as batch:
        batch.drop_column("decommissioned_serial")
        batch.drop_column("decommissioned_at")
