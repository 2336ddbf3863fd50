"""`python -m telugu_s2s.serving.migrations URL`: upgrade a store's database to head."""

from __future__ import annotations

import sys

from telugu_s2s.serving.store import SessionStore


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise SystemExit("usage: python -m telugu_s2s.serving.migrations STORE_URL")
    store = SessionStore(argv[0])  # opening a store applies every pending migration
    print(f"{store.dialect} store at revision {store.revision()}")
    store.close()


if __name__ == "__main__":
    main(sys.argv[1:])
