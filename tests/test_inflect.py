"""Telugu case endings (inflect.py) and the slot lexicon (lexicon.yaml, lexicon.py)."""

from __future__ import annotations

import pytest

from telugu_s2s.data.generate.lexicon import (
    LEXICON_PATH,
    MIN_SIZES,
    TYPES,
    Entry,
    is_telugu_value,
    load_lexicon,
)
from telugu_s2s.inflect import CASES, inflect

Z = "\u200c"  # ZWNJ

# (word, case, expected): every rule of inflect.py, spelled out by hand.
TABLE = [
    # virama-final: ZWNJ before the suffix; gen and abl without it
    ("వరంగల్", "loc", f"వరంగల్{Z}లో"),
    ("వరంగల్", "abl", "వరంగల్ నుంచి"),
    ("సురేష్", "dat", f"సురేష్{Z}కి"),
    ("సురేష్", "soc", f"సురేష్{Z}తో"),
    ("సురేష్", "acc", f"సురేష్{Z}ని"),
    ("సురేష్", "gen", "సురేష్"),
    ("హైదరాబాద్", "dat", f"హైదరాబాద్{Z}కి"),
    ("హైదరాబాద్", "loc", f"హైదరాబాద్{Z}లో"),
    ("ఏప్రిల్", "loc", f"ఏప్రిల్{Z}లో"),
    # -ం nouns
    ("విశాఖపట్నం", "dat", "విశాఖపట్నానికి"),
    ("విశాఖపట్నం", "acc", "విశాఖపట్నాన్ని"),
    ("విశాఖపట్నం", "loc", "విశాఖపట్నంలో"),
    ("విశాఖపట్నం", "soc", "విశాఖపట్నంతో"),
    ("విశాఖపట్నం", "gen", "విశాఖపట్నం"),
    ("ఖమ్మం", "abl", "ఖమ్మం నుంచి"),
    ("బ్రహ్మానందం", "dat", "బ్రహ్మానందానికి"),
    ("కొత్తగూడెం", "dat", "కొత్తగూడెంకి"),  # -ెం keeps its -ం, as spoken
    # -ఉ / -ఊ endings
    ("గుంటూరు", "dat", "గుంటూరుకు"),
    ("గుంటూరు", "loc", "గుంటూరులో"),
    ("గుంటూరు", "acc", "గుంటూరును"),
    ("గుంటూరు", "gen", "గుంటూరు"),
    ("గుంటూరు", "abl", "గుంటూరు నుంచి"),
    ("కర్నూలు", "dat", "కర్నూలుకు"),  # singular -లు after -ఊ
    ("వెంకటేశ్వర్లు", "dat", "వెంకటేశ్వర్లుకు"),  # singular -లు after a conjunct
    ("రైలు", "loc", "రైలులో"),
    ("లడ్డూ", "dat", "లడ్డూకు"),
    # -ఇ / -ఈ / -ఎ / -అ / other vowels
    ("హరి", "dat", "హరికి"),
    ("హరి", "acc", "హరిని"),
    ("సీత", "dat", "సీతకి"),
    ("సీత", "soc", "సీతతో"),
    ("ఢిల్లీ", "dat", "ఢిల్లీకి"),
    ("ఢిల్లీ", "loc", "ఢిల్లీలో"),
    ("దోసె", "dat", "దోసెకి"),
    ("ముంబై", "dat", "ముంబైకి"),
    ("ఆటో", "loc", "ఆటోలో"),
    ("ఉప్మా", "acc", "ఉప్మాని"),
    # masculine human -డు: oblique -డి
    ("తమ్ముడు", "dat", "తమ్ముడికి"),
    ("తమ్ముడు", "gen", "తమ్ముడి"),
    ("స్నేహితుడు", "soc", "స్నేహితుడితో"),
    ("మనవడు", "abl", "మనవడి నుంచి"),
    ("రెండు", "dat", "రెండుకు"),  # a number, not a masculine noun
    # human plurals: oblique -రి
    ("ఇద్దరు", "dat", "ఇద్దరికి"),
    ("ముగ్గురు", "acc", "ముగ్గురిని"),
    ("ఐదుగురు", "gen", "ఐదుగురి"),
    ("పది మంది", "dat", "పది మందికి"),
    # plurals in -లు: oblique drops -ు
    ("గంటలు", "dat", "గంటలకు"),
    ("పుస్తకాలు", "loc", "పుస్తకాల్లో"),
    ("పాలు", "gen", "పాల"),
    # temporal locative
    ("సోమవారం", "loc", "సోమవారం నాడు"),
    ("సోమవారం", "dat", "సోమవారానికి"),
    ("వారం", "loc", "వారంలో"),
    # multiword values inflect their last word
    ("ఉదయం ఏడు గంటలు", "dat", "ఉదయం ఏడు గంటలకు"),
    ("సాయంత్రం ఆరున్నర గంటలు", "abl", "సాయంత్రం ఆరున్నర గంటల నుంచి"),
    ("రెండు వందల యాభై రూపాయలు", "dat", "రెండు వందల యాభై రూపాయలకు"),
    ("మార్చి పదిహేనో తేదీ", "loc", "మార్చి పదిహేనో తేదీన"),
    ("మార్చి పదిహేనో తేదీ", "dat", "మార్చి పదిహేనో తేదీకి"),
    ("భౌతిక శాస్త్రం", "loc", "భౌతిక శాస్త్రంలో"),
    ("పుస్తకాలు చదవడం", "dat", "పుస్తకాలు చదవడానికి"),
    ("వాషింగ్ మెషీన్", "acc", f"వాషింగ్ మెషీన్{Z}ని"),
    ("అర్జున్ రెడ్డి", "acc", "అర్జున్ రెడ్డిని"),
    ("మెట్రో రైలు", "loc", "మెట్రో రైలులో"),
    ("గోంగూర పచ్చడి", "soc", "గోంగూర పచ్చడితో"),
    ("మహబూబ్\u200cనగర్", "dat", f"మహబూబ్{Z}నగర్{Z}కి"),
    # nominative is the word itself
    ("గుంటూరు", "nom", "గుంటూరు"),
    ("ఉదయం ఏడు గంటలు", "nom", "ఉదయం ఏడు గంటలు"),
]


@pytest.mark.parametrize(("word", "case", "expected"), TABLE)
def test_inflect_table(word, case, expected):
    assert inflect(word, case) == expected


def test_table_covers_every_case():
    assert {case for _, case, _ in TABLE} == set(CASES)


def test_overrides_replace_only_their_case():
    forms = {"dat": "కొడుక్కి"}
    assert inflect("కొడుకు", "dat", forms) == "కొడుక్కి"
    assert inflect("కొడుకు", "loc", forms) == "కొడుకులో"
    entry = Entry("కూతురు", "relation", (("dat", "కూతురికి"),))
    assert entry.form("dat") == "కూతురికి"
    assert entry.form("soc") == "కూతురుతో"
    assert entry.form("nom") == "కూతురు"


@pytest.mark.parametrize("case", ["", "ins", "DAT", "dative", None])
def test_unknown_case_raises(case):
    with pytest.raises(ValueError, match="unknown case"):
        inflect("సురేష్", case)


def test_bad_word_or_override_raises():
    with pytest.raises(ValueError, match="empty"):
        inflect("  ", "dat")
    with pytest.raises(ValueError, match="Telugu letter"):
        inflect("Suresh", "dat")
    with pytest.raises(ValueError, match="unknown cases"):
        inflect("సురేష్", "dat", {"instr": "సురేష్‌చే"})


@pytest.fixture(scope="module")
def lexicon():
    return load_lexicon()


def test_lexicon_has_every_type_and_size(lexicon):
    assert tuple(lexicon) == TYPES
    for kind, n in MIN_SIZES.items():
        assert len(lexicon[kind]) >= n, kind
    assert len(lexicon["day"]) == 7 and len(lexicon["month"]) == 12
    assert [e.word for e in lexicon["count"]][:2] == ["రెండు", "మూడు"]
    assert [e.word for e in lexicon["name"]] == [
        e.word for e in lexicon["male_name"] + lexicon["female_name"]
    ]
    assert {e.type for e in lexicon["name"]} == {"male_name", "female_name"}


def test_lexicon_values_unique_and_typed(lexicon):
    for kind, entries in lexicon.items():
        words = [e.word for e in entries]
        assert len(words) == len(set(words)), kind
        if kind != "name":
            assert all(e.type == kind for e in entries)


def test_lexicon_is_pure_telugu_in_every_case(lexicon):
    """Every value and every form of it is Telugu script; dat/acc/loc always add a suffix."""
    bad = []
    for kind, entries in lexicon.items():
        for e in entries:
            for case in CASES:
                form = e.form(case)
                if not is_telugu_value(form) or (case in ("dat", "acc", "loc") and form == e.word):
                    bad.append((kind, e.word, case, form))
    assert not bad, bad[:10]


def test_known_lexicon_forms(lexicon):
    by_word = {e.word: e for e in lexicon["place"] + lexicon["relation"] + lexicon["time"]}
    assert by_word["వరంగల్"].form("loc") == f"వరంగల్{Z}లో"
    assert by_word["గుంటూరు"].form("loc") == "గుంటూరులో"
    assert by_word["విశాఖపట్నం"].form("dat") == "విశాఖపట్నానికి"
    assert by_word["కూతురు"].form("dat") == "కూతురికి"
    assert by_word["కోడలు"].form("gen") == "కోడలి"
    assert by_word["సాయంత్రం ఆరున్నర గంటలు"].form("dat") == "సాయంత్రం ఆరున్నర గంటలకు"


def test_load_lexicon_lists_every_problem(tmp_path):
    bad = tmp_path / "lexicon.yaml"
    bad.write_text(
        "male_name: [సురేష్, సురేష్, Suresh, 'రమేష్ 2']\n"
        "female_name: [సీత, {word: హరి, forms: {instr: హరిచే}}]\n"
        "colour: [ఎరుపు]\n"
        "day: [సోమవారం]\n",
        encoding="utf-8",
    )
    with pytest.raises(ValueError) as err:
        load_lexicon(bad)
    text = str(err.value)
    for needle in [
        "unknown type 'colour'",
        "'Suresh' is not plain Telugu",
        "'రమేష్ 2' is not plain Telugu",
        "duplicate value 'సురేష్'",
        "unknown case 'instr'",
        "day: 1 distinct values, expected exactly 7",
        "place: missing",
        "male_name: 1 distinct values, expected at least 100",
    ]:
        assert needle in text


def test_load_lexicon_rejects_unreadable_file(tmp_path):
    with pytest.raises(ValueError, match="cannot read lexicon"):
        load_lexicon(tmp_path / "missing.yaml")
    not_mapping = tmp_path / "list.yaml"
    not_mapping.write_text("- సురేష్\n", encoding="utf-8")
    with pytest.raises(ValueError, match="expected a mapping"):
        load_lexicon(not_mapping)


def test_shipped_lexicon_path_exists():
    assert LEXICON_PATH.is_file()
