"""How far the user's words alone determine the reply: a retrieval baseline for the reply CER.

    .venv/bin/python benchmarks/reply_retrieval.py [--split validation] [--dialogs 0]

No model. Every turn of the split is answered with the reply of the most similar training
turn: the user's words with the dialog's slot values (names, places, ...) replaced by their
slot names, compared as character 3-gram TF-IDF vectors (cosine). The reply is that training
turn's first valid reply in the dialog's style, with its slot names filled with this dialog's
values. It is scored, as the S2S evaluation scores replies, against the nearest of the turn's
valid replies. Three queries: the user's turn alone; with the user's previous turn; and with
the assistant's previous reply (the voiced one), which a text stream holds in its window.

It also counts the turns whose reply template (a valid reply with its slots named) occurs
among the training replies at all: a model that only recombines what it read can say at
most those right. If retrieval already lands near the target (0.30), what limits a text
stage is what it has learnt; if it lands far, the words do not determine the reply.
Writes `benchmarks/results/reply_retrieval.json`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from telugu_s2s.data.text_dialogs import load_dialogs
from telugu_s2s.evaluation.cer import ErrorRate, cer
from telugu_s2s.paths import REPO_ROOT
from telugu_s2s.slot_values import delexicalize, fill
from telugu_s2s.trigram_index import TrigramIndex

RESULTS = REPO_ROOT / "benchmarks" / "results"
QUERIES = ("user", "previous_user", "previous_reply")


def fill_slots(template: str, slots: dict | None) -> str:
    return fill(template, {var: value for var, (_, value) in (slots or {}).items()})


def turn_records(dialogs) -> list[dict]:
    """One record per turn with valid replies in the dialog's style; `templates` holds the
    valid replies of each style with their slots named."""
    records = []
    for dialog in dialogs:
        style, previous, reply = dialog.style or "casual", "", ""
        for turn in dialog.turns:
            user = delexicalize(turn.user, dialog.slots)
            valid = turn.valid_replies or {}
            if valid.get(style):
                records.append({
                    "user": user, "previous_user": f"{previous} | {user}",
                    "previous_reply": f"{reply} | {user}", "style": style,
                    "replies": list(valid[style]), "slots": dialog.slots,
                    "templates": {
                        s: [delexicalize(r, dialog.slots) for r in rs] for s, rs in valid.items()
                    },
                })  # fmt: skip
            previous, reply = user, delexicalize(turn.reply(style), dialog.slots)
    return records


def retrieval_figures(train: list[dict], test: list[dict], examples: int = 6) -> dict:
    known = {t for r in train for ts in r["templates"].values() for t in ts}
    seen = [any(t in known for t in r["templates"][r["style"]]) for r in test]
    figures = {"turns": len(test), "train_turns": len(train)}
    figures["template_seen_in_training"] = round(sum(seen) / max(1, len(test)), 4)
    for query in QUERIES:
        index = TrigramIndex([r[query] for r in train])
        picks = index.nearest([r[query] for r in test])
        rate, shown = ErrorRate(), []
        for record, pick in zip(test, picks, strict=True):
            options = train[pick]["templates"]
            said = fill_slots((options.get(record["style"]) or next(iter(options.values())))[0],
                              record["slots"])  # fmt: skip
            nearest = min(record["replies"], key=lambda reply: cer(said, reply))
            rate.add(said, nearest)
            if len(shown) < examples:
                shown.append({"user": record["user"], "reply": said, "nearest": nearest})
        figures[f"reply_valid_cer_{query}"] = round(rate.value, 4)
        figures[f"examples_{query}"] = shown
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=str(REPO_ROOT / "data" / "build" / "dataset"))
    parser.add_argument("--split", default="validation")
    parser.add_argument("--dialogs", type=int, default=0, help="the first N (0: all)")
    parser.add_argument("--output", default=str(RESULTS / "reply_retrieval.json"))
    args = parser.parse_args()
    start = time.perf_counter()
    test_dialogs = load_dialogs(args.dataset, args.split)
    if args.dialogs:
        test_dialogs = test_dialogs[: args.dialogs]
    train = turn_records(load_dialogs(args.dataset, "train"))
    figures = retrieval_figures(train, turn_records(test_dialogs))
    result = {"split": args.split, "dialogs": len(test_dialogs), **figures,
              "seconds": round(time.perf_counter() - start, 1)}  # fmt: skip
    print(json.dumps({k: v for k, v in result.items() if not k.startswith("examples")}))
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n")


if __name__ == "__main__":
    main()
