"""What the user's words say about a state beyond its own phrasings: a label of every
training user turn (its emotion; the kind of fact its reply recalls), read by a naive Bayes
over all of them, against each state's labels.

A state has a handful of phrasings; a label is said in many across many states ("కంగారుగా
ఉంది" and "టెన్షన్ పడుతున్నాను" are both anxious; "మా ఊరి పేరు మర్చిపోయారేమో" and "మేము
ఎక్కడ ఉంటామో గుర్తుందా?" both ask back a town), so the label's model carries a held-out
phrasing to the states that share its label.
"""

from __future__ import annotations

import numpy as np

from telugu_s2s.slot_values import OPEN_TYPES, slot_names
from telugu_s2s.text_topics import NaiveBayesTopics

# A state whose label the words miss stays reachable: its share of each label is mixed
# with a uniform one at this weight (for the emotion, 0.2 read worse in session 21; for the
# recalled kind, 0.05 to 0.2 read alike in session 23).
LABEL_FLOOR = 0.05
NO_RECALL = "-"


class LabelEvidence:
    """weight * log P(a state's label | the user's words), (S,): the label's posterior under
    `model`, against each state's share of labels (`state_counts`, one dict per state)."""

    def __init__(self, model: NaiveBayesTopics, state_counts: list[dict[str, int]],
                 weight: float):  # fmt: skip
        self.model, self.state_counts, self.weight = model, state_counts, weight
        self.labels = sorted(model.prior)
        counts = np.array([[c.get(label, 0) for label in self.labels] for c in state_counts],
                          dtype=np.float64)  # fmt: skip  # (S, L)
        shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
        shares[counts.sum(axis=1) == 0] = 1.0 / len(self.labels)  # never labelled
        self.state_share = (1 - LABEL_FLOOR) * shares + LABEL_FLOOR / len(self.labels)  # (S, L)

    def __len__(self) -> int:
        return len(self.state_counts)

    def __call__(self, user_text: str) -> np.ndarray | float:
        if not user_text.strip():
            return 0.0
        log_probs = self.model.log_posterior(user_text)
        heard = np.exp([log_probs[label] for label in self.labels])  # (L,)
        return self.weight * np.log(self.state_share @ heard)

    def state(self) -> dict:
        return {"model": self.model.state(), "state_counts": self.state_counts,
                "weight": self.weight}  # fmt: skip

    @classmethod
    def from_state(cls, state: dict) -> LabelEvidence:
        return cls(NaiveBayesTopics.from_state(state["model"]), state["state_counts"],
                   state["weight"])  # fmt: skip


def recalled_kind(user: str, replies: list[str], slots: dict | None) -> str:
    """The kinds of the dialog's facts that `replies` say and the user's turn does not (both
    templates, the dialog's values named: `delexicalize`): "name", "place", "name+other"...;
    NO_RECALL for none. A name and a town are told apart, since a user who asks back one is
    easily answered with the other."""
    slots = slots or {}
    stated = set(slot_names(user))
    kinds = set()
    for var in set(slot_names(" ".join(replies))) - stated:
        if var in slots:
            kind = slots[var][0]
            kinds.add("other" if kind not in OPEN_TYPES else "place" if kind == "place" else "name")
    return "+".join(sorted(kinds)) or NO_RECALL
