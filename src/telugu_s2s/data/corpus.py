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

from telugu_s2s.labels import EMOTIONS, MEMORY_KINDS, STYLES, TOPICS  # noqa: F401 (re-exported)

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
    # Generated dialogs: every valid reply per style, slots filled (the voiced one among them).
    valid_replies: dict[str, tuple[str, ...]] | None = field(default=None, compare=False)

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
    label: str | None = None  # the dialog's topic, where it is given (generated dialogs)
    split: str | None = None  # the split a generator assigned (held-out names and phrasings)
    style: str | None = None  # the reply style that is voiced (generated dialogs)
    # Generated dialogs: slot var -> (lexicon type, value), e.g. {"home": ("place", "గుంటూరు")}.
    slots: dict[str, tuple[str, str]] | None = field(default=None, compare=False)

    @property
    def topic(self) -> str:
        if self.label:
            return self.label
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
                valid_replies=(
                    {k: tuple(v) for k, v in raw["valid_replies"].items()}
                    if raw.get("valid_replies")
                    else None
                ),
            )
        )
    return Dialog(
        dialog_id=dialog_id, turns=tuple(turns), label=obj.get("topic"),
        split=obj.get("split"), style=obj.get("style"),
        slots={k: tuple(v) for k, v in obj["slots"].items()} if obj.get("slots") else None,
    )  # fmt: skip


def dialog_to_json(d: Dialog) -> dict:
    """The JSONL object of a dialog (the inverse of `_parse_dialog`)."""
    turns = []
    for t in d.turns:
        raw = {"user": t.user, "assistant": t.assistant, "topic": t.topic,
               "sentiment": t.sentiment, "emotion": t.emotion}  # fmt: skip
        if t.formal is not None:
            raw |= {"formal": t.formal, "casual": t.casual}
        if t.depends_on:
            raw |= {"depends_on": list(t.depends_on), "memory": t.memory}
        if t.valid_replies:
            raw["valid_replies"] = {k: list(v) for k, v in t.valid_replies.items()}
        turns.append(raw)
    obj = {"dialog_id": d.dialog_id}
    obj |= {k: v for k, v in (("topic", d.label), ("split", d.split), ("style", d.style)) if v}
    if d.slots:
        obj["slots"] = {k: list(v) for k, v in d.slots.items()}
    return obj | {"turns": turns}


def load_corpus(corpus_dir: str | Path = DEFAULT_CORPUS_DIR) -> list[Dialog]:
    """Read every `*.jsonl` under `corpus_dir` (or one `.jsonl` file), by file name then line."""
    corpus_dir = Path(corpus_dir)
    files = [corpus_dir] if corpus_dir.is_file() else sorted(corpus_dir.glob("*.jsonl"))
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


def validate(dialogs: list[Dialog], unique: bool = True, max_turns: int = 10) -> list[str]:
    """Return every schema problem as a readable line (empty list = valid).

    `unique` asks every user utterance and reply to be new (the hand-written corpus); a
    generated corpus reuses sentences across dialogs on purpose.
    """
    problems: list[str] = []
    seen_ids: set[str] = set()
    seen_user: dict[str, str] = {}
    seen_reply: dict[str, str] = {}
    for d in dialogs:
        if d.dialog_id in seen_ids:
            problems.append(f"{d.dialog_id}: duplicate dialog_id")
        seen_ids.add(d.dialog_id)
        if not 3 <= len(d.turns) <= max_turns:
            problems.append(f"{d.dialog_id}: has {len(d.turns)} turns, needs 3 to {max_turns}")
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
            if not unique:
                continue
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


def main(argv: list[str] | None = None) -> int:
    """Validate the hand-written corpus, or with --stats print the full corpus's figures."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m telugu_s2s.data.corpus")
    parser.add_argument("corpus_dir", nargs="?", default=str(DEFAULT_CORPUS_DIR))
    parser.add_argument(
        "--stats",
        action="store_true",
        help="generate the configured corpus (conf/synth.yaml) and print one JSON",
    )
    parser.add_argument("--dialogs", type=int, help="with --stats: generate this many dialogs")
    args = parser.parse_args(argv)  # fmt: skip
    natural = load_corpus(args.corpus_dir)
    errs = validate(natural)
    if not args.stats:
        print(json.dumps(summary(natural), ensure_ascii=False, indent=2))
        print("\n".join(errs) if errs else "valid")
        return 1 if errs else 0
    from dataclasses import replace

    from telugu_s2s.data.generate import corpus_stats, generate_dialogs
    from telugu_s2s.data.synth import generator_config
    from telugu_s2s.data.voices import load_synth_config

    cfg = generator_config(load_synth_config())
    if args.dialogs:
        cfg = replace(cfg, dialogs=args.dialogs)
    generated = generate_dialogs(cfg)
    errs += validate(generated, unique=False, max_turns=cfg.max_turns)
    stats = corpus_stats(generated, cfg) | {"natural": summary(natural), "problems": len(errs)}
    print(json.dumps(stats, ensure_ascii=False))
    return 1 if errs else 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
