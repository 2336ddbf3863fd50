"""A reply planner fitted on dialogs: its states, their user turns and transitions."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from telugu_s2s.reply_planner.evidence import LabelEvidence, recalled_kind
from telugu_s2s.reply_planner.planner import EMOTION_WEIGHT, RECALLED_WEIGHT, ReplyPlanner
from telugu_s2s.slot_values import delexicalize, slot_names
from telugu_s2s.slot_values import fit as fit_tagger
from telugu_s2s.text_topics import NaiveBayesTopics, fit_emotions


def fit(dialogs, **settings) -> ReplyPlanner:
    """States, their user turns and the counts of their transitions, from the dialogs' turns
    with valid replies (a turn without them breaks the chain)."""
    states: dict[str, int] = {}
    replies, topics, users, user_states, transitions = [], [], [], [], {}
    types: list[dict[str, Counter]] = []  # per state: slot var -> its lexicon types
    emotions: list[Counter] = []  # per state: its user turns' emotions
    kinds_asked: list[Counter] = []  # per state: the kinds of fact its replies recall
    asked: list[tuple[str, str]] = []  # (user turn, the kind of fact its reply recalls)
    starts: dict[int, float] = {}
    for dialog in dialogs:
        previous = None
        for turn in dialog.turns:
            valid = {s: [delexicalize(r, dialog.slots, inflected=True) for r in rs]
                     for s, rs in (turn.valid_replies or {}).items() if rs}  # fmt: skip
            if not valid:
                previous = None
                continue
            key = json.dumps(valid, ensure_ascii=False, sort_keys=True)
            if key not in states:
                states[key] = len(replies)
                replies.append(valid)
                topics.append(set())
                types.append({})
                emotions.append(Counter())
                kinds_asked.append(Counter())
            state = states[key]
            topics[state].add(dialog.topic)
            emotions[state][turn.emotion] += 1
            said = [r for rs in valid.values() for r in rs]
            users.append(delexicalize(turn.user, dialog.slots))
            kind = recalled_kind(users[-1], said, dialog.slots)
            asked.append((turn.user, kind))
            kinds_asked[state][kind] += 1
            for var in slot_names(users[-1] + " ".join(said)):
                if var in (dialog.slots or {}):
                    types[state].setdefault(var, Counter())[dialog.slots[var][0]] += 1
            user_states.append(state)
            if previous is None:
                starts[state] = starts.get(state, 0.0) + 1.0
            else:
                transitions[previous, state] = transitions.get((previous, state), 0.0) + 1.0
            previous = state
    if not replies:
        raise ValueError("a reply planner needs dialogs whose turns have valid replies")
    start_counts = [starts.get(s, 0.0) for s in range(len(replies))]
    edges = [(a, b, c) for (a, b), c in sorted(transitions.items())]
    kinds: dict[str, Counter] = {}
    for dialog in dialogs:
        for var, (kind, _) in (dialog.slots or {}).items():
            kinds.setdefault(var, Counter())[kind] += 1
    var_types = {var: counts.most_common(1)[0][0] for var, counts in kinds.items()}
    state_var_types = [{v: c.most_common(1)[0][0] for v, c in per.items()} for per in types]
    return ReplyPlanner(
        replies, topics, users, user_states, start_counts, edges, var_types, fit_tagger(dialogs),
        state_var_types=state_var_types,
        emotion=LabelEvidence(fit_emotions(dialogs), [dict(c) for c in emotions], EMOTION_WEIGHT),
        recalled=LabelEvidence(NaiveBayesTopics(asked), [dict(c) for c in kinds_asked],
                               RECALLED_WEIGHT),
        **settings,
    )  # fmt: skip


def train(dataset_dir: str | Path) -> ReplyPlanner:
    """On the training dialogs of a built dataset (`dialogs.jsonl`)."""
    from telugu_s2s.data.text_dialogs import load_dialogs

    return fit(load_dialogs(dataset_dir, "train"))
