"""A word's letters: names and towns against ordinary words, and the tagger's use of them."""

from __future__ import annotations

import json

import pytest

from telugu_s2s.word_shape import WordShape

NAMES = ["సురేష్", "మహేష్", "దినేష్", "రమేష్", "వెంకటయ్య", "రామయ్య", "సూర్యాపేట", "నారాయణపేట",
         "మిర్యాలగూడ", "కొత్తపల్లి", "రాజుపల్లి"]  # fmt: skip
ORDINARY = ["ఉంటున్నాను", "మాట్లాడుతున్నాను", "వెళ్తున్నాను", "చేస్తున్నాను", "క్షేమమా", "బాగున్నారా",
            "అర్జెంటుగా", "తొందరగా", "ఇంకొకటి", "అదొకటి", "నిజమేనా"]  # fmt: skip


def test_held_out_names_and_towns_look_like_values_and_misheard_verbs_do_not():
    shape = WordShape.fit(NAMES, ORDINARY)
    for value in ("గణేష్", "కొండయ్య", "సిద్దిపేట", "గొల్లపల్లి"):  # none of them in the fit
        assert shape.log_odds(value) > 0, value
    for word in ("ఉంటున్నను", "చూస్తున్నాను", "క్షేమమేనా", "మెల్లగా"):  # misheard or new
        assert shape.log_odds(word) < 0, word
    again = WordShape.from_state(json.loads(json.dumps(shape.state())))
    assert again.log_odds("గణేష్") == pytest.approx(shape.log_odds("గణేష్"))
    with pytest.raises(ValueError, match="value words and ordinary words"):
        WordShape.fit([], ORDINARY)


def test_the_tagger_does_not_take_an_ordinary_looking_word_for_a_name():
    from telugu_s2s.slot_values import SlotValueTagger

    # Before a name: నేను; the context alone reads any new word there as one.
    others = {"place": 5, "male_name": 5, "female_name": 5}
    counts = {"p:నేను": {"name": 20, "O": 1}, "n:</s>": {"name": 5, "O": 50, **others},
              "e:": {"name": 5, "O": 50, **others}}  # fmt: skip
    tagger = SlotValueTagger({}, {"నేను", "మీరు"}, [], counts)
    assert tagger.tag("నేను ఉంటున్నను") == [("name", "ఉంటున్నను")]
    tagger.shape = WordShape.fit(NAMES, ORDINARY)
    assert tagger.tag("నేను ఉంటున్నను") == [] and tagger.tag("నేను గణేష్") == [("name", "గణేష్")]
    assert tagger.could_be_open("గణేష్") and not tagger.could_be_open("ఉంటున్నను")
    again = SlotValueTagger.from_state(json.loads(json.dumps(tagger.state())))
    assert again.tag("నేను ఉంటున్నను") == [] and again.shape is not None
