"""How far the assistant's monologue text runs behind its audio, per voice.

    .venv/bin/python benchmarks/text_lag.py [--split validation] [--rows 400] [--dataset-dir data/build/dataset]

The text streams lay one character a frame (80 ms, `data.text.align_to_frames`) from each
word's start. A voice that speaks more than 12.5 characters a second pushes its text later
and later behind its audio. The S2S model predicts a frame's audio after that frame's text,
so a character laid down after its sound is spoken before the model has read it.

For each assistant row: characters a second (the aligned tokens, spaces included, over the
spoken span), and each character's lag in frames (its text frame minus the frame where it is
spoken: its word's start plus its share of the word, linear). Writes
`benchmarks/results/text_lag.json`.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from telugu_s2s.data.datasets import load_split
from telugu_s2s.data.text import BLANK, SPACE, TextTokenizer, align_to_frames
from telugu_s2s.paths import REPO_ROOT

FRAME_RATE = 12.5
RESULTS = REPO_ROOT / "benchmarks" / "results"


def row_lags(text: str, starts_ms: list[int], char_starts: list[int], seconds: float):
    """(characters a second, (C,) lag in frames of each text token but the spaces)."""
    tok = TextTokenizer()
    frames = align_to_frames(text, starts_ms, char_starts, 10_000, FRAME_RATE, tokenizer=tok)
    laid = np.flatnonzero(frames != BLANK)
    ends = [*starts_ms[1:], seconds * 1000.0]
    spoken = []  # the frame where each laid token's sound is, spaces included
    bounds = [*char_starts[1:], len(text)]
    for start, end, lo, hi in zip(starts_ms, ends, char_starts, bounds, strict=True):
        ids = tok.encode(text[lo:hi].strip()) + [SPACE]
        for k in range(len(ids)):
            spoken.append((start + (end - start) * k / len(ids)) * FRAME_RATE / 1000.0)
    spoken = np.asarray(spoken[: laid.size])
    keep = frames[laid] != SPACE
    lags = (laid - spoken)[keep]
    span = max(1e-3, seconds - starts_ms[0] / 1000.0)
    return laid.size / span, lags


def measure(dataset_dir: str, split: str, rows: int) -> dict:
    data = load_split(dataset_dir, split).select_columns(
        ["role", "speaker", "text", "word_starts_ms", "word_char_start", "duration"]
    )
    wanted = [i for i, role in enumerate(data["role"]) if role == "assistant"]
    by_voice: dict[str, list[int]] = defaultdict(list)
    for i in wanted:
        by_voice[data[i]["speaker"]].append(i)
    out = {}
    for voice, indices in sorted(by_voice.items()):
        rates, lags, last = [], [], []
        for i in indices[:rows]:
            row = data[i]
            if not row["word_starts_ms"]:
                continue
            rate, lag = row_lags(row["text"], row["word_starts_ms"], row["word_char_start"],
                                 row["duration"])  # fmt: skip
            rates.append(rate)
            lags.append(lag)
            last.append(float(lag[-1]) if lag.size else 0.0)
        every = np.concatenate(lags)
        out[voice] = {
            "rows": len(rates),
            "chars_per_s": round(float(np.mean(rates)), 2),
            "lag_frames_mean": round(float(every.mean()), 2),
            "lag_frames_last_char_mean": round(float(np.mean(last)), 2),
            "share_chars_lag_over_2_frames": round(float((every > 2).mean()), 3),
            "share_chars_lag_over_5_frames": round(float((every > 5).mean()), 3),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset-dir", default=str(REPO_ROOT / "data/build/dataset"))
    parser.add_argument("--split", default="validation")
    parser.add_argument("--rows", type=int, default=400, help="assistant rows per voice")
    parser.add_argument("--out", default=str(RESULTS / "text_lag.json"))
    args = parser.parse_args()
    report = {
        "command": f"benchmarks/text_lag.py --split {args.split} --rows {args.rows}",
        "frame_rate": FRAME_RATE,
        "voices": measure(args.dataset_dir, args.split, args.rows),
    }
    Path(args.out).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(report, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
