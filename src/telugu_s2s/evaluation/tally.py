"""The S2S evaluation's running totals: corpus-level error rates and per-turn hits."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np

from telugu_s2s.evaluation.cer import ErrorRate
from telugu_s2s.metrics.audio import F0_TOLERANCE


def mean_or_nan(values: list) -> float:
    return float(np.mean(values)) if values else math.nan


def nan_to_none(value):
    return None if isinstance(value, float) and not math.isfinite(value) else value


RATES = ("monologue", "user_transcript", "round_trip", "memory_on", "memory_off", "style_own",
         "style_other", "reply_audio", "reply_audio_valid",
         "user_transcript_served", "plan_valid")  # fmt: skip


@dataclass
class Tally:
    rates: dict[str, ErrorRate] = field(default_factory=lambda: {k: ErrorRate() for k in RATES})
    hits: dict[str, list] = field(default_factory=lambda: defaultdict(list))  # per-turn values
    frames: Counter = field(default_factory=Counter)  # generated (main replies), stepped (all)
    slot_values: dict[str, list[str]] = field(default_factory=dict)  # dialog -> its slot values
    # The speaking CER of each assistant voice (the total pools them): voices that speak faster
    # than the text stream lays characters (one a frame) fall behind (benchmarks/text_lag.py).
    speaking_by_voice: dict[str, ErrorRate] = field(default_factory=lambda: defaultdict(ErrorRate))

    def add(self, name: str, value) -> None:
        self.hits[name].append(value)

    def summary(self) -> dict:
        rate, hits = self.rates, self.hits
        ratios = [r for r in hits["f0_ratio"] if math.isfinite(r)]
        within = [abs(r - 1.0) <= F0_TOLERANCE for r in hits["f0_ratio"]]  # NaN: False
        return {
            "monologue_cer": rate["monologue"].value,
            "speaking_cer": ErrorRate.pooled(self.speaking_by_voice.values()).value,
            "speaking_cer_by_voice": {
                voice: nan_to_none(r.value) for voice, r in sorted(self.speaking_by_voice.items())
            },
            "reply_audio_cer": rate["reply_audio"].value,
            "reply_audio_valid_cer": rate["reply_audio_valid"].value,
            # The reply planner's text against the nearest valid reply (NaN without one).
            "plan_valid_cer": rate["plan_valid"].value,
            "self_round_trip_cer": rate["round_trip"].value,
            "user_transcript_cer": rate["user_transcript"].value,
            "user_transcript_served_cer": rate["user_transcript_served"].value,
            "topic_accuracy": mean_or_nan(hits["topic"]),
            "topic_accuracy_dialog": mean_or_nan(hits["topic_dialog"]),
            "topic_accuracy_dialog_head": mean_or_nan(hits["topic_dialog_head"]),
            "topic_accuracy_dialog_votes": mean_or_nan(hits["topic_dialog_votes"]),
            "sentiment_mae": mean_or_nan(hits["sentiment_error"]),
            "emotion_accuracy": mean_or_nan(hits["emotion"]),
            "context_turns": rate["memory_on"].pairs,
            "context_cer_memory_on": rate["memory_on"].value,
            "context_cer_memory_off": rate["memory_off"].value,
            # Recall turns whose fact could be read off the reference (evaluation/recall.py);
            # "far": the fact's turn ended more than the attention window before the reply.
            "slot_recall_turns": len(hits["slot_on"]),
            "slot_recall_memory_on": mean_or_nan(hits["slot_on"]),
            "slot_recall_memory_off": mean_or_nan(hits["slot_off"]),
            "slot_recall_far_turns": len(hits["slot_on_far"]),
            "slot_recall_far_memory_on": mean_or_nan(hits["slot_on_far"]),
            "slot_recall_far_memory_off": mean_or_nan(hits["slot_off_far"]),
            # Of the user's words that the nearest valid reply repeats, the share the reply does.
            "words_to_repeat": len(hits["words_repeated"]),
            "words_repeated": mean_or_nan(hits["words_repeated"]),
            "speaker_id_accuracy": mean_or_nan(hits["speaker"]),
            "f0_within_15pct": mean_or_nan(within),
            "f0_median_ratio": float(np.median(ratios)) if ratios else math.nan,
            "style_turns": len(hits["style_differs"]),
            "style_differs": mean_or_nan(hits["style_differs"]),
            "style_cer_own": rate["style_own"].value,
            "style_cer_other": rate["style_other"].value,
        }
