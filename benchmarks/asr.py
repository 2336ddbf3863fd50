"""The judge's own accuracy: recognizer CER on held-out dialogs, clean and through channels.

    .venv/bin/python benchmarks/asr.py [--model checkpoints/asr] [--dataset data/build/dataset]

Writes benchmarks/results/asr.json. Every figure is a corpus-level CER (edits over reference
characters) on a fixed, evenly spaced subset of each split's utterances, also per voice:
- `test_user_clean`: user utterances of the held-out test dialogs, in the espeak-ng
  variants that no training row uses (the held-out voices);
- `test_user_codec`: the same clips after the committed codec's round trip;
- `test_user_channel`: the same clips through a band limit, reverb and noise (seeded);
- `test_assistant`: the assistant's replies of the test dialogs (the four voices);
- `natural_user_clean`: the 80 hand-written dialogs in the held-out voices;
- `train_user_clean`: training dialogs in the training user voices (against
  `test_user_clean`: what unseen voices and sentences cost).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from telugu_s2s.asr import (
    DECODE_CONSENSUS,
    DECODE_STRETCHES,
    DECODE_WARPS,
    DEFAULT_ASR_DIR,
    Judge,
)
from telugu_s2s.data.augment import ChannelConfig, channel_augment
from telugu_s2s.data.datasets import decode_audio, load_split
from telugu_s2s.evaluation.cer import ErrorRate
from telugu_s2s.paths import CHECKPOINT_DIR, REPO_ROOT

RESULTS = REPO_ROOT / "benchmarks" / "results"
# Always degrade: a fixed telephone-like band, a room and noise, no speed change.
DEGRADE = ChannelConfig(speed_prob=0.0, band_prob=1.0, reverb_prob=1.0, gain_prob=0.0,
                        noise_prob=1.0, snr_db=(10.0, 20.0))  # fmt: skip


def clips_of(dataset: Path, split: str, role: str, limit: int, sample_rate: int):
    rows = load_split(dataset, split)
    keep = [i for i, r in enumerate(rows["role"]) if r == role]
    keep = [keep[int(i)] for i in np.linspace(0, len(keep) - 1, min(limit, len(keep))).round()]
    out = []
    for i in keep:
        row = rows[i]
        audio = decode_audio(row["audio"], sample_rate, row["sampling_rate"])
        out.append((audio, row["text"], row["speaker"]))
    return out


def score(judge: Judge, clips, transform=None) -> dict:
    audio = [torch.from_numpy(a) if transform is None else transform(a) for a, _, _ in clips]
    start = time.perf_counter()
    texts = judge.transcribe([a.numpy() if torch.is_tensor(a) else a for a in audio])
    seconds = time.perf_counter() - start
    rate, by_voice = ErrorRate(), defaultdict(ErrorRate)
    for hyp, (_, ref, voice) in zip(texts, clips, strict=True):
        rate.add(hyp, ref)
        by_voice[voice].add(hyp, ref)
    audio_seconds = sum(a.shape[-1] for a, _, _ in clips) / judge.sample_rate
    examples = [
        {"ref": ref, "hyp": hyp} for hyp, (_, ref, _) in zip(texts[:3], clips[:3], strict=True)
    ]
    return {"cer": rate.value, "utterances": rate.pairs, "characters": rate.characters,
            "by_voice": {v: round(r.value, 4) for v, r in sorted(by_voice.items())},
            "real_time_factor": seconds / audio_seconds, "examples": examples}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=str(DEFAULT_ASR_DIR))
    parser.add_argument("--codec", default=str(CHECKPOINT_DIR / "codec"))
    parser.add_argument("--dataset", default=str(REPO_ROOT / "data" / "build" / "dataset"))
    parser.add_argument("--clips", type=int, default=300)
    parser.add_argument("--output", default=str(RESULTS / "asr.json"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warps", type=float, nargs="+", default=DECODE_WARPS,
                        help="vocal-tract factors to read at (1.0 alone: none)")  # fmt: skip
    parser.add_argument("--stretches", type=float, nargs="+", default=DECODE_STRETCHES,
                        help="time stretches to read at (1.0 alone: none)")  # fmt: skip
    parser.add_argument("--consensus", type=int, default=DECODE_CONSENSUS,
                        help="keep the reading nearest the others of this many most confident")  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    judge = Judge.load(args.model, warps=tuple(args.warps), stretches=tuple(args.stretches),
                       consensus=args.consensus)  # fmt: skip
    from telugu_s2s.checkpoint import load_pretrained
    from telugu_s2s.metrics.codec import codec_round_trip

    codec = load_pretrained(args.codec).eval()
    round_trip = codec_round_trip(codec)
    dataset, sr = Path(args.dataset), judge.sample_rate
    test_user = clips_of(dataset, "test", "user", args.clips, sr)
    generator = torch.Generator().manual_seed(0)

    def degrade(audio: np.ndarray) -> torch.Tensor:
        return channel_augment(torch.from_numpy(audio), sr, generator, DEGRADE)

    report = {
        "model": args.model,
        "warps": list(judge.warps),
        "stretches": list(judge.stretches),
        "consensus": judge.consensus,
        "dataset": str(dataset),
        "test_user_clean": score(judge, test_user),
        "test_user_codec": score(judge, test_user, lambda a: torch.from_numpy(round_trip(a))),
        "test_user_channel": score(judge, test_user, degrade),
        "test_assistant": score(judge, clips_of(dataset, "test", "assistant", args.clips, sr)),
        "natural_user_clean": score(judge, clips_of(dataset, "natural", "user", args.clips, sr)),
        "train_user_clean": score(judge, clips_of(dataset, "train", "user", args.clips, sr)),
        "held_out_voices": json.loads((dataset / "telugu_s2s.json").read_text())[
            "held_out_user_voices"
        ],
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n")
    for key, value in report.items():
        if isinstance(value, dict):
            print(f"{key:22s} CER {value['cer']:.4f} on {value['utterances']} utterances")


if __name__ == "__main__":
    main()
