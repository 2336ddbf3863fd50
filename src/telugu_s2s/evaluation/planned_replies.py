"""The evaluation's planned replies: what the reply planner makes each session say, as served.

The server plans each reply from the judge's transcript of the user's utterance and the
session's topic so far (`serving/planning.py`); the evaluation does the same from the judge's
transcripts of the rendered user turns (`_final_transcripts` in `evaluation/s2s.py`). The
memory_off session plans with no slot memory across turns, the other sessions with it.
"""

from __future__ import annotations

import math

PLAN_FRAMES_PER_CHAR = 1.8  # a plan's window: the model said 52 of 236 test plans slower than 1.3


def reply_plans(
    planner, topic_model, turns: list[int], finals: list[str], sessions: dict[str, tuple[str, bool]]
) -> dict[str, list[str]]:
    """Each session's plans, one per turn: `turns` are the turn numbers (0: the opening),
    `finals` their transcripts, `sessions` name -> (style, remember slot values)."""
    from telugu_s2s.reply_planner import SessionPlanner
    from telugu_s2s.text_topics import SessionTopic

    plans = {}
    for name, (style, remember) in sessions.items():
        session, topic, said = (
            SessionPlanner(planner, remember=remember),
            SessionTopic(topic_model),
            [],
        )
        for number, (turn, text) in enumerate(zip(turns, finals, strict=True), start=1):
            topic.add(number, text)
            said.append(session.reply(text, style, topic.top if turn > 0 else None).text)
        plans[name] = said
    return plans


def plan_frames(plans: dict[str, list[str]], turns: list[int]) -> dict[int, int]:
    """turn -> the frames its longest plan may take, at the slowest speaking rate."""
    return {
        turn: math.ceil(PLAN_FRAMES_PER_CHAR * max(len(said[k]) for said in plans.values()))
        for k, turn in enumerate(turns)
    }
