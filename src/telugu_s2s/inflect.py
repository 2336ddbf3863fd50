"""Spoken Telugu case endings for lexicon values (names, places, dishes, times...).

`inflect(word, case)` adds the ending that the LAST word of `word` calls for, so a
multiword value inflects as a whole ("ఉదయం ఏడు గంటలు" -> "ఉదయం ఏడు గంటలకు").
Irregular words (కూతురు -> కూతురికి) carry per-case `overrides` in the lexicon.

The rules, checked in this order (first match wins):

1. Dates and weekdays take the temporal locative, not -లో:
   "... తేదీ" -> "... తేదీన", సోమవారం -> "సోమవారం నాడు" (other cases as below).
2. Masculine human nouns in -ుడు/-ాడు/-వడు use the oblique -డి in every case:
   తమ్ముడు -> తమ్ముడికి, తమ్ముడిని, తమ్ముడి (gen). Numbers such as రెండు, పదకొండు
   end in -ండు and are not matched.
3. Human plurals ఇద్దరు, ముగ్గురు, నలుగురు, ఐదుగురు... use the oblique -రి:
   ముగ్గురికి, ముగ్గురిని, ముగ్గురి (gen).
4. Plurals in -లు after -అ/-ఆ/-ఉ/-ఎ/-ఏ/-ఈ (గంటలు, రూపాయలు, పుస్తకాలు) drop the -ు:
   గంటలకు, గంటల్లో, గంటలను, గంటల (gen). Singular -లు words end otherwise
   (కర్నూలు, ఒంగోలు, వెంకటేశ్వర్లు, రైలు) and follow rule 7.
5. -అం nouns (-ం after a bare consonant): -ానికి / -ాన్ని / -ంలో / -ంతో; genitive keeps
   -ం as spoken ("విశాఖపట్నం బీచ్", not literary "విశాఖపట్నపు"). -ెం (కొత్తగూడెం) keeps
   its -ం and follows rule 8 as usually spoken: కొత్తగూడెంకి.
6. Virama-final words (loanwords, names: సురేష్, వరంగల్) join every suffix with
   ZWNJ so no conjunct forms: సురేష్‌కి, వరంగల్‌లో, హైదరాబాద్‌ని.
7. -ఉ/-ఊ endings take -కు / -ను: గుంటూరుకు, గుంటూరును, గుంటూరులో.
8. Every other vowel (-అ/-ఆ/-ఇ/-ఈ/-ఎ/-ఏ/-ఐ/-ఒ/-ఓ/-ఔ) takes -కి / -ని: హరికి, సీతని.

Everywhere: sociative -తో, locative -లో, ablative is the separate word "నుంచి" after the
oblique (తమ్ముడి నుంచి, గుంటూరు నుంచి), and the genitive is the oblique, which for most
words is the bare noun as spoken Telugu uses it ("గుంటూరు బస్సు", "సీత ఫోన్").
"""

from __future__ import annotations

from collections.abc import Mapping

CASES = ("nom", "loc", "dat", "abl", "soc", "acc", "gen")

ZWNJ = "\u200c"
VIRAMA = "\u0c4d"  # ్
ANUSVARA = "\u0c02"  # ం
SIGN_I = "\u0c3f"  # ి
ABLATIVE = "నుంచి"

_U_ENDINGS = frozenset("\u0c41\u0c42ఉఊ")  # ు ూ ఉ ఊ
# Signs before -లు that make it a plural ending: ా ు ె ే ీ (a bare consonant also counts).
_PLURAL_LU_SIGNS = frozenset("\u0c3e\u0c41\u0c46\u0c47\u0c40")
_MASC_DU = ("\u0c41డు", "\u0c3eడు", "వడు")  # -ుడు, -ాడు, -వడు
_HUMAN_PLURAL_RU = ("గురు", "ద్దరు")
_WEEKDAY = "వారం"
_DATE = "తేదీ"


def _is_consonant(ch: str) -> bool:
    """క..హ (and the archaic ౘ ౙ ౚ): a letter that carries the inherent -అ."""
    return "\u0c15" <= ch <= "\u0c39" or "\u0c58" <= ch <= "\u0c5a"


def _is_telugu_letter_or_sign(ch: str) -> bool:
    """Telugu letters and signs a word may end in (no digits, no fraction signs)."""
    return "\u0c00" <= ch <= "\u0c63"


def _paradigm(word: str) -> dict[str, str]:
    """All case forms of `word`, following the rules in the module docstring."""
    last = word.rsplit(" ", 1)[-1]

    if last.endswith(_MASC_DU) or (
        last.endswith(_HUMAN_PLURAL_RU) and last not in _HUMAN_PLURAL_RU
    ):
        # Rules 2, 3: the final -ు becomes -ి (oblique) in every case.
        forms = _suffixed(word, word[:-1] + SIGN_I, dat="కి", acc="ని")
    elif (
        last.endswith("లు")
        and len(last) >= 3
        and (_is_consonant(last[-3]) or last[-3] in _PLURAL_LU_SIGNS)
    ):
        # Rule 4: plural -లు; oblique drops the final -ు; spoken locative -ల్లో.
        obl = word[:-1]
        forms = _suffixed(word, obl, dat="కు", acc="ను")
        forms["loc"] = obl + VIRAMA + "లో"
    elif last.endswith(ANUSVARA) and len(last) >= 2 and _is_consonant(last[-2]):
        # Rule 5: -ం nouns: -ానికి / -ాన్ని, the rest on the -ం form.
        forms = _suffixed(word, word, dat="", acc="")
        forms["dat"] = word[:-1] + "\u0c3eనికి"  # ానికి
        forms["acc"] = word[:-1] + "\u0c3eన్ని"  # ాన్ని
    elif last.endswith(VIRAMA):
        # Rule 6: ZWNJ before every suffix keeps the virama visible.
        forms = _suffixed(word, word + ZWNJ, dat="కి", acc="ని")
    elif last[-1] in _U_ENDINGS:
        forms = _suffixed(word, word, dat="కు", acc="ను")  # rule 7
    else:
        forms = _suffixed(word, word, dat="కి", acc="ని")  # rule 8

    # Rule 1 overrides the locative only.
    if last == _DATE:
        forms["loc"] = word + "న"
    elif last.endswith(_WEEKDAY) and last != _WEEKDAY:
        forms["loc"] = f"{word} నాడు"
    return forms


def _suffixed(nom: str, obl: str, *, dat: str, acc: str) -> dict[str, str]:
    """The regular paradigm: suffixes on the oblique `obl`, ablative as a separate word.

    `obl` may end in ZWNJ (rule 6); the genitive and ablative never keep it.
    """
    bare = obl.rstrip(ZWNJ)
    return {
        "nom": nom,
        "loc": obl + "లో",
        "dat": obl + dat,
        "abl": f"{bare} {ABLATIVE}",
        "soc": obl + "తో",
        "acc": obl + acc,
        "gen": bare,
    }


def inflect(word: str, case: str, overrides: Mapping[str, str] | None = None) -> str:
    """`word` in `case` (one of CASES); `overrides` maps a case to an irregular form.

    Raises ValueError for an unknown case, an override for an unknown case, or a word
    that does not end in a Telugu letter.
    """
    if case not in CASES:
        raise ValueError(f"unknown case {case!r}; expected one of {', '.join(CASES)}")
    if overrides:
        unknown = sorted(set(overrides) - set(CASES))
        if unknown:
            raise ValueError(f"overrides for unknown cases {unknown}; expected {CASES}")
        if case in overrides:
            return overrides[case]
    if not isinstance(word, str) or not word.strip():
        raise ValueError(f"cannot inflect an empty word: {word!r}")
    word = " ".join(word.split())
    if not _is_telugu_letter_or_sign(word[-1]):
        raise ValueError(f"cannot inflect {word!r}: it does not end in a Telugu letter")
    if case == "nom":
        return word
    return _paradigm(word)[case]
