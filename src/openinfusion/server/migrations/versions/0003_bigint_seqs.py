"""64-bit sequence numbers and message ids on PostgreSQL (SQLite's INTEGER already is).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

COLUMNS = [
    ("pumps", "last_seq"),
    ("pump_messages", "id"),
    ("pump_messages", "seq"),
    ("channels", "updated_seq"),
    ("infusions", "started_seq"),
    ("alarms", "raised_seq"),
    ("alarms", "cleared_seq"),
    ("commands", "result_seq"),
]


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column in COLUMNS:
        op.alter_column(table, column, type_=sa.BigInteger(), existing_type=sa.Integer())
    op.execute("ALTER SEQUENCE IF EXISTS pump_messages_id_seq AS bigint")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER SEQUENCE IF EXISTS pump_messages_id_seq AS integer")
    for table, column in COLUMNS:
        op.alter_column(table, column, type_=sa.Integer(), existing_type=sa.BigInteger())
