"""Slot values in a case that changes their letters: named in templates, filled, and read."""

from telugu_s2s.inflect import inflect
from telugu_s2s.slot_values import SlotValueTagger, delexicalize, fill, slot_names

SLOTS = {"dest": ("place", "విజయనగరం"), "home": ("place", "గుంటూరు"),
         "t": ("time", "ఉదయం ఏడు గంటలు")}  # fmt: skip


def test_a_case_form_that_changes_the_value_is_named_with_its_case_and_filled_back():
    reply = "నువ్వు విజయనగరానికి ఉదయం ఏడు గంటలకు వెళ్తావు, గుంటూరులో ఉంటావు"
    assert delexicalize(reply, SLOTS) == "నువ్వు విజయనగరానికి ఉదయం ఏడు గంటలకు వెళ్తావు, {home}లో ఉంటావు"
    template = delexicalize(reply, SLOTS, inflected=True)
    assert template == "నువ్వు {dest.dat} {t.dat} వెళ్తావు, {home}లో ఉంటావు"
    assert slot_names(template) == ["dest", "t", "home"]
    values = {"dest": "కాకినాడ", "t": "రాత్రి పది గంటలు", "home": "కడప"}
    assert fill(template, values) == "నువ్వు కాకినాడకి రాత్రి పది గంటలకు వెళ్తావు, కడపలో ఉంటావు"
    assert fill(template, {k: v for k, (_, v) in SLOTS.items()}) == reply
    # a heard value that is no Telugu word is said as heard; an unknown one by nothing
    assert fill("{dest.dat} వెళ్ళు", {"dest": "x1"}) == "x1 వెళ్ళు"
    assert fill("{dest.dat} వెళ్ళు", {}) == "వెళ్ళు"


def test_the_tagger_reads_a_known_value_in_a_case_that_changes_its_letters():
    tagger = SlotValueTagger({"విజయనగరం": "place", "ఉదయం ఏడు గంటలు": "time"},
                             {"నేను", "వెళ్తాను"}, [], {})  # fmt: skip
    said = f"నేను {inflect('విజయనగరం', 'dat')} {inflect('ఉదయం ఏడు గంటలు', 'dat')} వెళ్తాను"
    assert tagger.tag(said) == [("place", "విజయనగరం"), ("time", "ఉదయం ఏడు గంటలు")]
