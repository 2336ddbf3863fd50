"""Session persistence in SQLite (WAL): preferences, the last N turns and running aggregates.

Every write is one transaction, so a crash (even SIGKILL) leaves either the old or the new
state, never half of one; with WAL and synchronous=NORMAL a committed turn survives a killed
process. `url` is a file path or `sqlite:///path` (`sqlite:///:memory:` for tests). Other
databases (a SQLAlchemy URL for Postgres) are the scale-out plan, not implemented here.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from telugu_s2s.serving.context import Aggregates, Preferences
from telugu_s2s.serving.engine_api import TurnRecord

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    preferences TEXT NOT NULL,
    aggregates TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS turns (
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    record TEXT NOT NULL,
    memory BLOB,
    PRIMARY KEY (session_id, idx)
);
"""


def sqlite_path(url: str) -> str:
    """`sqlite:///relative.db`, `sqlite:////abs.db`, a plain path or `:memory:` -> a path."""
    if "://" not in url:
        return url
    scheme, _, rest = url.partition("://")
    if scheme != "sqlite":
        raise ValueError(f"unsupported store URL {url!r}: only sqlite:///path is implemented")
    return rest[1:] if rest.startswith("/") else rest


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
        self.path = sqlite_path(url)
        self.max_turns = max_turns
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()  # one connection, used from the loop and helper threads
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.execute("PRAGMA busy_timeout=5000")
        self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _write(self, statements: list[tuple[str, tuple]]) -> None:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for sql, args in statements:
                    self._conn.execute(sql, args)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def create(self, session_id: str, preferences: Preferences) -> None:
        now = time.time()
        self._write([(
            "INSERT OR IGNORE INTO sessions VALUES (?, ?, ?, ?, ?)",
            (session_id, now, now, json.dumps(preferences.to_json()), json.dumps(Aggregates().to_json())),
        )])  # fmt: skip

    def save_preferences(self, session_id: str, preferences: Preferences) -> None:
        self._write([(
            "UPDATE sessions SET preferences = ?, updated_at = ? WHERE id = ?",
            (json.dumps(preferences.to_json()), time.time(), session_id),
        )])  # fmt: skip

    def save_turn(self, session_id: str, turn: TurnRecord, aggregates: Aggregates) -> None:
        """Add a turn, drop turns that slid out of the window and update the aggregates."""
        memory = None if turn.memory is None else np.asarray(turn.memory, "<f4").tobytes()
        self._write([
            ("INSERT OR REPLACE INTO turns VALUES (?, ?, ?, ?)",
             (session_id, turn.index, json.dumps(turn.to_json(), ensure_ascii=False), memory)),
            ("DELETE FROM turns WHERE session_id = ? AND idx <= ?", (session_id, turn.index - self.max_turns)),
            ("UPDATE sessions SET aggregates = ?, updated_at = ? WHERE id = ?",
             (json.dumps(aggregates.to_json(), ensure_ascii=False), time.time(), session_id)),
        ])  # fmt: skip

    def load(self, session_id: str, defaults: Preferences | None = None) -> StoredSession | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT created_at, updated_at, preferences, aggregates FROM sessions WHERE id = ?",
                (session_id,),
            ).fetchone()
            rows = self._conn.execute(
                "SELECT record, memory FROM turns WHERE session_id = ? ORDER BY idx DESC LIMIT ?",
                (session_id, self.max_turns),
            ).fetchall()
        if row is None:
            return None
        turns = [
            TurnRecord.from_json(json.loads(record), None if blob is None else np.frombuffer(blob, "<f4").copy())
            for record, blob in reversed(rows)
        ]  # fmt: skip
        return StoredSession(
            id=session_id, created_at=row[0], updated_at=row[1],
            preferences=Preferences.from_json(json.loads(row[2]), defaults),
            aggregates=Aggregates.from_json(json.loads(row[3])), turns=turns,
        )  # fmt: skip

    def count(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT COUNT(*) FROM sessions").fetchone()[0]
