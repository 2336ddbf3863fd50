"""The embedded Telugu dialog corpus: schema, loading and validation.

Each `data/corpus/<topic>.jsonl` line is one dialog:

    {"dialog_id": "food_01", "turns": [
        {"user": "...", "assistant": "...",          # Telugu script only
         "topic": "food", "sentiment": 0.4,           # sentiment of the user's utterance, -1..1
         "emotion": "happy",                          # one of EMOTIONS
         "formal": "...", "casual": "...",            # optional reply variants (both or neither)
         "depends_on": [0], "memory": "name"}]}       # optional: earlier turn(s) this reply needs

Only the standard library is used so that the validator runs anywhere.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

TOPICS: tuple[str, ...] = (
    "greetings",
    "weather",
    "food",
    "travel",
    "health",
    "education",
    "technology",
    "entertainment",
    "shopping",
    "festivals",
)
EMOTIONS: tuple[str, ...] = (
    "neutral",
    "happy",
    "sad",
    "angry",
    "anxious",
    "surprised",
    "curious",
    "grateful",
)
MEMORY_KINDS: tuple[str, ...] = ("name", "city", "plan", "preference")
STYLES: tuple[str, ...] = ("formal", "casual")

# Telugu block plus the few marks a sentence needs; no Latin letters, no digits.
_TELUGU_CHAR = re.compile(r"[\u0C00-\u0C7F]")
_ALLOWED = re.compile(r"^[\u0C00-\u0C7F\u200c\u200d .,?!'\-]+$")

DEFAULT_CORPUS_DIR = (
    Path(__file__).resolve().parents[3] / "data" / "corpus"
)  # stdlib-only on purpose


@dataclass(frozen=True)
class Turn:
    dialog_id: str
    index: int
    user: str
    assistant: str
    topic: str
    sentiment: float
    emotion: str
    formal: str | None = None
    casual: str | None = None
    depends_on: tuple[int, ...] = ()
    memory: str | None = None

    def reply(self, style: str | None = None) -> str:
        """The assistant reply in `style` (formal/casual), falling back to the default one."""
        if style == "formal" and self.formal:
            return self.formal
        if style == "casual" and self.casual:
            return self.casual
        return self.assistant


@dataclass(frozen=True)
class Dialog:
    dialog_id: str
    turns: tuple[Turn, ...] = field(default_factory=tuple)

    @property
    def topic(self) -> str:
        return Counter(t.topic for t in self.turns).most_common(1)[0][0]


class CorpusError(ValueError):
    """Raised with every problem found, one per line."""


def _parse_dialog(obj: dict, where: str) -> Dialog:
    dialog_id = obj["dialog_id"]
    turns = []
    for i, raw in enumerate(obj["turns"]):
        turns.append(
            Turn(
                dialog_id=dialog_id,
                index=i,
                user=raw["user"].strip(),
                assistant=raw["assistant"].strip(),
                topic=raw["topic"],
                sentiment=float(raw["sentiment"]),
                emotion=raw["emotion"],
                formal=(raw.get("formal") or "").strip() or None,
                casual=(raw.get("casual") or "").strip() or None,
                depends_on=tuple(raw.get("depends_on") or ()),
                memory=raw.get("memory"),
            )
        )
    return Dialog(dialog_id=dialog_id, turns=tuple(turns))


def load_corpus(corpus_dir: str | Path = DEFAULT_CORPUS_DIR) -> list[Dialog]:
    """Read every `*.jsonl` under `corpus_dir`, sorted by file name then line."""
    corpus_dir = Path(corpus_dir)
    files = sorted(corpus_dir.glob("*.jsonl"))
    if not files:
        raise CorpusError(f"no *.jsonl corpus files in {corpus_dir}")
    dialogs = []
    for path in files:
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            where = f"{path.name}:{lineno}"
            try:
                dialogs.append(_parse_dialog(json.loads(line), where))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
                raise CorpusError(f"{where}: cannot parse dialog: {err!r}") from err
    return dialogs


def is_telugu(text: str) -> bool:
    """Telugu script only (plus spaces and sentence punctuation), and not empty."""
    return bool(_ALLOWED.match(text)) and bool(_TELUGU_CHAR.search(text))


def validate(dialogs: list[Dialog]) -> list[str]:
    """Return every schema problem as a readable line (empty list = valid)."""
    problems: list[str] = []
    seen_ids: set[str] = set()
    seen_user: dict[str, str] = {}
    seen_reply: dict[str, str] = {}
    for d in dialogs:
        if d.dialog_id in seen_ids:
            problems.append(f"{d.dialog_id}: duplicate dialog_id")
        seen_ids.add(d.dialog_id)
        if not 3 <= len(d.turns) <= 10:
            problems.append(f"{d.dialog_id}: has {len(d.turns)} turns, needs 3 to 10")
        for t in d.turns:
            where = f"{d.dialog_id}[{t.index}]"
            if t.topic not in TOPICS:
                problems.append(f"{where}: unknown topic {t.topic!r}")
            if not -1.0 <= t.sentiment <= 1.0:
                problems.append(f"{where}: sentiment {t.sentiment} outside [-1, 1]")
            if t.emotion not in EMOTIONS:
                problems.append(f"{where}: unknown emotion {t.emotion!r}")
            for name in ("user", "assistant", "formal", "casual"):
                text = getattr(t, name)
                if text is not None and not is_telugu(text):
                    problems.append(f"{where}: {name} is not pure Telugu script: {text!r}")
            if (t.formal is None) != (t.casual is None):
                problems.append(f"{where}: give both formal and casual variants, or neither")
            if t.formal is not None and t.formal == t.casual:
                problems.append(f"{where}: formal and casual variants are identical")
            if any(not 0 <= j < t.index for j in t.depends_on):
                problems.append(f"{where}: depends_on {t.depends_on} must name earlier turns")
            if bool(t.depends_on) != (t.memory is not None):
                problems.append(f"{where}: depends_on and memory go together")
            if t.memory is not None and t.memory not in MEMORY_KINDS:
                problems.append(f"{where}: unknown memory kind {t.memory!r}")
            if t.user in seen_user:
                problems.append(f"{where}: duplicate user utterance (also {seen_user[t.user]})")
            seen_user.setdefault(t.user, where)
            for reply in {t.assistant, t.formal, t.casual} - {None}:
                if reply in seen_reply and seen_reply[reply] != where:
                    problems.append(f"{where}: duplicate reply (also {seen_reply[reply]})")
                seen_reply.setdefault(reply, where)
    return problems


def summary(dialogs: list[Dialog]) -> dict:
    """Corpus figures: dialogs, turns, per-topic counts, variants, context-dependent turns."""
    turns = [t for d in dialogs for t in d.turns]
    return {
        "dialogs": len(dialogs),
        "turns": len(turns),
        "per_topic": {k: sum(t.topic == k for t in turns) for k in TOPICS},
        "per_emotion": {k: sum(t.emotion == k for t in turns) for k in EMOTIONS},
        "style_variants": sum(t.formal is not None for t in turns),
        "context_dependent": sum(bool(t.depends_on) for t in turns),
    }


def all_turns(dialogs: list[Dialog]) -> list[Turn]:
    return [t for d in dialogs for t in d.turns]


if __name__ == "__main__":
    import sys

    ds = load_corpus(sys.argv[1] if len(sys.argv) > 1 else DEFAULT_CORPUS_DIR)
    errs = validate(ds)
    print(json.dumps(summary(ds), ensure_ascii=False, indent=2))
    print("\n".join(errs) if errs else "valid")
    sys.exit(1 if errs else 0)
