"""Interop: the durable outbox of HL7 messages to the EHR and the forwarder cursor.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# 64-bit ids, the SQLite rowid kept (as openinfusion.server.models.BIGINT)
_BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "hl7_outbox",
        sa.Column("id", _BIGINT, nullable=False),
        sa.Column("destination", sa.String(length=120), nullable=False),
        sa.Column("message_type", sa.String(length=16), nullable=False),
        sa.Column("control_id", sa.String(length=20), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("ack_code", sa.String(length=2), nullable=True),
        sa.Column("source", sa.String(length=80), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.Column("acked_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("control_id"),
    )
    op.create_index(
        "ix_hl7_outbox_destination_status_id",
        "hl7_outbox",
        ["destination", "status", "id"],
        unique=False,
    )
    op.create_table(
        "hl7_outbound_cursor",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("position", _BIGINT, nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("hl7_outbound_cursor")
    op.drop_index("ix_hl7_outbox_destination_status_id", table_name="hl7_outbox")
    op.drop_table("hl7_outbox")
