"""Alembic migrations of the session store; `SessionStore` applies them on start-up.

By hand: `python -m telugu_s2s.serving.migrations postgresql://user@host/db` (or a
sqlite:/// URL) upgrades that database to the newest revision.
"""

from __future__ import annotations

from pathlib import Path

MIGRATIONS_DIR = Path(__file__).resolve().parent
