"""Session persistence on SQLAlchemy: preferences, the last N turns and running aggregates.

`url` is a SQLAlchemy URL or a plain path:
- `sqlite:///data/state/s.db` (a plain path, or `:memory:` for tests) is the embedded
  default, in WAL mode with synchronous=NORMAL: a committed turn survives a killed process;
- `postgresql://user:pass@host/db` (psycopg 3) lets several server replicas share sessions.

Both use the same tables (`schema`), created and upgraded by the Alembic migrations in
`migrations/` when the store opens. Every write is one transaction, so a crash (even
SIGKILL) leaves either the old or the new state, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.pool import StaticPool

from telugu_s2s.serving.context import Aggregates, Preferences
from telugu_s2s.serving.engine_api import TurnRecord
from telugu_s2s.serving.schema import sessions, turns

_MIGRATION_LOCK = 7_172_017  # pg advisory lock: replicas starting together migrate one by one


def database_url(url: str) -> sa.URL:
    """A store URL or a plain path -> a SQLAlchemy URL; postgresql goes through psycopg 3."""
    if "://" not in url:
        url = f"sqlite:///{url}"
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "postgresql":
        return parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() != "sqlite":
        raise ValueError(
            f"unsupported store URL scheme {parsed.drivername!r}: use sqlite:/// or postgresql://"
        )
    return parsed


def _sqlite_engine(url: sa.URL) -> sa.Engine:
    database = url.database or ":memory:"
    if database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 10})
    else:  # one shared connection, or every checkout would see a fresh empty database
        engine = sa.create_engine(url, poolclass=StaticPool,
                                  connect_args={"check_same_thread": False})  # fmt: skip

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (below)
        for pragma in ("busy_timeout=10000", "synchronous=NORMAL", "foreign_keys=ON"):
            dbapi_connection.execute(f"PRAGMA {pragma}")
        # Switching a fresh file to WAL needs it unlocked, and the busy handler does not wait
        # for that: replicas opening one new database together retry for up to 10 s.
        for attempt in range(100):
            try:
                dbapi_connection.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == 99:
                    raise
                time.sleep(0.1)

    @sa.event.listens_for(engine, "begin")
    def _begin(connection) -> None:
        # Take the write lock up front: two processes on one file never deadlock upgrading.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


@dataclass
class StoredSession:
    id: str
    created_at: float
    updated_at: float
    preferences: Preferences
    aggregates: Aggregates
    turns: list[TurnRecord]


class SessionStore:
    def __init__(self, url: str, max_turns: int = 10):
        self.url = database_url(url)
        self.max_turns = max_turns
        if self.url.get_backend_name() == "sqlite":
            self.engine = _sqlite_engine(self.url)
        else:
            self.engine = sa.create_engine(
                self.url, pool_pre_ping=True, pool_size=4, max_overflow=4
            )
        self.dialect = self.engine.dialect.name
        # One shared connection (in-memory SQLite) must not start two transactions at once.
        shared = isinstance(self.engine.pool, StaticPool)
        self._lock = threading.Lock() if shared else contextlib.nullcontext()
        self._insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        self.migrate()

    # ---------------------------------------------------------------- schema

    def migrate(self) -> None:
        """Apply every pending Alembic migration (one process at a time)."""
        from alembic import command
        from alembic.config import Config

        from telugu_s2s.serving.migrations import MIGRATIONS_DIR

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        with self._transaction() as connection:
            if self.dialect == "postgresql":
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sa.Connection]:
        with self._lock, self.engine.begin() as connection:
            yield connection

    def revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self._transaction() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def close(self) -> None:
        self.engine.dispose()

    # ---------------------------------------------------------------- writes

    def create(self, session_id: str, preferences: Preferences) -> None:
        now = time.time()
        row = {"id": session_id, "created_at": now, "updated_at": now,
               "preferences": json.dumps(preferences.to_json()),
               "aggregates": json.dumps(Aggregates().to_json())}  # fmt: skip
        with self._transaction() as connection:
            connection.execute(self._insert(sessions).values(row).on_conflict_do_nothing())

    def save_preferences(self, session_id: str, preferences: Preferences) -> None:
        with self._transaction() as connection:
            connection.execute(
                sessions.update()
                .where(sessions.c.id == session_id)
                .values(preferences=json.dumps(preferences.to_json()), updated_at=time.time())
            )

    def save_turn(self, session_id: str, turn: TurnRecord, aggregates: Aggregates) -> None:
        """Add a turn, drop turns that slid out of the window and update the aggregates,
        all in one transaction."""
        memory = None if turn.memory is None else np.asarray(turn.memory, "<f4").tobytes()
        record = json.dumps(turn.to_json(), ensure_ascii=False)
        mine = turns.c.session_id == session_id
        with self._transaction() as connection:
            connection.execute(turns.delete().where(mine, turns.c.idx == turn.index))
            connection.execute(turns.insert().values(
                session_id=session_id, idx=turn.index, record=record, memory=memory))  # fmt: skip
            connection.execute(
                turns.delete().where(mine, turns.c.idx <= turn.index - self.max_turns)
            )
            connection.execute(
                sessions.update()
                .where(sessions.c.id == session_id)
                .values(
                    aggregates=json.dumps(aggregates.to_json(), ensure_ascii=False),
                    updated_at=time.time(),
                )  # fmt: skip
            )

    def purge_older_than(self, seconds: float) -> int:
        """Delete sessions (and their turns) untouched for `seconds`; returns how many."""
        cutoff = time.time() - seconds
        old = sa.select(sessions.c.id).where(sessions.c.updated_at < cutoff)
        with self._transaction() as connection:
            connection.execute(turns.delete().where(turns.c.session_id.in_(old)))
            return connection.execute(
                sessions.delete().where(sessions.c.updated_at < cutoff)
            ).rowcount

    # ---------------------------------------------------------------- reads

    def load(self, session_id: str, defaults: Preferences | None = None) -> StoredSession | None:
        with self._transaction() as connection:  # one snapshot of the session and its turns
            row = connection.execute(
                sa.select(sessions).where(sessions.c.id == session_id)
            ).one_or_none()
            rows = connection.execute(
                sa.select(turns.c.record, turns.c.memory)
                .where(turns.c.session_id == session_id)
                .order_by(turns.c.idx.desc())
                .limit(self.max_turns)
            ).all()
        if row is None:
            return None
        records = [
            TurnRecord.from_json(json.loads(record), None if blob is None else np.frombuffer(blob, "<f4").copy())
            for record, blob in reversed(rows)
        ]  # fmt: skip
        return StoredSession(
            id=session_id, created_at=row.created_at, updated_at=row.updated_at,
            preferences=Preferences.from_json(json.loads(row.preferences), defaults),
            aggregates=Aggregates.from_json(json.loads(row.aggregates)), turns=records,
        )  # fmt: skip

    def count(self) -> int:
        with self._transaction() as connection:
            return connection.execute(sa.select(sa.func.count()).select_from(sessions)).scalar_one()
