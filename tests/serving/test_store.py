"""The session store on SQLite (WAL) and on a real PostgreSQL: the same tests on both."""

from __future__ import annotations

import json
import sqlite3
import threading
import time

import numpy as np
import pytest
import sqlalchemy as sa

from telugu_s2s.serving.context import Aggregates, ConversationContext, Preferences
from telugu_s2s.serving.engine_api import TurnRecord
from telugu_s2s.serving.store import SessionStore, database_url

HEAD = "0002"


def turn(i: int, sentiment: float = -0.2, **kw) -> TurnRecord:
    return TurnRecord(index=i, user_text=f"u{i}", assistant_text=f"a{i}", sentiment=sentiment,
                      topic="food", emotion="happy", memory=np.arange(4, dtype=np.float32) * i, **kw)  # fmt: skip


def add_turns(store: SessionStore, session_id: str, count: int) -> ConversationContext:
    context = ConversationContext(store.max_turns)
    for i in range(1, count + 1):
        record = turn(i, interrupted=i == count)
        context.add(record)
        store.save_turn(session_id, record, context.aggregates)
    return context


def test_round_trip_window_and_reopen(store_url):
    store = SessionStore(store_url, max_turns=10)
    prefs = Preferences(speaker="lakshmi", mode="turn", style="casual", vad_threshold=0.4)
    store.create("abc", prefs)
    store.create("abc", Preferences())  # a second create keeps the first
    add_turns(store, "abc", 12)
    store.close()
    reopened = SessionStore(store_url)  # a new process (or another replica) sees exactly this
    loaded = reopened.load("abc")
    assert loaded.preferences == prefs
    assert [t.index for t in loaded.turns] == list(range(3, 13))
    assert loaded.turns[-1].interrupted and loaded.turns[-1].user_text == "u12"
    np.testing.assert_array_equal(loaded.turns[-1].memory, np.arange(4) * 12)
    assert loaded.aggregates.turns == 12 and loaded.aggregates.mean_sentiment == pytest.approx(-0.2)
    assert reopened.load("missing") is None and reopened.count() == 1
    assert reopened.revision() == HEAD
    if reopened.dialect == "sqlite":
        with reopened.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    reopened.close()


def test_two_stores_on_one_database_share_sessions(store_url):
    """What two server replicas do: one writes, the other reads and continues."""
    first, second = SessionStore(store_url), SessionStore(store_url)
    first.create("shared", Preferences(speaker="ravi"))
    context = add_turns(first, "shared", 11)
    moved = second.load("shared")
    assert [t.index for t in moved.turns] == list(range(2, 12))
    resumed = ConversationContext(10, moved.turns, moved.aggregates)
    record = turn(resumed.next_index)
    resumed.add(record)
    second.save_turn("shared", record, resumed.aggregates)
    back = first.load("shared")
    assert back.turns[-1].index == 12 and back.aggregates.turns == context.aggregates.turns + 1
    first.close()
    second.close()


def test_a_failed_turn_write_leaves_the_previous_state(store_url):
    store = SessionStore(store_url)
    store.create("s", Preferences())
    add_turns(store, "s", 3)

    def fail_on_aggregates(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("UPDATE SESSIONS") and "aggregates" in statement:
            raise RuntimeError("disk on fire")

    sa.event.listen(store.engine, "before_cursor_execute", fail_on_aggregates)
    with pytest.raises(RuntimeError, match="disk on fire"):
        store.save_turn("s", turn(4), Aggregates(turns=4))
    sa.event.remove(store.engine, "before_cursor_execute", fail_on_aggregates)
    loaded = store.load("s")
    assert [t.index for t in loaded.turns] == [1, 2, 3]  # the turn row was rolled back too
    assert loaded.aggregates.turns == 3
    store.close()


def test_concurrent_writers_from_threads(store_url):
    stores = [SessionStore(store_url) for _ in range(2)]
    errors: list[BaseException] = []

    def writer(k: int) -> None:
        try:
            store = stores[k % 2]
            store.create(f"w{k}", Preferences())
            add_turns(store, f"w{k}", 12)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    for k in range(4):
        loaded = stores[0].load(f"w{k}")
        assert [t.index for t in loaded.turns] == list(range(3, 13))
    for store in stores:
        store.close()


def test_retention_purges_only_old_sessions(store_url):
    store = SessionStore(store_url)
    store.create("old", Preferences())
    add_turns(store, "old", 2)
    with store.engine.begin() as connection:
        connection.execute(sa.text("UPDATE sessions SET updated_at = :t WHERE id = 'old'"),
                           {"t": time.time() - 3600})  # fmt: skip
    store.create("new", Preferences())
    assert store.purge_older_than(600) == 1
    assert store.load("old") is None and store.load("new") is not None
    with store.engine.connect() as connection:
        assert connection.execute(sa.text("SELECT COUNT(*) FROM turns")).scalar() == 0
    store.close()


def test_a_database_of_the_sqlite_only_store_is_migrated_in_place(tmp_path):
    path = tmp_path / "legacy.db"
    legacy = sqlite3.connect(path)
    legacy.executescript("""
        CREATE TABLE sessions (id TEXT PRIMARY KEY, created_at REAL NOT NULL, updated_at REAL NOT NULL,
                               preferences TEXT NOT NULL, aggregates TEXT NOT NULL);
        CREATE TABLE turns (session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
                            idx INTEGER NOT NULL, record TEXT NOT NULL, memory BLOB,
                            PRIMARY KEY (session_id, idx));
    """)  # fmt: skip
    legacy.execute("INSERT INTO sessions VALUES ('old', 1, 2, ?, ?)",
                   (json.dumps({"speaker": "arjun"}), json.dumps({"turns": 1})))  # fmt: skip
    legacy.execute("INSERT INTO turns VALUES ('old', 1, ?, NULL)",
                   (json.dumps({"index": 1, "user_text": "నమస్కారం"}),))  # fmt: skip
    legacy.commit()
    legacy.close()
    store = SessionStore(str(path))  # a plain path works too
    loaded = store.load("old")
    assert loaded.preferences.speaker == "arjun" and loaded.turns[0].user_text == "నమస్కారం"
    assert store.revision() == HEAD
    with store.engine.connect() as connection:
        indexes = {i["name"] for i in sa.inspect(connection).get_indexes("sessions")}
    assert "ix_sessions_updated_at" in indexes
    store.close()


def test_store_urls():
    assert database_url("sqlite:///data/x.db").database == "data/x.db"
    assert database_url("sqlite:////abs/x.db").database == "/abs/x.db"
    assert database_url(":memory:").database == ":memory:"
    assert database_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    with pytest.raises(ValueError, match="unsupported store URL"):
        database_url("mysql://h/db")


def test_stores_opening_a_fresh_database_together_migrate_it_once(store_url):
    """Replicas that start at the same moment: one migrates, the others wait and find it done."""
    opened: list[SessionStore] = []
    errors: list[BaseException] = []

    def open_store() -> None:
        try:
            opened.append(SessionStore(store_url))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert {store.revision() for store in opened} == {HEAD}
    for store in opened:
        store.close()
