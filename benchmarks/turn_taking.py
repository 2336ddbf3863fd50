"""Does the served model take its turn? The S2S evaluation opens the reply span for the model
(it forces silence while the user speaks and lets it speak after); a live session in stream
mode forces nothing, so the model itself must start speaking once the user stops.

    .venv/bin/python benchmarks/turn_taking.py [--clips 12] [--wait 8] [--s2s-dir checkpoints/s2s]
        [--noise-dbfs -50 --name turn_taking_noise]

Each held-out utterance (harness.user_clips: sentences outside the corpus, in held-out
voices) goes to a fresh session of the served engine, followed
by `--wait` seconds of silence (the served speaker guidance, default sampling). Reports the share of utterances the model answered (any
frame flagged `speaking` after the utterance), the delay to the first such frame, and the
S2S model's own transcript of each utterance. Writes benchmarks/results/turn_taking.json.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from harness import (
    FRAME_MS,
    engine_settings,
    machine,
    percentiles,
    silence,
    user_clips,
    write_result,
)

from telugu_s2s.serving.engine import ModelEngine
from telugu_s2s.serving.engine_api import SlotConfig

FRAME = 1280


def answer(
    engine: ModelEngine, clip: np.ndarray, wait_s: float, noise_dbfs: float | None = None
) -> dict:
    """One session: the utterance, then silence; when (if at all) the model starts speaking.
    With `noise_dbfs`, white noise at that RMS level runs under the whole session (a
    microphone's floor: digital silence never reaches a live server)."""
    audio = np.concatenate([clip, silence(wait_s)])
    if noise_dbfs is not None:
        rng = np.random.default_rng(0)
        audio = audio + (10 ** (noise_dbfs / 20) * rng.standard_normal(audio.size)).astype(
            np.float32
        )
    user_frames = -(-clip.size // FRAME)
    slot = engine.join(SlotConfig("priya"))
    speaking, heard, said = [], [], []
    for start in range(0, audio.size - FRAME + 1, FRAME):
        result = engine.step({slot: audio[start : start + FRAME]})[slot]
        speaking.append(result.speaking)
        heard.append(result.user_text)
        said.append(result.assistant_text)
    engine.leave(slot)
    after = [t for t, s in enumerate(speaking) if s and t >= user_frames]
    return {
        "answered": bool(after),
        "delay_ms": (after[0] - user_frames) * FRAME_MS if after else None,
        "speaking_frames_after": len(after),
        "heard": "".join(heard).strip(),
        "said": "".join(said).strip(),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clips", type=int, default=12)
    parser.add_argument("--wait", type=float, default=8.0)
    parser.add_argument("--s2s-dir", default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--noise-dbfs", type=float, default=None, help="a noise floor, e.g. -50")
    parser.add_argument("--name", default="turn_taking", help="the result's file name")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    engine = ModelEngine("checkpoints", s2s_dir=args.s2s_dir, max_slots=1, seed=0,
                         **engine_settings())  # fmt: skip
    sessions = [answer(engine, clip, args.wait, args.noise_dbfs) for clip in user_clips(args.clips)]
    delays = [s["delay_ms"] for s in sessions if s["delay_ms"] is not None]
    answered = sum(s["answered"] for s in sessions)
    print(f"answered {answered}/{len(sessions)}; delay {percentiles(delays)}")
    write_result(args.name, {
        "what": "share of held-out utterances the served model answers in stream mode, unforced",
        "s2s_dir": args.s2s_dir or "checkpoints/s2s", "wait_s": args.wait,
        "noise_dbfs": args.noise_dbfs,
        "answered": answered / len(sessions), "delay_ms": percentiles(delays),
        "sessions": sessions, "machine": machine(args.threads),
    })  # fmt: skip
    engine.close()


if __name__ == "__main__":
    main()
