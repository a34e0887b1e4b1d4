"""Initial schema: accounts, tokens, pumps and their messages, derived state, commands, audit.

Revision ID: 0001
Revises: (none)
Create Date: 2026-12-03 07:24:35.890978
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_anchor",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("signature", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("ts", sa.String(length=40), nullable=False),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("object", sa.String(length=200), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_log_action"), ["action"], unique=False)

    op.create_table(
        "enrolment_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("unit", sa.String(length=64), nullable=True),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.Column("used_by_pump", sa.String(length=40), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_table(
        "login_throttle",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", sa.DateTime(), nullable=False),
        sa.Column("blocked_until", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "pumps",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("serial", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("channel_count", sa.Integer(), nullable=False),
        sa.Column("unit", sa.String(length=64), nullable=True),
        sa.Column("public_key", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("enrolled_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen", sa.DateTime(), nullable=True),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.Column("gaps", sa.JSON(), nullable=False),
        sa.Column("library_version", sa.String(length=64), nullable=True),
        sa.Column("power", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("serial"),
    )
    with op.batch_alter_table("pumps", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_pumps_unit"), ["unit"], unique=False)

    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("unit", sa.String(length=64), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("username"),
    )
    op.create_table(
        "alarms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pump_id", sa.String(length=40), nullable=False),
        sa.Column("channel", sa.Integer(), nullable=True),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("priority", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("raised_at", sa.DateTime(), nullable=False),
        sa.Column("raised_seq", sa.Integer(), nullable=False),
        sa.Column("cleared_at", sa.DateTime(), nullable=True),
        sa.Column("cleared_seq", sa.Integer(), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(), nullable=True),
        sa.Column("acknowledged_by", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["pump_id"],
            ["pumps.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("alarms", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_alarms_pump_id"), ["pump_id"], unique=False)

    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_tokens_user_id"), ["user_id"], unique=False)

    op.create_table(
        "commands",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("pump_id", sa.String(length=40), nullable=False),
        sa.Column("channel", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("issued_by", sa.String(length=64), nullable=False),
        sa.Column("issued_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("result_at", sa.DateTime(), nullable=True),
        sa.Column("result_seq", sa.Integer(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(), nullable=True),
        sa.Column("envelope", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["pump_id"],
            ["pumps.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("commands", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_commands_issued_by"), ["issued_by"], unique=False)
        batch_op.create_index(batch_op.f("ix_commands_pump_id"), ["pump_id"], unique=False)

    op.create_table(
        "infusions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pump_id", sa.String(length=40), nullable=False),
        sa.Column("channel", sa.Integer(), nullable=False),
        sa.Column("drug", sa.String(length=80), nullable=True),
        sa.Column("dose", sa.Float(), nullable=True),
        sa.Column("dose_unit", sa.String(length=32), nullable=True),
        sa.Column("rate_ml_h", sa.Float(), nullable=True),
        sa.Column("volume_infused_ml", sa.Float(), nullable=False),
        sa.Column("dose_delivered", sa.Float(), nullable=True),
        sa.Column("dose_delivered_unit", sa.String(length=32), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("started_seq", sa.Integer(), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("end_reason", sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(
            ["pump_id"],
            ["pumps.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("infusions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_infusions_pump_id"), ["pump_id"], unique=False)

    op.create_table(
        "pump_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pump_id", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("sent_at", sa.String(length=40), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("signature", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["pump_id"],
            ["pumps.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("pump_id", "seq", name="uq_pump_messages_pump_seq"),
    )
    op.create_table(
        "channels",
        sa.Column("pump_id", sa.String(length=40), nullable=False),
        sa.Column("channel", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("drug", sa.String(length=80), nullable=True),
        sa.Column("dose", sa.Float(), nullable=True),
        sa.Column("dose_unit", sa.String(length=32), nullable=True),
        sa.Column("rate_ml_h", sa.Float(), nullable=True),
        sa.Column("volume_infused_ml", sa.Float(), nullable=True),
        sa.Column("vtbi_remaining_ml", sa.Float(), nullable=True),
        sa.Column("time_remaining_min", sa.Float(), nullable=True),
        sa.Column("infusion_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("updated_seq", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["infusion_id"],
            ["infusions.id"],
        ),
        sa.ForeignKeyConstraint(
            ["pump_id"],
            ["pumps.id"],
        ),
        sa.PrimaryKeyConstraint("pump_id", "channel"),
    )


def downgrade() -> None:
    op.drop_table("channels")
    op.drop_table("pump_messages")
    with op.batch_alter_table("infusions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_infusions_pump_id"))

    op.drop_table("infusions")
    with op.batch_alter_table("commands", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_commands_pump_id"))
        batch_op.drop_index(batch_op.f("ix_commands_issued_by"))

    op.drop_table("commands")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_tokens_user_id"))

    op.drop_table("api_tokens")
    with op.batch_alter_table("alarms", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alarms_pump_id"))

    op.drop_table("alarms")
    op.drop_table("users")
    with op.batch_alter_table("pumps", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pumps_unit"))

    op.drop_table("pumps")
    op.drop_table("login_throttle")
    op.drop_table("enrolment_tokens")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_action"))

    op.drop_table("audit_log")
    op.drop_table("audit_anchor")
