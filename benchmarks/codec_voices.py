"""Does the codec keep the four voices apart? Speaker identity and pitch through a round trip.

    .venv/bin/python benchmarks/codec_voices.py [--checkpoints checkpoints/codec OTHER ...] [--clips 240]

On test-split utterances of the assistant voices (evenly spaced), for each codec checkpoint
and 4 and 8 codebooks: how often the speaker encoder and the bank identify the voice in the
original and in the decoded audio, and how often the decoded median F0 stays within 15% of
the original's (`telugu_s2s.metrics.codec.voice_preservation`). The S2S model speaks through
this decoder, so these figures cap its speaker fidelity. Writes benchmarks/results/codec_voices.json
and a bar plot beside it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from telugu_s2s.checkpoint import load_pretrained
from telugu_s2s.metrics.codec import codec_round_trip, load_clips, summarize, voice_preservation
from telugu_s2s.paths import REPO_ROOT
from telugu_s2s.speakers import SpeakerBank


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{Path(r['checkpoint']).name}\n{r['num_codebooks']} codebooks" for r in results]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    width, xs = 0.4, range(len(results))
    ax.bar([x - width / 2 for x in xs], [r["speaker_id_transformed"] for r in results], width,
           label="voice identified")  # fmt: skip
    ax.bar(
        [x + width / 2 for x in xs], [r["f0_kept"] for r in results], width, label="F0 within 15%"
    )
    ax.set_xticks(list(xs), labels, fontsize=8)
    ax.set_ylim(0, 1)
    ax.legend()
    ax.set_title("Voice preservation through the codec (test split, assistant voices)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--checkpoints", nargs="+", type=Path, default=[REPO_ROOT / "checkpoints/codec"]
    )
    parser.add_argument("--speaker-dir", type=Path, default=REPO_ROOT / "checkpoints/speaker")
    parser.add_argument("--dataset-dir", type=Path, default=REPO_ROOT / "data/build/dataset")
    parser.add_argument(
        "--clips", type=int, default=240, help="test utterances, before keeping the bank's voices"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--output", type=Path, default=REPO_ROOT / "benchmarks/results/codec_voices.json"
    )
    args = parser.parse_args()  # fmt: skip
    torch.set_num_threads(args.threads)
    encoder, bank = load_pretrained(args.speaker_dir), SpeakerBank.load(args.speaker_dir)
    clips = load_clips(args.dataset_dir, "test", max_clips=args.clips)
    results = []
    for checkpoint in args.checkpoints:
        codec = load_pretrained(checkpoint)
        for k in (4, codec.num_codebooks):
            result = voice_preservation(codec_round_trip(codec, k), clips, encoder, bank)
            results.append(summarize({"checkpoint": str(checkpoint), "num_codebooks": k, **result}))
            print({key: v for key, v in results[-1].items() if key != "confusions"}, flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"split": "test", "results": results}, indent=2))
    plot(results, args.output.with_suffix(".png"))


if __name__ == "__main__":
    main()
