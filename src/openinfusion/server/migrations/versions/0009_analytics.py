"""Analytics and predictive maintenance tables: service records of pumps.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "maintenance_service",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pump_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("serviced_at", sa.DateTime(), nullable=False),
        sa.Column("serviced_by", sa.String(length=64), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["pump_id"], ["pumps.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_maintenance_service_pump_id"), "maintenance_service", ["pump_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_maintenance_service_pump_id"), table_name="maintenance_service")
    op.drop_table("maintenance_service")
