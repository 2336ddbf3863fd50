"""A seeded generator of Telugu dialogs in the corpus schema (docs/corpus_templates.md).

python -m telugu_s2s.data.generate --dialogs 5000 --out data/build/generated.jsonl
python -m telugu_s2s.data.corpus --stats
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

from telugu_s2s.data.corpus import Dialog, dialog_to_json
from telugu_s2s.data.generate.builder import (
    SPLITS,
    DialogGenerator,
    GeneratorConfig,
    recall_gap,
)
from telugu_s2s.data.generate.templates import MIN_RECALL_TURNS
from telugu_s2s.labels import TOPICS

__all__ = ["DialogGenerator", "GeneratorConfig", "corpus_stats", "generate_dialogs", "write_jsonl"]
PERSON_TYPES = ("name", "male_name", "female_name")


def generate_dialogs(cfg: GeneratorConfig | None = None) -> list[Dialog]:
    return DialogGenerator(cfg).generate()


def write_jsonl(dialogs: list[Dialog], path: str | Path) -> None:
    """One dialog a line, written to a temp file and renamed (never half-written)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with tmp.open("w", encoding="utf-8") as f:
        for d in dialogs:
            f.write(json.dumps(dialog_to_json(d), ensure_ascii=False) + "\n")
    tmp.replace(path)


def is_long_range(dialog: Dialog, turn, cfg: GeneratorConfig) -> bool:
    """A recall turn at least MIN_RECALL_TURNS turns and `min_recall_seconds` after its fact."""
    if not turn.depends_on:
        return False
    turns, seconds = recall_gap(dialog, turn, cfg)
    return turns >= MIN_RECALL_TURNS and seconds >= cfg.min_recall_seconds


def corpus_stats(dialogs: list[Dialog], cfg: GeneratorConfig | None = None) -> dict:
    """The figures `python -m telugu_s2s.data.corpus --stats` prints."""
    cfg = cfg or GeneratorConfig()
    turns = [t for d in dialogs for t in d.turns]
    slot_values = [v for d in dialogs for v in (d.slots or {}).values()]
    long_range = [d for d in dialogs if any(is_long_range(d, t, cfg) for t in d.turns)]
    return {
        "dialogs": len(dialogs),
        "turns": len(turns),
        "distinct_user_sentences": len({t.user for t in turns}),
        "distinct_replies": len({t.assistant for t in turns}),
        "names": len({v for kind, v in slot_values if kind in PERSON_TYPES}),
        "places": len({v for kind, v in slot_values if kind == "place"}),
        "topics": {k: sum(d.topic == k for d in dialogs) for k in TOPICS},
        "recall_turns": sum(is_long_range(d, t, cfg) for d in dialogs for t in d.turns),
        "recall_dialogs": len(long_range),
        "recall_dialog_fraction": round(len(long_range) / max(1, len(dialogs)), 4),
        "memory_kinds": dict(Counter(t.memory for t in turns if t.memory)),
        "emotions": dict(Counter(t.emotion for t in turns)),
        "styles": dict(Counter(d.style for d in dialogs)),
        "turns_per_dialog": round(len(turns) / max(1, len(dialogs)), 2),
        "splits": {s: sum(d.split == s for d in dialogs) for s in SPLITS},
    }
