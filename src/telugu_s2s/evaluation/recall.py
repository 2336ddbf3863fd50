"""Slot recall: does a reply that depends on an earlier turn say the fact it needs?

The fact of a recall turn is read off the reference reply: the words of it that the earlier
(`depends_on`) user turns said and that the recall question itself does not say. Where the
generator's slot values are known (generated dialogs), only they can be facts; otherwise
(hand-written dialogs) any word of the reference can. E.g. the user said "ఫిబ్రవరిలో నా
కాలేజీ మొదలవుతుంది", later asked "నా కాలేజీ ఎప్పుడు మొదలవుతుందన్నాను?", and the reference
answers "మీ కాలేజీ ఫిబ్రవరిలో మొదలవుతుందన్నారు": the fact is ఫిబ్రవరిలో.
A generated reply recalls the slot when every fact word appears in it. Telugu inflects by
suffixes (ఫిబ్రవరి, ఫిబ్రవరిలో), so words match on a shared stem: all but their last two
code points, and at least three.
"""

from __future__ import annotations

from pathlib import Path

from telugu_s2s.data.corpus import load_corpus
from telugu_s2s.data.text_dialogs import DIALOGS_FILE
from telugu_s2s.evaluation.cer import cer, normalize_text

MIN_FACT_CHARS = 4  # shorter words (మీ, నా, ఆ) are too common to be a fact
PUNCTUATION = ",.?!;:'\"-"


def _stem(word: str) -> str:
    return word[: max(3, len(word) - 2)]


def _matches(word: str, other: str) -> bool:
    a, b = _stem(word), _stem(other)
    return a.startswith(b) or b.startswith(a)


def _words(text: str) -> list[str]:
    words = (w.strip(PUNCTUATION) for w in normalize_text(text).split())
    return [w for w in words if w]


def fact_words(
    reference: str, earlier_user_turns: list[str], question: str, slots: list[str] | None = None
) -> list[str]:
    """The words of `reference` that carry the remembered fact (empty: none could be told).
    `slots`: the dialog's slot values, when known: only they can be facts."""
    earlier = [w for text in earlier_user_turns for w in _words(text)]
    asked, said = _words(question), _words(reference)
    candidates = [w for s in slots for w in _words(s)] if slots is not None else said
    return [
        w for w in dict.fromkeys(candidates)
        if len(w) >= MIN_FACT_CHARS and any(_matches(w, r) for r in said)
        and any(_matches(w, e) for e in earlier) and not any(_matches(w, q) for q in asked)
    ]  # fmt: skip


def recalls(reply: str, facts: list[str]) -> bool:
    """Every fact word appears (on its stem) in the reply."""
    said = _words(reply)
    return bool(facts) and all(any(_matches(f, w) for w in said) for f in facts)


def dialog_slot_values(dataset_dir: str | Path) -> dict[str, list[str]]:
    """dialog id -> its slot values, for the generated dialogs of a synthesized dataset
    (its dialogs.jsonl); empty for datasets without one."""
    path = Path(dataset_dir) / DIALOGS_FILE
    if not path.exists():
        return {}
    return {
        d.dialog_id: [word for _, word in d.slots.values()] for d in load_corpus(path) if d.slots
    }


def content_words(text: str) -> set[str]:
    """Words of `MIN_FACT_CHARS` or more, punctuation dropped: names, places, dishes."""
    return {w for w in _words(text) if len(w) >= MIN_FACT_CHARS}


def words_to_repeat(user_text: str, said: str, valid_replies: list[str]) -> list[bool]:
    """For each word of the user's turn that the nearest valid reply (to `said`) repeats,
    whether `said` repeats it too: how well a reply copies a name or a place it just heard."""
    nearest = min(valid_replies, key=lambda reply: cer(said, reply))
    wanted, repeated = content_words(user_text) & content_words(nearest), content_words(said)
    return [word in repeated for word in sorted(wanted)]
