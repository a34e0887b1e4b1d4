"""Interop: EHR orders, inbound HL7 control ids and patient merges.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "infusion_orders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.Column("placer_order_id", sa.String(length=64), nullable=False),
        sa.Column("active_placer_key", sa.String(length=80), nullable=True),
        sa.Column("message_control_id", sa.String(length=64), nullable=True),
        sa.Column("sending_application", sa.String(length=180), nullable=True),
        sa.Column("patient_mrn", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=True),
        sa.Column("pump_serial", sa.String(length=64), nullable=True),
        sa.Column("pump_id", sa.String(length=40), nullable=True),
        sa.Column("channel", sa.Integer(), nullable=True),
        sa.Column("unit", sa.String(length=64), nullable=True),
        sa.Column("drug_code", sa.String(length=64), nullable=True),
        sa.Column("drug", sa.String(length=80), nullable=True),
        sa.Column("concentration", sa.String(length=64), nullable=True),
        sa.Column("dose", sa.String(length=64), nullable=True),
        sa.Column("rate_ml_h", sa.Float(), nullable=True),
        sa.Column("vtbi_ml", sa.Float(), nullable=True),
        sa.Column("patient_weight_kg", sa.Float(), nullable=True),
        sa.Column("library_version", sa.String(length=64), nullable=True),
        sa.Column("care_area", sa.String(length=64), nullable=True),
        sa.Column("soft_limit", sa.Boolean(), nullable=False),
        sa.Column("findings", sa.JSON(), nullable=False),
        sa.Column("issues", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("command_id", sa.String(length=36), nullable=True),
        sa.Column("ordered_by", sa.String(length=120), nullable=True),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"]),
        sa.ForeignKeyConstraint(["pump_id"], ["pumps.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("active_placer_key"),
        sa.UniqueConstraint(
            "sending_application", "message_control_id", name="uq_infusion_orders_control_id"
        ),
    )
    for column in ("placer_order_id", "patient_mrn", "pump_id", "unit", "status", "command_id"):
        op.create_index(
            op.f(f"ix_infusion_orders_{column}"), "infusion_orders", [column], unique=False
        )
    op.create_table(
        "inbound_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sending_application", sa.String(length=180), nullable=False),
        sa.Column("message_control_id", sa.String(length=64), nullable=False),
        sa.Column("message_type", sa.String(length=32), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "sending_application", "message_control_id", name="uq_inbound_messages_control_id"
        ),
    )
    op.create_table(
        "patient_merges",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("prior_mrn", sa.String(length=32), nullable=False),
        sa.Column("surviving_mrn", sa.String(length=32), nullable=False),
        sa.Column("prior_patient_id", sa.Integer(), nullable=True),
        sa.Column("surviving_patient_id", sa.Integer(), nullable=False),
        sa.Column("merged_by", sa.String(length=64), nullable=False),
        sa.Column("merged_at", sa.DateTime(), nullable=False),
        sa.Column("message_control_id", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["prior_patient_id"], ["patients.id"]),
        sa.ForeignKeyConstraint(["surviving_patient_id"], ["patients.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("prior_mrn"),
    )
    op.create_index(
        op.f("ix_patient_merges_surviving_mrn"), "patient_merges", ["surviving_mrn"], unique=False
    )
    op.create_table(
        "association_reverifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("association_id", sa.Integer(), nullable=False),
        sa.Column("merge_id", sa.Integer(), nullable=False),
        sa.Column("pump_id", sa.String(length=40), nullable=False),
        sa.Column("channel", sa.Integer(), nullable=False),
        sa.Column("unit", sa.String(length=64), nullable=True),
        sa.Column("infusing", sa.Boolean(), nullable=False),
        sa.Column("flagged_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["association_id"], ["associations.id"]),
        sa.ForeignKeyConstraint(["merge_id"], ["patient_merges.id"]),
        sa.ForeignKeyConstraint(["pump_id"], ["pumps.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_association_reverifications_association_id"),
        "association_reverifications",
        ["association_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_association_reverifications_pump_id"),
        "association_reverifications",
        ["pump_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_association_reverifications_pump_id"), table_name="association_reverifications"
    )
    op.drop_index(
        op.f("ix_association_reverifications_association_id"),
        table_name="association_reverifications",
    )
    op.drop_table("association_reverifications")
    op.drop_index(op.f("ix_patient_merges_surviving_mrn"), table_name="patient_merges")
    op.drop_table("patient_merges")
    op.drop_table("inbound_messages")
    for column in ("placer_order_id", "patient_mrn", "pump_id", "unit", "status", "command_id"):
        op.drop_index(op.f(f"ix_infusion_orders_{column}"), table_name="infusion_orders")
    op.drop_table("infusion_orders")
