"""The dialog's topic so far, scored turn by turn from the second user turn (the dialog's
label; an opening greeting names none):
- `topic_dialog`: what the server shows, by the server's rule (`text_topics.SessionTopic`):
  each turn's final transcript under the text topic model, or without one the S2S topic head;
- `topic_dialog_head`: the S2S topic head's log-probabilities, summed;
- `topic_dialog_votes`: the most voted turn topic of the head.
"""

from __future__ import annotations

from collections import Counter

from torch import Tensor

from telugu_s2s.labels import TOPICS
from telugu_s2s.text_topics import SessionTopic, top_topic


class DialogTopics:
    """One rendering's running topic evidence; `add` tallies each user turn after the first."""

    def __init__(self, tally, text_model=None):
        self.tally = tally
        self.shown, self.head = SessionTopic(text_model), SessionTopic(None)
        self.votes: Counter = Counter()

    def add(self, truth: str, head_logits: Tensor, final_transcript: str | None, turn: int) -> None:
        """`head_logits` (num_topics,): the S2S topic head on turn number `turn` (1: the
        opening, which feeds the text model's evidence only and is not scored)."""
        head = dict(zip(TOPICS, head_logits.float().softmax(-1).tolist(), strict=True))
        self.shown.add(turn, final_transcript or "", head)
        self.head.add(turn, "", head)
        if turn <= 1:
            return
        self.votes[top_topic(head)] += 1
        self.tally.add("topic_dialog_votes", self.votes.most_common(1)[0][0] == truth)
        self.tally.add("topic_dialog_head", self.head.top == truth)
        self.tally.add("topic_dialog", self.shown.top == truth)
