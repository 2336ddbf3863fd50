"""Models that are counts, not `nn.Module`s (the text topic model, the reply planner): one
gzipped JSON file with a `format` tag, loaded with clear errors. Standard library only."""

from __future__ import annotations

import gzip
import json
from pathlib import Path


def save_json_export(path: str | Path, fmt: str, state: dict) -> Path:
    """A model that is counts, not an `nn.Module` (the text topic model, the reply planner):
    `state` with its `format` tag as one gzipped JSON file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as f:
        json.dump({"format": fmt, **state}, f, ensure_ascii=False, separators=(",", ":"))
    return path


def load_json_export(path: str | Path, fmt: str, what: str, train_command: str) -> dict:
    """The state saved by `save_json_export`, with clear errors: missing (how to make it),
    unreadable, or another format."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no {path.name} in {path.parent}: train it with `{train_command}`")
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            state = json.load(f)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path} is not a {what}: {exc}") from exc
    if not isinstance(state, dict) or state.get("format") != fmt:
        raise ValueError(f"{path} is not a {fmt} file")
    return state
