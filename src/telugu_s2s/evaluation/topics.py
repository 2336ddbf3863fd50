"""The dialog's topic so far, as the server names it (`serving.turns.SessionTopic`), scored
turn by turn from the second user turn (the dialog's label; an opening greeting names none):
- `topic_dialog`: what the server shows. With a text topic model, each turn's final
  transcript (the judge's) under it; without one, the S2S topic head;
- `topic_dialog_head`: the S2S topic head's log-probabilities, summed;
- `topic_dialog_votes`: the most voted turn topic of the head.
"""

from __future__ import annotations

from collections import Counter

from torch import Tensor

from telugu_s2s.labels import TOPICS
from telugu_s2s.text_topics import fold_evidence


def _top(evidence: dict[str, float]) -> str:
    return max(evidence, key=evidence.__getitem__)


class DialogTopics:
    """One rendering's running topic evidence; `add` tallies each user turn after the first."""

    def __init__(self, tally, text_model=None):
        self.tally, self.text_model = tally, text_model
        self.votes: Counter = Counter()
        self.head: dict[str, float] | None = None
        self.text: dict[str, float] | None = None

    def add(self, truth: str, head_logits: Tensor, final_transcript: str | None,
            opening: bool = False) -> None:  # fmt: skip
        """`head_logits` (num_topics,): the S2S topic head on this turn. The `opening` turn
        feeds the text model's evidence only, and is not scored."""
        if self.text_model is not None and final_transcript and final_transcript.strip():
            self.text = fold_evidence(self.text, self.text_model.log_posterior(final_transcript))
        if opening:
            return
        log_probs = dict(zip(TOPICS, head_logits.float().log_softmax(-1).tolist(), strict=True))
        self.votes[_top(log_probs)] += 1
        self.head = fold_evidence(self.head, log_probs)
        shown = self.text if self.text_model is not None else self.head
        self.tally.add("topic_dialog_votes", self.votes.most_common(1)[0][0] == truth)
        self.tally.add("topic_dialog_head", _top(self.head) == truth)
        self.tally.add("topic_dialog", shown is not None and _top(shown) == truth)
