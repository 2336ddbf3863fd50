"""The slot lexicon: Telugu values by type (lexicon.yaml), validated on load.

An entry in lexicon.yaml is a string, or `{word: ..., forms: {dat: ..., loc: ...}}` where a
case form is irregular (కూతురు -> కూతురికి); every other case comes from `inflect`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from telugu_s2s.inflect import CASES, inflect

LEXICON_PATH = Path(__file__).with_name("lexicon.yaml")

# The smallest size of each type in lexicon.yaml; closed classes must match exactly.
MIN_SIZES: dict[str, int] = {
    "male_name": 100,
    "female_name": 90,
    "place": 120,
    "food": 50,
    "festival": 15,
    "day": 7,
    "month": 12,
    "date": 30,
    "time": 30,
    "count": 11,
    "people": 9,
    "number": 40,
    "price": 40,
    "product": 40,
    "symptom": 25,
    "subject": 25,
    "film": 40,
    "relation": 15,
    "profession": 25,
    "hobby": 25,
    "sport": 15,
    "device": 20,
    "vehicle": 10,
}
EXACT_SIZES = ("day", "month", "count", "people")  # 7 weekdays, 12 months, 2..12, 2..10
FILE_TYPES: tuple[str, ...] = tuple(MIN_SIZES)
# `name` is not in the file: it is every male_name and female_name entry (each keeps its type).
TYPES: tuple[str, ...] = FILE_TYPES + ("name",)

# Telugu letters and signs (no digits U+0C66-0C6F, no fraction signs), single spaces and
# .,?!'- ; ZWNJ only right after a virama (మహబూబ్‌నగర్). A value starts and ends with a letter.
_LETTER = "[\u0c00-\u0c63]"
_TELUGU_VALUE = re.compile(
    rf"^{_LETTER}(?:{_LETTER}|\u0c4d\u200c|[.,?!'-]| (?! ))*(?<=[\u0c00-\u0c63])$"
)


@dataclass(frozen=True)
class Entry:
    """One slot value: `word` in the nominative, `overrides` for irregular case forms."""

    word: str
    type: str
    overrides: tuple[tuple[str, str], ...] = ()

    def form(self, case: str) -> str:
        return inflect(self.word, case, dict(self.overrides))


def is_telugu_value(text: str) -> bool:
    """Telugu script with single spaces and .,?!'- (ZWNJ only after a virama)."""
    return bool(_TELUGU_VALUE.match(text))


def _parse_entry(raw: object, kind: str, problems: list[str]) -> Entry | None:
    where = f"{kind}: {raw!r}"
    if isinstance(raw, str):
        word, forms = raw, {}
    elif isinstance(raw, dict) and set(raw) <= {"word", "forms"} and "word" in raw:
        word, forms = raw["word"], raw.get("forms") or {}
        if not isinstance(word, str) or not isinstance(forms, dict):
            problems.append(f"{where}: word must be a string and forms a mapping")
            return None
    else:
        problems.append(f"{where}: an entry is a string or {{word: ..., forms: {{case: ...}}}}")
        return None
    ok = True
    if not is_telugu_value(word):
        problems.append(f"{where}: {word!r} is not plain Telugu script")
        ok = False
    for case, form in forms.items():
        if case not in CASES or case == "nom":
            problems.append(f"{where}: form for unknown case {case!r} (cases: {CASES[1:]})")
            ok = False
        elif not isinstance(form, str) or not is_telugu_value(form):
            problems.append(f"{where}: {case} form {form!r} is not plain Telugu script")
            ok = False
    if not ok:
        return None
    return Entry(word, kind, tuple(sorted((str(c), f) for c, f in forms.items())))


def load_lexicon(path: str | Path = LEXICON_PATH) -> dict[str, tuple[Entry, ...]]:
    """Every type in TYPES -> its entries, in file order.

    Raises ValueError listing every problem: unknown or missing types, non-Telugu values,
    duplicates within a type (or between male and female names), sizes below the minimum.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot read lexicon {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise ValueError(f"lexicon {path}: expected a mapping of type -> list of values")

    problems: list[str] = []
    for kind in sorted(set(raw) - set(FILE_TYPES)):
        problems.append(f"unknown type {kind!r} (types: {', '.join(FILE_TYPES)})")
    lexicon: dict[str, tuple[Entry, ...]] = {}
    for kind in FILE_TYPES:
        values = raw.get(kind)
        if not isinstance(values, list):
            problems.append(f"{kind}: missing, or not a list of values")
            continue
        entries = [e for v in values if (e := _parse_entry(v, kind, problems)) is not None]
        seen: set[str] = set()
        for e in entries:
            if e.word in seen:
                problems.append(f"{kind}: duplicate value {e.word!r}")
            seen.add(e.word)
        want = MIN_SIZES[kind]
        if kind in EXACT_SIZES and len(seen) != want:
            problems.append(f"{kind}: {len(seen)} distinct values, expected exactly {want}")
        elif len(seen) < want:
            problems.append(f"{kind}: {len(seen)} distinct values, expected at least {want}")
        lexicon[kind] = tuple(entries)

    shared = {e.word for e in lexicon.get("male_name", ())} & {
        e.word for e in lexicon.get("female_name", ())
    }
    for word in sorted(shared):
        problems.append(f"name {word!r} is both a male_name and a female_name")
    if problems:
        raise ValueError(f"lexicon {path}: {len(problems)} problem(s):\n  " + "\n  ".join(problems))
    lexicon["name"] = lexicon["male_name"] + lexicon["female_name"]
    return lexicon
