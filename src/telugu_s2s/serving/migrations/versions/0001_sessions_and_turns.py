"""Sessions and their last turns (the schema of the SQLite-only store).

Databases written by that store already hold both tables: they are kept as they are, so
upgrading one only adds Alembic's version table.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "sessions" not in existing:
        op.create_table(
            "sessions",
            sa.Column("id", sa.Text, primary_key=True),
            sa.Column("created_at", sa.Float, nullable=False),
            sa.Column("updated_at", sa.Float, nullable=False),
            sa.Column("preferences", sa.Text, nullable=False),
            sa.Column("aggregates", sa.Text, nullable=False),
        )
    if "turns" not in existing:
        op.create_table(
            "turns",
            sa.Column(
                "session_id",
                sa.Text,
                sa.ForeignKey("sessions.id", ondelete="CASCADE"),
                primary_key=True,
            ),  # fmt: skip
            sa.Column("idx", sa.Integer, primary_key=True),
            sa.Column("record", sa.Text, nullable=False),
            sa.Column("memory", sa.LargeBinary, nullable=True),
        )


def downgrade() -> None:
    op.drop_table("turns")
    op.drop_table("sessions")
