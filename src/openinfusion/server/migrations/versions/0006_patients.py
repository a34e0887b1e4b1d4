"""Patients and which pump channel infuses which patient (associations).

At most one open association per pump channel: a partial unique index over the rows whose
``ended_at`` is still empty (SQLite and PostgreSQL).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_OPEN = sa.text("ended_at IS NULL")


def upgrade() -> None:
    op.create_table(
        "patients",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("mrn", sa.String(length=32), nullable=False),
        sa.Column("family_name", sa.String(length=80), nullable=False),
        sa.Column("given_name", sa.String(length=80), nullable=False),
        sa.Column("birth_date", sa.Date(), nullable=False),
        sa.Column("sex", sa.String(length=16), nullable=False),
        sa.Column("weight_kg", sa.Float(), nullable=True),
        sa.Column("height_cm", sa.Float(), nullable=True),
        sa.Column("unit", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("mrn"),
    )
    op.create_index(op.f("ix_patients_unit"), "patients", ["unit"], unique=False)
    op.create_table(
        "associations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pump_id", sa.String(length=40), nullable=False),
        sa.Column("channel", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("associated_by", sa.String(length=64), nullable=False),
        sa.Column("associated_at", sa.DateTime(), nullable=False),
        sa.Column("ended_by", sa.String(length=64), nullable=True),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"]),
        sa.ForeignKeyConstraint(["pump_id"], ["pumps.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_associations_pump_id"), "associations", ["pump_id"], unique=False)
    op.create_index(
        op.f("ix_associations_patient_id"), "associations", ["patient_id"], unique=False
    )
    op.create_index(
        "uq_associations_open_channel",
        "associations",
        ["pump_id", "channel"],
        unique=True,
        sqlite_where=_OPEN,
        postgresql_where=_OPEN,
    )


def downgrade() -> None:
    op.drop_index("uq_associations_open_channel", table_name="associations")
    op.drop_index(op.f("ix_associations_patient_id"), table_name="associations")
    op.drop_index(op.f("ix_associations_pump_id"), table_name="associations")
    op.drop_table("associations")
    op.drop_index(op.f("ix_patients_unit"), table_name="patients")
    op.drop_table("patients")
