"""Dialog templates: load and check `templates/*.yaml` (format: docs/corpus_templates.md)."""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import yaml

from telugu_s2s.data.generate.lexicon import TYPES
from telugu_s2s.inflect import CASES
from telugu_s2s.labels import EMOTIONS, MEMORY_KINDS, TOPICS
from telugu_s2s.slot_values import SLOT

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
_TEXT = re.compile(r"^[\u0C00-\u0C7F\u200c\u200d .,?!'\-]*$")
# Slot vars every dialog has: the user's name and home town.
DIALOG_SLOTS: dict[str, str] = {"name": "name", "home": "place"}
MIN_USER_PHRASINGS = 3  # one of them is kept for evaluation only
MIN_REPLY_PHRASINGS = 2
MIN_RECALL_TURNS = 4


@dataclass(frozen=True)
class TurnTemplate:
    key: str  # "<schema or file>/<position>/<alternative>": names its phrasings in split checks
    user: tuple[str, ...]
    formal: tuple[str, ...]
    casual: tuple[str, ...]
    sentiment: float
    emotion: str
    facts: tuple[tuple[str, str], ...] = ()  # (slot var, memory kind) this turn states
    recall: str | None = None  # slot var this turn needs from an earlier one

    def held_out_phrasing(self) -> int:
        """Index of the user phrasing kept for validation and test dialogs only."""
        return zlib.crc32(self.key.encode()) % len(self.user)

    def user_phrasings(self, evaluation: bool) -> tuple[str, ...]:
        held = self.held_out_phrasing()
        if evaluation:
            return (self.user[held],)
        return tuple(p for i, p in enumerate(self.user) if i != held)


@dataclass(frozen=True)
class Schema:
    id: str
    topic: str
    slots: dict[str, str]  # slot var -> lexicon type
    turns: tuple[tuple[TurnTemplate, ...], ...]  # each position: alternative turns


@dataclass(frozen=True)
class Templates:
    schemas: tuple[Schema, ...]
    fillers: dict[str, tuple[TurnTemplate, ...]]  # topic -> standalone turns
    openers: tuple[TurnTemplate, ...]
    recalls: dict[str, tuple[TurnTemplate, ...]]  # slot var (name, home) -> recall turns
    prefixes: tuple[str, ...]

    def prefixes_for(self, evaluation: bool) -> tuple[str, ...]:
        """Discourse openers, a quarter of them kept for evaluation only."""
        held = {p for p in self.prefixes if zlib.crc32(p.encode()) % 4 == 0}
        return tuple(p for p in self.prefixes if (p in held) == evaluation)


def _turn(raw: dict, key: str, problems: list[str]) -> TurnTemplate:
    def texts(name: str, minimum: int) -> tuple[str, ...]:
        values = tuple(str(v).strip() for v in raw.get(name) or ())
        if len(values) < minimum:
            problems.append(f"{key}: {name} needs at least {minimum} phrasings, has {len(values)}")
        return values

    turn = TurnTemplate(
        key=key,
        user=texts("user", MIN_USER_PHRASINGS),
        formal=texts("formal", MIN_REPLY_PHRASINGS),
        casual=texts("casual", MIN_REPLY_PHRASINGS),
        sentiment=float(raw.get("sentiment", 0.0)),
        emotion=str(raw.get("emotion")),
        facts=tuple((str(k), str(v)) for k, v in (raw.get("facts") or {}).items()),
        recall=raw.get("recall"),
    )
    if turn.emotion not in EMOTIONS:
        problems.append(f"{key}: unknown emotion {turn.emotion!r}")
    if not -1.0 <= turn.sentiment <= 1.0:
        problems.append(f"{key}: sentiment {turn.sentiment} outside [-1, 1]")
    for var, kind in turn.facts:
        if kind not in MEMORY_KINDS:
            problems.append(f"{key}: fact {var} has unknown memory kind {kind!r}")
    if turn.recall:
        for reply in turn.formal + turn.casual:
            if not any(v == turn.recall for v, _ in SLOT.findall(reply)):
                problems.append(f"{key}: recall reply does not say {{{turn.recall}}}: {reply!r}")
    return turn


def check_text(text: str, slots: dict[str, str], where: str, problems: list[str]) -> None:
    """Slots must be declared vars or lexicon types, cases known, the rest Telugu script."""
    for var, case in SLOT.findall(text):
        if var not in slots and var not in TYPES:
            problems.append(f"{where}: unknown slot {{{var}}} in {text!r}")
        if case and case not in CASES:
            problems.append(f"{where}: unknown case .{case} in {text!r}")
    if not _TEXT.match(SLOT.sub("", text)):
        problems.append(f"{where}: characters outside Telugu script in {text!r}")


def _check_turn(turn: TurnTemplate, slots: dict[str, str], problems: list[str]) -> None:
    for text in turn.user + turn.formal + turn.casual:
        check_text(text, slots, turn.key, problems)


def _alternatives(raw: dict, key: str, problems: list[str]) -> tuple[TurnTemplate, ...]:
    options = raw["choose"] if "choose" in raw else [raw]
    return tuple(_turn(alt, f"{key}/{i}", problems) for i, alt in enumerate(options))


def _schema(raw: dict, topic: str, problems: list[str]) -> Schema:
    sid = str(raw["id"])
    slots = DIALOG_SLOTS | {str(k): str(v) for k, v in (raw.get("slots") or {}).items()}
    for var, kind in slots.items():
        if kind not in TYPES:
            problems.append(f"{sid}: slot {var} has unknown lexicon type {kind!r}")
    turns = tuple(
        _alternatives(t, f"{sid}/{i}", problems) for i, t in enumerate(raw.get("turns") or [])
    )
    stated: dict[str, int] = {}
    for i, options in enumerate(turns):
        for turn in options:
            _check_turn(turn, slots, problems)
            if turn.recall:
                if turn.recall not in stated:
                    problems.append(f"{turn.key}: recalls {turn.recall}, stated by no earlier turn")
                elif i - stated[turn.recall] < MIN_RECALL_TURNS:
                    problems.append(
                        f"{turn.key}: recall within {MIN_RECALL_TURNS} turns of its fact"
                    )
        for turn in options:
            for var, _ in turn.facts:
                stated.setdefault(var, i)
    if len(turns) < 3:
        problems.append(f"{sid}: needs at least 3 turns")
    return Schema(sid, topic, slots, turns)


def load_templates(template_dir: str | Path = TEMPLATE_DIR) -> Templates:
    """Every topic file and `common.yaml`. Raises ValueError listing every problem."""
    template_dir = Path(template_dir)
    problems: list[str] = []
    schemas: list[Schema] = []
    fillers: dict[str, tuple[TurnTemplate, ...]] = {}
    for topic in TOPICS:
        path = template_dir / f"{topic}.yaml"
        if not path.exists():
            problems.append(f"{path}: missing")
            continue
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        schemas += [_schema(raw, topic, problems) for raw in doc.get("schemas") or []]
        fillers[topic] = tuple(
            _turn(raw, f"{topic}/filler/{i}", problems)
            for i, raw in enumerate(doc.get("fillers") or [])
        )
        for turn in fillers[topic]:
            _check_turn(turn, DIALOG_SLOTS, problems)
    common = yaml.safe_load((template_dir / "common.yaml").read_text(encoding="utf-8")) or {}
    openers = tuple(
        _turn(raw, f"common/opener/{i}", problems)
        for i, raw in enumerate(common.get("openers", []))
    )
    recalls = {
        str(var): tuple(
            _turn(raw, f"common/recall/{var}/{i}", problems) for i, raw in enumerate(turns)
        )
        for var, turns in (common.get("recalls") or {}).items()
    }
    for turn in openers + tuple(t for ts in recalls.values() for t in ts):
        _check_turn(turn, DIALOG_SLOTS, problems)
    prefixes = tuple(str(p) for p in common.get("prefixes") or ())
    for p in prefixes:
        check_text(p, {}, "common/prefixes", problems)
    ids = [s.id for s in schemas]
    problems += [f"{i}: duplicate schema id" for i in sorted({i for i in ids if ids.count(i) > 1})]
    if problems:
        raise ValueError("dialog templates are invalid:\n" + "\n".join(problems))
    return Templates(tuple(schemas), fillers, openers, recalls, prefixes)
