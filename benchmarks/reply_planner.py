"""The reply planner's replies, from the user's words and from the judge's transcripts.

    .venv/bin/python benchmarks/reply_planner.py [--split validation] [--dialogs 0] [--no-judge]

Fits `telugu_s2s.reply_planner` on the training dialogs (or loads `--planner`), then plays
each dialog of the split as one session, as the server does: every user turn, read either
as the words themselves (`gold`) or as the judge transcribes the rendered user audio in its
held-out voice (`judge`, `checkpoints/asr`), updates the session's topic (the text topic
model on the same text, `checkpoints/text_topics`) and then its plan. Each plan is scored
against the nearest of the turn's valid replies in the dialog's style, as the evaluation
scores reply audio: this is the reply CER that a speaker who says the plan perfectly would
reach. Also: the CER by turn, and slot recall on turns that need an earlier fact (does the
plan say the value the dialog stated?), and invented values: the share of plans that say a
name or a town that the dialog never had (a misheard word taken for a name, said back to the
user). Writes `benchmarks/results/reply_planner.json`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from telugu_s2s import text_topics
from telugu_s2s.data.text_dialogs import load_dialogs
from telugu_s2s.evaluation.cer import ErrorRate, cer
from telugu_s2s.paths import REPO_ROOT
from telugu_s2s.reply_planner import ReplyPlanner, SessionPlanner, fit
from telugu_s2s.slot_values import OPEN_TYPES

RESULTS = REPO_ROOT / "benchmarks" / "results"
STYLES = ("formal", "casual")


def judge_transcripts(dataset_dir: str, split: str, dialogs, asr_dir: Path) -> dict:
    """(dialog_id, turn index) -> the judge's transcript of that user turn's audio."""
    import soundfile as sf

    from telugu_s2s.asr import Judge
    from telugu_s2s.data.datasets import load_split

    wanted = {d.dialog_id for d in dialogs}
    rows = load_split(dataset_dir, split).select_columns(
        ["audio", "role", "dialog_id", "turn_index"]
    )
    keys, clips, rate = [], [], None
    for row in rows:
        if row["role"] == "user" and row["dialog_id"] in wanted:
            audio, rate = sf.read(row["audio"]["path"], dtype="float32")
            keys.append((row["dialog_id"], row["turn_index"]))
            clips.append(audio)
    texts = Judge.load(asr_dir).transcribe(clips, sample_rate=rate)
    return dict(zip(keys, texts, strict=True))


def play(planner: ReplyPlanner, topics, dialogs, heard: dict | None, examples: int = 6) -> dict:
    """Every dialog as one session; `heard` maps (dialog, turn) to a transcript (None: the words)."""
    rate, by_turn, shown = ErrorRate(), {k: ErrorRate() for k in ("0", "1", "2+")}, []
    recall_turns = recalled = plans = invented = 0
    for dialog in dialogs:
        style = dialog.style if dialog.style in STYLES else "casual"
        true_values = {value for _, value in (dialog.slots or {}).values()}
        session, topic = SessionPlanner(planner), text_topics.SessionTopic(topics)
        for turn in dialog.turns:
            text = turn.user if heard is None else heard.get((dialog.dialog_id, turn.index), "")
            topic.add(turn.index + 1, text)
            plan = session.reply(text, style, topic.top if turn.index > 0 else None)
            plans += 1
            said = {v for k, v in plan.values if k in OPEN_TYPES} | {
                v
                for var, v in plan.slots.items()
                if planner.slot_type(plan.state, var) in OPEN_TYPES
            }  # tagged, or read by aligning the turn
            invented += any(v in plan.text and v not in true_values for v in said)
            options = (turn.valid_replies or {}).get(style)
            if not options:
                continue
            nearest = min(options, key=lambda reply: cer(plan.text, reply))
            rate.add(plan.text, nearest)
            by_turn["2+" if turn.index >= 2 else str(turn.index)].add(plan.text, nearest)
            if turn.depends_on and turn.memory:
                values = [v for _, v in (dialog.slots or {}).values() if v in nearest]
                if values:
                    recall_turns += 1
                    recalled += all(v in plan.text for v in values)
            if len(shown) < examples and cer(plan.text, nearest) > 0.3:
                shown.append({"user": text, "plan": plan.text, "nearest": nearest})
    return {
        "turns": rate.pairs, "reply_valid_cer": round(rate.value, 4),
        "reply_valid_cer_by_turn": {k: round(r.value, 4) for k, r in by_turn.items() if r.pairs},
        "recall_turns": recall_turns, "slot_recall": round(recalled / max(recall_turns, 1), 4),
        "invented_values": round(invented / max(plans, 1), 4),
        "examples": shown,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=str(REPO_ROOT / "data" / "build" / "dataset"))
    parser.add_argument("--split", default="validation")
    parser.add_argument("--dialogs", type=int, default=0, help="the first N (0: all)")
    parser.add_argument("--planner", help="a saved planner (default: fit on the training dialogs)")
    parser.add_argument("--topics", default=str(text_topics.DEFAULT_DIR))
    parser.add_argument("--asr", default=str(REPO_ROOT / "checkpoints" / "asr"))
    parser.add_argument("--no-judge", action="store_true", help="the words only")
    parser.add_argument("--risk-states", type=int, help="override the planner's risk_states")
    parser.add_argument("--output", default=str(RESULTS / "reply_planner.json"))
    args = parser.parse_args()
    start = time.perf_counter()
    dialogs = load_dialogs(args.dataset, args.split)[: args.dialogs or None]
    if args.planner:
        planner = ReplyPlanner.load(args.planner)
    else:
        planner = fit(load_dialogs(args.dataset, "train"))
    if args.risk_states:
        planner.risk_states = args.risk_states
    topics = text_topics.NaiveBayesTopics.load(args.topics)
    result = {"split": args.split, "dialogs": len(dialogs), "states": planner.num_states,
              "risk_states": planner.risk_states,
              "gold": play(planner, topics, dialogs, None)}  # fmt: skip
    if not args.no_judge:
        heard = judge_transcripts(args.dataset, args.split, dialogs, Path(args.asr))
        result["judge"] = play(planner, topics, dialogs, heard)
    result["seconds"] = round(time.perf_counter() - start, 1)
    brief = {k: {m: v for m, v in r.items() if m != "examples"} if isinstance(r, dict) else r
             for k, r in result.items()}  # fmt: skip
    print(json.dumps(brief, ensure_ascii=False))
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n")


if __name__ == "__main__":
    main()
