"""The dialog generator: templates, determinism, held-out splits, long-range recall."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import replace

import pytest

from telugu_s2s.data.corpus import load_corpus, validate
from telugu_s2s.data.generate import (
    DialogGenerator,
    GeneratorConfig,
    corpus_stats,
    is_long_range,
    write_jsonl,
)
from telugu_s2s.data.generate.lexicon import load_lexicon
from telugu_s2s.data.generate.templates import load_templates
from telugu_s2s.labels import TOPICS

CFG = GeneratorConfig(dialogs=800, seed=11)


@pytest.fixture(scope="module")
def generator() -> DialogGenerator:
    return DialogGenerator(CFG)


@pytest.fixture(scope="module")
def dialogs(generator):
    return generator.generate()


def _by_split(dialogs):
    return {s: [d for d in dialogs if d.split == s] for s in ("train", "validation", "test")}


def test_templates_cover_every_topic_with_varied_turns():
    templates = load_templates()
    assert len(templates.schemas) >= 60
    for topic in TOPICS:
        assert sum(s.topic == topic for s in templates.schemas) >= 6, topic
        assert templates.fillers[topic], topic
    turns = [t for s in templates.schemas for options in s.turns for t in options]
    assert all(len(t.user) >= 3 and len(t.formal) >= 2 and len(t.casual) >= 2 for t in turns)
    assert templates.openers and set(templates.recalls) >= {"name", "home"}


def test_user_phrasings_split_into_training_and_evaluation():
    for schema in load_templates().schemas:
        for turn in (t for options in schema.turns for t in options):
            train, held = set(turn.user_phrasings(False)), set(turn.user_phrasings(True))
            assert train and held and not train & held
            assert train | held == set(turn.user)


def test_generation_is_seeded_and_valid(generator, dialogs):
    again = DialogGenerator(CFG).generate()
    assert [d.turns for d in again[:50]] == [d.turns for d in dialogs[:50]]
    other = DialogGenerator(replace(CFG, seed=12)).generate()
    assert [d.turns for d in other[:50]] != [d.turns for d in dialogs[:50]]
    assert validate(dialogs, unique=False, max_turns=CFG.max_turns) == []


HELD_OUT = ("name", "male_name", "female_name", "place")


def test_held_out_names_places_and_phrasings_never_reach_training(generator, dialogs):
    by_split = _by_split(dialogs)
    assert all(by_split.values())
    train_values = {
        v for d in by_split["train"] for kind, v in d.slots.values() if kind in HELD_OUT
    }
    train_users = {t.user for d in by_split["train"] for t in d.turns}
    for split in ("validation", "test"):
        for d in by_split[split]:
            assert not {v for kind, v in d.slots.values() if kind in HELD_OUT} & train_values
            assert not {t.user for t in d.turns} & train_users
    pools = generator.pools
    for kind in ("male_name", "female_name", "place"):
        train = {e.word for e in pools[("train", kind)]}
        assert not train & {e.word for e in pools[("validation", kind)]}
        assert not train & {e.word for e in pools[("test", kind)]}


def test_templates_name_no_person_or_place_themselves():
    """Names and places come only from slots, so the held-out pools hold for every sentence."""
    lexicon = load_lexicon()
    words = {e.word for kind in ("male_name", "female_name", "place") for e in lexicon[kind]}
    templates = load_templates()
    turns = [t for s in templates.schemas for options in s.turns for t in options]
    turns += [t for ts in templates.fillers.values() for t in ts] + list(templates.openers)
    for turn in turns:
        for text in turn.user + turn.formal + turn.casual:
            tokens = set(re.sub(r"\{[^}]*\}|[.,?!'\-]", " ", text).split())
            assert not tokens & words, (turn.key, tokens & words)


def _stem(value: str) -> str:
    """What every inflected form of a value keeps: case endings change at most its last two
    characters (విశాఖపట్నం -> విశాఖపట్నానికి, గంటలు -> గంటలకు, తమ్ముడు -> తమ్ముడికి)."""
    return value[:-2] if len(value) > 3 else value


def test_recall_turns_say_the_fact_and_lie_far_enough_back(dialogs):
    recall_dialogs = 0
    for d in dialogs:
        long_range = [t for t in d.turns if is_long_range(d, t, CFG)]
        recall_dialogs += bool(long_range)
        for t in (t for t in d.turns if t.depends_on):
            stated = d.turns[t.depends_on[0]]
            assert t.index - stated.index >= 4 and t.memory
            values = [v for var, (_, v) in d.slots.items() if _stem(v) in stated.user]
            assert values, (d.dialog_id, stated.user)
            assert any(_stem(v) in t.assistant for v in values), (d.dialog_id, t.assistant)
    assert recall_dialogs >= 0.3 * len(dialogs)


def test_every_reply_is_one_of_its_valid_replies(dialogs):
    for d in dialogs:
        for t in d.turns:
            assert t.assistant in t.valid_replies[d.style]
            assert set(t.valid_replies) == {"formal", "casual"}


def test_stats_show_balance_and_scale(dialogs):
    stats = corpus_stats(dialogs, CFG)
    assert stats["dialogs"] == len(dialogs) and stats["turns"] > 5 * len(dialogs)
    assert min(stats["topics"].values()) >= 0.08 * len(dialogs)
    assert stats["recall_dialog_fraction"] >= 0.3
    assert stats["distinct_user_sentences"] >= 0.5 * stats["turns"]
    assert sum(stats["splits"].values()) == len(dialogs)


def test_jsonl_round_trip(tmp_path, dialogs):
    path = tmp_path / "generated.jsonl"
    write_jsonl(dialogs[:40], path)
    loaded = load_corpus(path)
    assert loaded == dialogs[:40]
    assert [d.slots for d in loaded] == [d.slots for d in dialogs[:40]]
    assert [t.valid_replies for d in loaded for t in d.turns] == [
        t.valid_replies for d in dialogs[:40] for t in d.turns
    ]


def test_stats_command_prints_one_json_object():
    out = subprocess.run(
        [sys.executable, "-m", "telugu_s2s.data.corpus", "--stats", "--dialogs", "200"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    stats = json.loads(out.stdout)
    for key in ("dialogs", "turns", "distinct_user_sentences", "names", "places", "topics",
                "recall_turns", "splits"):  # fmt: skip
        assert key in stats
    assert stats["dialogs"] == 200 and stats["problems"] == 0


def test_lexicon_is_large_enough_for_held_out_pools():
    lexicon = load_lexicon()
    assert len(lexicon["male_name"]) + len(lexicon["female_name"]) >= 150
    assert len(lexicon["place"]) >= 80
