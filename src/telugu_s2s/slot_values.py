"""Slot values: templates with `{slot}` names, and the values a user says for them.

- `delexicalize` / `fill`: a text with its values named, and a template filled.
- `extract_slots`: the values read by aligning the user's words with training user turns
  whose values are named. That fails on phrasings the corpus never had ("మైసూరు నుంచి
  మాట్లాడుతున్నాను, నా పేరు ఆనంద్"), and such turns state most of the facts that a recall turn
  needs later (on 100 validation dialogs, 76 of 123 needed values were never read).
- `SlotValueTagger` reads them whatever the phrasing:
  - it finds the values the training dialogs used (a day, a count, a dish, a festival, a
    known name or town; up to three words, a case ending allowed after the last), and a
    closed value misheard by an edit or two (దొరువారం: గురువారం) or joined to the next word;
  - it types a word that the training turns (the user's and the replies) never used as an
    ordinary word (a held-out name or town) by its neighbours and its case ending: a naive
    Bayes over the training user turns' open-class slots and ordinary words (before a name
    often పేరు or నేను; a town often ends in -లో or comes before నుంచి), and by its own letters
    (`word_shape`: -ేష్, -పల్లి against -న్నాను, -ేనా). No prior: an unknown word may be a
    value or not.
"""

from __future__ import annotations

import difflib
import math
import re
from collections import Counter, defaultdict

from telugu_s2s.inflect import CASES, inflect
from telugu_s2s.text_distance import edit_distance
from telugu_s2s.word_shape import WordShape

TRIM = " ,.?!-"
# `{var}`, or `{var.case}`: the generator's templates (`{home.abl}`) and the planner's reply
# templates, which name a case only where it changes the value's own letters (విజయనగరం ->
# విజయనగరానికి: `{dest.dat}`). Group 1 is the var, group 2 the case.
SLOT = re.compile(r"\{([a-z_]+)(?:\.([a-z]+))?\}")
OPEN_TYPES = ("name", "place", "male_name", "female_name")  # held out: typed by context
OTHER = "O"  # an ordinary word
MAX_WORDS = 3  # the lexicon's longest values; a longer span is a misalignment
MARGIN = 0.0  # log-odds by which a value's type must beat OTHER (2 lost 17 of 100 names)
# The same for a word near an ordinary one. 300 validation dialogs, the judge's transcripts:
# plans that say a tagged name the dialog never had 0.233 at 0 -> 0.164 at 6 (0.120 at 10),
# slot recall 0.453 -> 0.458 (0.451 at 10); the user's words: 0.072 -> 0.042, 0.734 -> 0.736.
NEAR_MARGIN = 6.0
# A read span (aligned with a training turn) that looks this much more like an ordinary word
# than a name or a town is not taken for one. With the shape also in the tagger's odds (weight
# 1, as naive Bayes has it), 300 validation dialogs, the judge's transcripts: recall 0.642 ->
# 0.661, reply CER 0.166 -> 0.165 (docs/training_s2s.md, session 21).
SHAPE_FLOOR = -1.0


def edits_allowed(word: str) -> int:
    """How far a misheard word may be from the word it is: one edit, two from 6 letters on."""
    return 1 if len(word) < 6 else 2


def words(text: str) -> list[str]:
    return [w.strip(TRIM) for w in text.split() if w.strip(TRIM)]


def slot_names(template: str) -> list[str]:
    """The vars of `template`'s slots, in order (`{dest.dat}`: dest)."""
    return [m.group(1) for m in SLOT.finditer(template)]


def _inflected_forms(value: str) -> dict[str, str]:
    """case -> `value` in that case, where the ending changes the value's own letters."""
    try:
        forms = {case: inflect(value, case) for case in CASES}
    except ValueError:  # not a Telugu word
        return {}
    return {case: form for case, form in forms.items() if value not in form}


def delexicalize(text: str, slots: dict | None, inflected: bool = False) -> str:
    """`text` with each slot value replaced by `{slot}` (longest values first); with
    `inflected`, a case form that changes the value's letters too, by `{slot.case}`
    (otherwise "విజయనగరానికి" stays in a reply template, and says that town to everyone)."""
    ordered = sorted((slots or {}).items(), key=lambda kv: -len(kv[1][1]))
    if inflected:
        forms = [(form, var, case) for var, (_, value) in ordered if value
                 for case, form in _inflected_forms(value).items()]  # fmt: skip
        for form, var, case in sorted(forms, key=lambda f: -len(f[0])):
            text = text.replace(form, "{" + f"{var}.{case}" + "}")
    for var, (_, value) in ordered:
        if value:
            text = text.replace(value, "{" + var + "}")
    return text


def _value_in_case(value: str, case: str | None) -> str:
    if not case or not value:
        return value
    try:
        return inflect(value, case)
    except ValueError:  # a heard value that is no Telugu word: said as heard
        return value


def fill(template: str, values: dict[str, str]) -> str:
    """`template` with each `{slot}` replaced by its value, a `{slot.case}` by the value in
    that case (an unknown one by nothing)."""
    said = SLOT.sub(lambda m: _value_in_case(values.get(m.group(1), ""), m.group(2)), template)
    return re.sub(r"\s+", " ", said).strip()


def delexicalize_known(text: str, known: dict[str, str]) -> str:
    """`text` with the values the session already knows replaced by their `{slot}` names."""
    return delexicalize(text, {var: ("", value) for var, value in known.items()})


def _strip_affixes(word: str, match: re.Match) -> str:
    """A text word without the template word's text around its slot (`{home}లో` -> -లో)."""
    prefix, suffix = match.string[: match.start()], match.string[match.end() :]
    if prefix and word.startswith(prefix):
        word = word[len(prefix) :]
    if suffix and word.endswith(suffix) and len(word) > len(suffix):
        word = word[: -len(suffix)].rstrip("\u200c")
    return word


def _aligned_slots(template: str, text: str) -> tuple[float, dict[str, str]]:
    """(share of the template's own words found in `text`, the slot values read).

    Words, not characters: a held-out phrasing shares whole words with a template. The
    template's literal words are matched (difflib); each run of unmatched template words
    faces the text's words between the same matched neighbours. A run as long as its span
    pairs word for word; a lone slot takes the whole span (up to MAX_WORDS words).
    Otherwise a slot that opens a run after a matched word takes the span's first word, one
    that closes it before a matched word the last; but where the run holds more slots than
    the span has words, only at the sentence's end (which slot went unsaid between two
    matched words is unknown). The template's case ending is taken off (`{home}లో`: -లో)."""
    pattern, said = words(template), words(text)
    slotted = [SLOT.fullmatch(w) or SLOT.search(w) for w in pattern]
    keys = [f"\ue000{i}" if m else w for i, (w, m) in enumerate(zip(pattern, slotted, strict=True))]
    blocks = difflib.SequenceMatcher(None, keys, said, autojunk=False).get_matching_blocks()
    literal = sum(1 for m in slotted if not m)
    found = sum(size for _, _, size in blocks) / max(1, literal)
    values: dict[str, str] = {}

    def read(i: int, word: str) -> None:
        match = slotted[i]
        if match and len(slot_names(pattern[i])) == 1 and match.group(1) not in values:
            value = _strip_affixes(word, match)
            if value:
                values[match.group(1)] = value

    a_end = b_end = 0  # the end of the previous matched block, in the template and the text
    for a, b, size in blocks:  # the last block is (len, len, 0)
        run, span = range(a_end, a), said[b_end:b]
        if run and span:
            if len(run) == len(span):
                for i, word in zip(run, span, strict=True):
                    read(i, word)
            elif len(run) == 1:
                if len(span) <= MAX_WORDS:
                    read(run[0], " ".join(span))
            else:  # a slot by a matched word reads the word by it, unless it is ambiguous
                ambiguous = sum(bool(slotted[i]) for i in run) > len(span)
                if a_end > 0 and (not ambiguous or a == len(pattern)):
                    read(run[0], span[0])
                if a < len(pattern) and (not ambiguous or a_end == 0):
                    read(run[-1], span[-1])
        a_end, b_end = a + size, b + size
    return found, values


def extract_slots(templates: list[str], text: str, min_found: float = 0.5) -> dict[str, str]:
    """The values that `text` puts where the user templates have `{slot}`s: each template
    whose own words are found in `text` for at least `min_found` of them is aligned, the
    best aligned first; a slot takes the first value read for it."""
    aligned = sorted((_aligned_slots(t, text) for t in templates if SLOT.search(t)),
                     key=lambda fv: -fv[0])  # fmt: skip
    values: dict[str, str] = {}
    for found, read in aligned:
        if found < min_found:
            break
        values = {**read, **values}
    return values


class SlotValueTagger:
    """See the module doc; `fit` builds one from dialogs with slots."""

    def __init__(self, gazetteer: dict[str, str], ordinary: set[str], endings: list[str],
                 counts: dict[str, dict[str, int]], near_margin: float | None = None,
                 shape: WordShape | None = None):  # fmt: skip
        self.gazetteer, self.ordinary = gazetteer, ordinary
        self.shape = shape  # the letters' odds of a name or a town (None: not used)
        # A word within an edit or two of an ordinary word is more often that word misheard
        # (ఎలో for ఎలా) than a new name (రవి beside అవి): its context must show a value by
        # `near_margin` (log-odds; None: as any unknown word).
        self.near_margin = near_margin
        self._by_length: dict[int, list[str]] = defaultdict(list)
        for word in ordinary:
            self._by_length[len(word)].append(word)
        self._near: dict[str, bool] = {}
        # Closed values (a dish, a day, a count) by their letters: a misheard one (దొరువారం)
        # is read as the value it is nearest to (`closest_value`).
        self._closed = {v.replace(" ", ""): v for v, k in gazetteer.items() if k not in OPEN_TYPES}
        # Known values in a case that changes their letters (ఉదయం ఏడు గంటలకు: ... గంటలు).
        self._case_forms = {form: value for value in gazetteer
                            for form in _inflected_forms(value).values()}  # fmt: skip
        self._closest: dict[str, str | None] = {}
        self.endings = sorted(endings, key=len, reverse=True)  # longest first
        self.counts = counts  # feature -> {type or OTHER: count}
        self.totals = Counter()
        for per_type in counts.values():
            self.totals.update(per_type)
        self.features = len(counts)

    def split_ending(self, word: str) -> tuple[str, str]:
        for ending in self.endings:
            if word.endswith(ending) and len(word) > len(ending) + 1:
                return word[: -len(ending)].rstrip("\u200c"), ending
        return word, ""

    @staticmethod
    def context(said: list[str], i: int, ending: str) -> list[str]:
        prev = said[i - 1] if i > 0 else "<s>"
        after = said[i + 1] if i + 1 < len(said) else "</s>"
        return [f"p:{prev}", f"n:{after}", f"e:{ending}"]

    def open_type(self, features: list[str], margin: float = MARGIN) -> str | None:
        """The likeliest of OPEN_TYPES given the features, if it beats OTHER by `margin`."""
        scores = {}
        for kind in (*OPEN_TYPES, OTHER):
            total = self.totals[kind] + self.features
            scores[kind] = sum(
                math.log((self.counts.get(f, {}).get(kind, 0) + 1) / total) for f in features
            )
        best = max(OPEN_TYPES, key=scores.__getitem__)
        return best if scores[best] - scores[OTHER] >= margin else None

    def near_ordinary(self, word: str) -> bool:
        """Within one edit (two from 6 characters on) of an ordinary word."""
        if word not in self._near:
            if len(self._near) > 50_000:  # a server hears new words for ever
                self._near.clear()
            most = edits_allowed(word)
            self._near[word] = any(
                edit_distance(word, other, most) <= most
                for size in range(len(word) - most, len(word) + most + 1)
                for other in self._by_length.get(size, ())
            )
        return self._near[word]

    def closest_value(self, span: str) -> str | None:
        """The closed-type value within one edit of `span` (two from 6 letters on, spaces
        aside: the judge splits and joins words), else None; a tie is None. Open types
        (names, towns) are left alone: a new name near a known one is still a new name."""
        if span not in self._closest:
            if len(self._closest) > 50_000:
                self._closest.clear()
            letters = span.replace(" ", "")
            most = edits_allowed(letters)
            near = sorted((edit_distance(letters, key, most), key) for key in self._closed
                          if abs(len(key) - len(letters)) <= most)  # fmt: skip
            near = [(d, key) for d, key in near if d <= most]
            best = near[0] if near and (len(near) == 1 or near[1][0] > near[0][0]) else None
            self._closest[span] = None if best is None else self._closed[best[1]]
        return self._closest[span]

    def canonical(self, value: str) -> str:
        """`value` spelt as the closed value it is a misreading of, if any."""
        if value in self.gazetteer or all(w in self.ordinary for w in words(value)):
            return value
        return self.closest_value(value) or value

    def shape_odds(self, word: str) -> float:
        """How much more `word`'s letters look like a name or a town than an ordinary word."""
        return 0.0 if self.shape is None else self.shape.log_odds(word)

    def could_be_open(self, value: str) -> bool:
        """A known value, or letters not plainly those of an ordinary word (SHAPE_FLOOR)."""
        return value in self.gazetteer or self.shape_odds(value) >= SHAPE_FLOOR

    def could_be_value(self, value: str) -> bool:
        """A known value, or one with a word the training turns never used as an ordinary one."""
        return value in self.gazetteer or any(w not in self.ordinary for w in words(value))

    def tag(self, text: str) -> list[tuple[str, str]]:
        """(type, value) of each value in `text`, in order."""
        said, out, i = words(text), [], 0
        while i < len(said):
            known = self._known_at(said, i)
            if known is not None:
                size, kind, value = known
                out.append((kind, value))
                i += size
                continue
            if said[i] not in self.ordinary:
                stem, ending = self.split_ending(said[i])
                margin = MARGIN
                if self.near_margin is not None and self.near_ordinary(said[i]):
                    margin = self.near_margin
                margin -= self.shape_odds(stem)
                kind = self.open_type(self.context(said, i, ending), margin)
                if kind is not None:
                    out.append((kind, stem))
            i += 1
        return out

    def _known_at(self, said: list[str], i: int) -> tuple[int, str, str] | None:
        """(words, type, value) of the value that starts at word `i`: a known value, else a
        span with a word no training turn used that is a misreading of a closed value, or
        such a word that joins a closed value and an ordinary word."""
        sizes = range(min(MAX_WORDS, len(said) - i), 0, -1)
        for size in sizes:
            span = " ".join(said[i : i + size])
            stem, _ = self.split_ending(span)
            for value in (span, stem):
                if value in self.gazetteer:
                    return size, self.gazetteer[value], value
            if span in self._case_forms:
                value = self._case_forms[span]
                return size, self.gazetteer[value], value
        for size in sizes:
            if all(w in self.ordinary for w in said[i : i + size]):
                continue
            span = " ".join(said[i : i + size])
            for form in (span, self.split_ending(span)[0]):
                value = self.closest_value(form)
                if value is not None:
                    return size, self.gazetteer[value], value
        value = self.joined_value(said[i])
        return None if value is None else (1, self.gazetteer[value], value)

    def joined_value(self, word: str) -> str | None:
        """The closed value that `word` joins to an ordinary word, either side (the judge
        drops spaces: రవ్వదోసెప్రయత్నిస్తాను), else None."""
        if word in self.ordinary:
            return None
        for letters, value in self._closed.items():
            if len(letters) >= 3 and len(word) > len(letters):
                if word.startswith(letters) and word[len(letters) :] in self.ordinary:
                    return value
                if word.endswith(letters) and word[: -len(letters)] in self.ordinary:
                    return value
        return None

    def state(self) -> dict:
        return {"gazetteer": self.gazetteer, "ordinary": sorted(self.ordinary),
                "endings": self.endings, "counts": self.counts,
                "near_margin": self.near_margin,
                "shape": None if self.shape is None else self.shape.state()}  # fmt: skip

    @classmethod
    def from_state(cls, state: dict) -> SlotValueTagger:
        shape = state.get("shape")
        return cls(state["gazetteer"], set(state["ordinary"]), state["endings"], state["counts"],
                   state.get("near_margin"),
                   None if shape is None else WordShape.from_state(shape))  # fmt: skip


def fit(dialogs) -> SlotValueTagger:
    """From the dialogs' user turns and slots."""
    gazetteer, ordinary, endings = {}, set(), Counter()
    turns = []  # (words with slots named, the dialog's slots)
    for dialog in dialogs:
        slots = dialog.slots or {}
        gazetteer.update({value: kind for kind, value in slots.values() if value})
        for turn in dialog.turns:
            said = words(delexicalize(turn.user, slots))
            turns.append((said, slots))
            for word in said:
                match = SLOT.search(word)
                if match is None:
                    ordinary.add(word)
                elif word[match.end() :]:
                    endings[word[match.end() :]] += 1
            # Replies' words are ordinary too: a held-out phrasing's word (క్షేమమేనా) that no
            # user turn has was taken for a town. 300 validation dialogs, the judge's
            # transcripts: plans saying a name the dialog never had 0.149 -> 0.126, recall
            # 0.500 -> 0.497; the user's words 0.061 -> 0.044, 0.749 -> 0.744.
            for reply in (r for rs in (turn.valid_replies or {}).values() for r in rs):
                ordinary.update(
                    w
                    for w in words(delexicalize(reply, slots, inflected=True))
                    if not SLOT.search(w)
                )
    endings = [e for e, n in endings.items() if n >= 3 and len(e.strip("\u200c")) >= 2]
    tagger = SlotValueTagger(gazetteer, ordinary, endings, {})
    counts: dict[str, Counter] = defaultdict(Counter)
    for said, slots in turns:
        shown = [SLOT.sub("{}", w) if SLOT.search(w) else w for w in said]  # any slot alike
        for i, word in enumerate(said):
            match = SLOT.search(word)
            if match is None:
                kind, ending = OTHER, tagger.split_ending(word)[1]
            elif match.group(1) in slots:
                kind, ending = slots[match.group(1)][0], word[match.end() :]
            else:
                continue
            if kind in (*OPEN_TYPES, OTHER):
                for feature in tagger.context(shown, i, ending):
                    counts[feature][kind] += 1
    counts = {f: dict(c) for f, c in counts.items()}
    names = [v for v, kind in gazetteer.items() if kind in OPEN_TYPES and " " not in v]
    shape = WordShape.fit(names, ordinary) if names and ordinary - set(names) else None
    return SlotValueTagger(gazetteer, ordinary, tagger.endings, counts, NEAR_MARGIN, shape)
