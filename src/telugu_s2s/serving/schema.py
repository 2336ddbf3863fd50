"""The session store's tables (SQLAlchemy Core), the same on SQLite and PostgreSQL.

The Alembic migrations in `migrations/versions` create and evolve exactly these tables;
`target_metadata` here is what `alembic revision --autogenerate` compares against.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("preferences", sa.Text, nullable=False),  # JSON
    sa.Column("aggregates", sa.Text, nullable=False),  # JSON
    sa.Index("ix_sessions_updated_at", "updated_at"),  # retention sweeps
)

turns = sa.Table(
    "turns",
    metadata,
    sa.Column(
        "session_id", sa.Text, sa.ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("idx", sa.Integer, primary_key=True),
    sa.Column("record", sa.Text, nullable=False),  # TurnRecord.to_json()
    sa.Column("memory", sa.LargeBinary, nullable=True),  # float32 little-endian (D,)
)
