"""Build seeded dialogs from the templates and the slot lexicon.

Every dialog is a pure function of (config, index): its topic cycles through the 10
topics, its split, schema, slot values, phrasings and reply style are drawn from a
generator seeded by the index. Validation and test dialogs draw person names and places
from pools that training never uses, and their user sentences from phrasings (and
discourse openers) kept out of training.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from telugu_s2s.data.corpus import Dialog, Turn
from telugu_s2s.data.generate.lexicon import Entry, load_lexicon
from telugu_s2s.data.generate.templates import (
    MIN_RECALL_TURNS,
    Schema,
    Templates,
    TurnTemplate,
    load_templates,
)
from telugu_s2s.labels import STYLES, TOPICS
from telugu_s2s.slot_values import SLOT

SPLITS: tuple[str, ...] = ("train", "validation", "test")
HELD_OUT_TYPES: tuple[str, ...] = ("male_name", "female_name", "place")


@dataclass(frozen=True)
class GeneratorConfig:
    dialogs: int = 6000
    seed: int = 2026
    val_fraction: float = 0.05
    test_fraction: float = 0.05
    # Share of each held-out type (names, places) reserved for validation, and again for test.
    eval_pool_fraction: float = 0.15
    opener_prob: float = 0.7  # the user introduces themselves (name, often home town) first
    generic_recall_prob: float = 0.5  # a late turn asks for the name or home town again
    prefix_prob: float = 0.45  # a discourse opener before a user sentence (21k distinct at 6000)
    max_turns: int = 14
    min_recall_seconds: float = 20.0
    # Speech-time estimate for the recall distance: espeak-ng Telugu at the voices' rates,
    # plus the pauses a timeline puts between utterances.
    chars_per_second: float = 12.0
    pause_seconds: float = 0.6


def speech_seconds(texts: list[str], cfg: GeneratorConfig) -> float:
    """Estimated time to say `texts` one after another, with a pause after each."""
    return sum(len(t) / cfg.chars_per_second + cfg.pause_seconds for t in texts)


def recall_gap(dialog: Dialog, turn: Turn, cfg: GeneratorConfig) -> tuple[int, float]:
    """(turns, estimated seconds) between the fact a recall turn needs and the recall turn."""
    fact = turn.depends_on[0]
    texts = [dialog.turns[fact].assistant]
    texts += [x for t in dialog.turns[fact + 1 : turn.index] for x in (t.user, t.assistant)]
    return turn.index - fact, speech_seconds(texts, cfg)


def split_pools(lexicon: dict[str, tuple[Entry, ...]], cfg: GeneratorConfig) -> dict:
    """(split, type) -> entries. Names and places are partitioned so no split shares one."""
    pools: dict[tuple[str, str], tuple[Entry, ...]] = {}
    for kind, entries in lexicon.items():
        if kind not in HELD_OUT_TYPES:
            for split in SPLITS:
                pools[(split, kind)] = entries
            continue
        shuffled = list(entries)
        random.Random(f"{cfg.seed}:pool:{kind}").shuffle(shuffled)
        n = max(1, round(cfg.eval_pool_fraction * len(shuffled)))
        pools[("validation", kind)] = tuple(shuffled[:n])
        pools[("test", kind)] = tuple(shuffled[n : 2 * n])
        pools[("train", kind)] = tuple(shuffled[2 * n :])
    for split in SPLITS:
        pools[(split, "name")] = pools[(split, "male_name")] + pools[(split, "female_name")]
    return pools


def assign_splits(cfg: GeneratorConfig) -> list[str]:
    """Split of each dialog index, stratified by topic (each split sees every topic)."""
    splits = ["train"] * cfg.dialogs
    for k in range(len(TOPICS)):
        indices = list(range(k, cfg.dialogs, len(TOPICS)))
        random.Random(f"{cfg.seed}:splits:{k}").shuffle(indices)
        n_val = math.ceil(cfg.val_fraction * len(indices))
        n_test = math.ceil(cfg.test_fraction * len(indices))
        for i in indices[:n_val]:
            splits[i] = "validation"
        for i in indices[n_val : n_val + n_test]:
            splits[i] = "test"
    return splits


class _Slots:
    """The dialog's slot values, drawn on first use; two vars of one type never share a value."""

    def __init__(self, declared: dict[str, str], pools: dict, split: str, rng: random.Random):
        self.declared, self.pools, self.split, self.rng = dict(declared), pools, split, rng
        self.values: dict[str, Entry] = {}

    def entry(self, var: str) -> Entry:
        if var not in self.values:
            kind = self.declared.get(var, var)  # an undeclared lexicon type is its own var
            taken = {e.word for v, e in self.values.items() if self.declared.get(v, v) == kind}
            choices = [e for e in self.pools[(self.split, kind)] if e.word not in taken]
            self.values[var] = self.rng.choice(choices or self.pools[(self.split, kind)])
            self.declared.setdefault(var, kind)
        return self.values[var]

    def fill(self, text: str) -> str:
        return SLOT.sub(lambda m: self.entry(m.group(1)).form(m.group(2) or "nom"), text)


@dataclass
class _Placed:
    template: TurnTemplate
    user: str = ""
    formal: str = ""
    casual: str = ""


class DialogGenerator:
    def __init__(self, cfg: GeneratorConfig | None = None, templates: Templates | None = None,
                 lexicon: dict[str, tuple[Entry, ...]] | None = None):  # fmt: skip
        self.cfg = cfg or GeneratorConfig()
        self.templates = templates or load_templates()
        self.pools = split_pools(lexicon or load_lexicon(), self.cfg)
        self.by_topic = {t: [s for s in self.templates.schemas if s.topic == t] for t in TOPICS}
        missing = [t for t, s in self.by_topic.items() if not s]
        if missing:
            raise ValueError(f"no dialog schemas for topics {missing}")
        self.splits = assign_splits(self.cfg)

    def gap_seconds(self, turns: list[_Placed], fact: int, recall: int, style: str) -> float:
        """Speech time from the end of the fact's user utterance to the recall's start."""
        texts = [getattr(turns[fact], style)]
        texts += [x for t in turns[fact + 1 : recall] for x in (t.user, getattr(t, style))]
        return speech_seconds(texts, self.cfg)

    def dialog(self, index: int) -> Dialog:
        cfg = self.cfg
        rng = random.Random(f"{cfg.seed}:dialog:{index}")
        topic = TOPICS[index % len(TOPICS)]
        split = self.splits[index]
        evaluation = split != "train"
        schema: Schema = rng.choice(self.by_topic[topic])
        style = rng.choice(STYLES)
        slots = _Slots(schema.slots, self.pools, split, rng)
        gender = rng.choice(("male_name", "female_name"))
        slots.values["name"] = rng.choice(self.pools[(split, gender)])
        prefixes = self.templates.prefixes_for(evaluation)

        def place(template: TurnTemplate, first: bool) -> _Placed:
            user = slots.fill(rng.choice(template.user_phrasings(evaluation)))
            if prefixes and not first and rng.random() < cfg.prefix_prob:
                user = rng.choice(prefixes) + user
            return _Placed(template, user, slots.fill(rng.choice(template.formal)),
                           slots.fill(rng.choice(template.casual)))  # fmt: skip

        chosen = [rng.choice(options) for options in schema.turns]
        states_name = any(var == "name" for t in chosen for var, _ in t.facts)
        turns: list[_Placed] = []
        if self.templates.openers and not states_name and rng.random() < cfg.opener_prob:
            turns.append(place(rng.choice(self.templates.openers), first=True))
        turns += [place(t, first=not turns) for t in chosen]
        fillers = list(self.templates.fillers.get(topic, ()))
        rng.shuffle(fillers)

        def stretch(fact: int, recall: int) -> int:
            """Insert fillers before `recall` until it is far enough from `fact`."""
            while (
                fillers
                and len(turns) < cfg.max_turns
                and (
                    recall - fact < MIN_RECALL_TURNS
                    or self.gap_seconds(turns, fact, recall, style) < cfg.min_recall_seconds
                )
            ):
                turns.insert(recall, place(fillers.pop(), first=False))
                recall += 1
            return recall

        i = 0
        while i < len(turns):  # the schema's own recall turns
            fact = self.fact_turn(turns, turns[i].template.recall or "", i)
            i = (stretch(fact, i) if fact >= 0 else i) + 1
        stated = [
            var for var in ("name", "home")
            if var in self.templates.recalls and self.fact_turn(turns, var, len(turns)) >= 0
        ]  # fmt: skip
        if stated and len(turns) < cfg.max_turns and rng.random() < cfg.generic_recall_prob:
            var = rng.choice(stated)
            turns.append(place(rng.choice(self.templates.recalls[var]), first=False))
            stretch(self.fact_turn(turns, var, len(turns) - 1), len(turns) - 1)
        return self.to_dialog(index, topic, split, style, turns, slots)

    @staticmethod
    def fact_turn(turns: list[_Placed], var: str, before: int) -> int:
        """The first turn before `before` that states slot var `var` (-1 if none)."""
        for i, placed in enumerate(turns[:before]):
            if any(v == var for v, _ in placed.template.facts):
                return i
        return -1

    def to_dialog(self, index: int, topic: str, split: str, style: str,
                  turns: list[_Placed], slots: _Slots) -> Dialog:  # fmt: skip
        dialog_id = f"gen_{index:05d}_{topic}"
        out = []
        for i, placed in enumerate(turns):
            t = placed.template
            depends_on, memory = (), None
            fact = self.fact_turn(turns, t.recall, i) if t.recall else -1
            if fact >= 0:
                depends_on = (fact,)
                memory = dict(turns[fact].template.facts)[t.recall]
            valid = {s: tuple(dict.fromkeys(slots.fill(p) for p in getattr(t, s))) for s in STYLES}
            formal, casual = placed.formal, placed.casual
            if formal == casual:  # a template may phrase both styles alike; keep the pair distinct
                formal = casual = None
            out.append(Turn(
                dialog_id=dialog_id, index=i, user=placed.user,
                assistant=getattr(placed, style), topic=topic,
                sentiment=t.sentiment, emotion=t.emotion, formal=formal, casual=casual,
                depends_on=depends_on, memory=memory, valid_replies=valid,
            ))  # fmt: skip
        values = {v: (slots.declared.get(v, v), e.word) for v, e in slots.values.items()}
        return Dialog(dialog_id, tuple(out), label=topic, split=split, style=style, slots=values)

    def generate(self) -> list[Dialog]:
        return [self.dialog(i) for i in range(self.cfg.dialogs)]
