"""Made-up names and towns for the recognizer: the akshara chain, the leak filter, the case-
preserving swap, and the rows it renders."""

from __future__ import annotations

import json

import numpy as np
import pytest

from telugu_s2s.data.espeak import Espeak
from telugu_s2s.data.generate.builder import HELD_OUT_TYPES, GeneratorConfig, split_pools
from telugu_s2s.data.generate.lexicon import Entry, load_lexicon
from telugu_s2s.data.name_variety import (
    AksharaChain,
    ValueSwap,
    aksharas,
    build,
    made_up_values,
)
from telugu_s2s.text_distance import edit_distance


def test_aksharas_keep_clusters_and_final_consonants():
    assert aksharas("మహబూబ్‌నగర్") == ["మ", "హ", "బూ", "బ్‌", "న", "గ", "ర్"]
    assert aksharas("లక్ష్మి") == ["ల", "క్ష్మి"]
    assert aksharas("ఇందు") == ["ఇం", "దు"]
    assert "".join(aksharas("శ్రీకాళహస్తి")) == "శ్రీకాళహస్తి"


def test_the_chain_makes_words_from_its_words_aksharas():
    words = ["రామరాజు", "సోమశేఖర్", "రాజశేఖర్"]
    chain = AksharaChain(words, jump=0.0)
    rng = np.random.default_rng(0)
    drawn = {w for _ in range(300) if (w := chain.sample(rng)) is not None}
    pieces = {p for w in words for p in aksharas(w)}
    assert drawn and all(set(aksharas(w)) <= pieces for w in drawn)
    assert "సోమరాజు" in drawn  # సో మ from one word, మ రా జు from another
    with pytest.raises(ValueError):
        AksharaChain([])


def test_made_up_values_never_leak_a_held_out_value():
    lexicon = load_lexicon()
    pools = split_pools(lexicon, GeneratorConfig())
    made = made_up_values(lexicon, pools, count=150, seed=0)
    every = {e.word for entries in lexicon.values() for e in entries}
    held = [e.word for s in ("validation", "test") for k in HELD_OUT_TYPES for e in pools[(s, k)]]
    for kind in HELD_OUT_TYPES:
        words = [e.word for e in made[kind]]
        assert len(set(words)) == 150 and all(e.type == kind for e in made[kind])
        assert not set(words) & every
        assert not any(p.endswith("\u0c4d") for w in words for p in aksharas(w)[:-1])
        assert all(edit_distance(w, h) > 1 for w in words for h in held)
    # one akshara makes at most 5 words (వివి ... 6 times): 10 cannot be found
    lonely = dict(pools) | {("train", "place"): (Entry("వి", "place"),)}
    with pytest.raises(ValueError, match="place: only [0-5] made-up values of 10"):
        made_up_values(lexicon, lonely, count=10, seed=0)


def test_the_swap_keeps_the_case_and_leaves_other_words():
    swap = ValueSwap(
        [Entry("రవి", "male_name"), Entry("విజయవాడ", "place")],
        {"male_name": [Entry("సుదీప్", "male_name")], "place": [Entry("కొండపేట", "place")]},
    )
    rng = np.random.default_rng(0)
    text = "నేను రవి, విజయవాడలో ఉంటాను; రవికి రవాణా తెలుసు"
    assert swap.finds(text) and not swap.finds("రవాణా బాగుంది")
    assert swap.swap(text, rng) == "నేను సుదీప్, కొండపేటలో ఉంటాను; సుదీప్‌కి రవాణా తెలుసు"


@pytest.fixture
def bundled_espeak():
    yield
    Espeak.use_data_path(None)  # later tests render with the bundled voices


def test_rows_say_made_up_values_in_random_voices(tiny_dataset, tmp_path, bundled_espeak):
    from telugu_s2s.data.datasets import load_split
    from telugu_s2s.data.voice_variety import with_voice_variety

    out = build(tiny_dataset, tmp_path / "names", count=5, voices=2, seed=0, values_per_type=40)
    train = load_split(tiny_dataset, "train")
    added = with_voice_variety(train, out).select(range(len(train), len(train) + 5))
    settings = json.loads((tiny_dataset / "telugu_s2s.json").read_text())
    pools = split_pools(load_lexicon(), GeneratorConfig(**settings["generated"]))
    said = {e.form(c) for k in HELD_OUT_TYPES for e in pools[("train", k)] for c in ("nom", "loc")}
    for text in added["text"]:
        assert not set(text.replace(",", " ").split()) & said  # the training values are gone
    assert set(added["speaker"]) <= {"variety_000", "variety_001"}
    assert all(i.startswith("names_") for i in added["id"]) and min(added["duration"]) > 0.3
