"""Codec benchmark: the trained codec against Opus 6 and 12 kbps, quality and speed, one run.

    .venv/bin/python benchmarks/codec.py --checkpoint checkpoints/codec --clips 120 [--judge checkpoints/asr]
        [--split test] [--codebooks 8 4 2] [--out benchmarks/results]

Writes benchmarks/results/codec.json and benchmarks/results/codec.png. Everything is measured in
the same run on the same test clips (evenly spaced over the test split, so held-out user
voices are included):
- quality (STOI, mel distance, SI-SNR, wide-band PESQ) of the codec with 8 and fewer
  codebooks (quantizer dropout) and of Opus at 6 and 12 kbps (libopus through PyAV);
- the same per voice group (the four assistant voices; the held-out user voices, espeak-ng
  variants no training row uses), with the judge's CER (`telugu_s2s.asr`, when a recognizer
  is exported) on the clean clips, the codec's round trips and Opus's;
- speed: offline encode and decode real-time factor on 1 and 2 threads, Opus's too;
- streaming: encode_step + decode_step of one 80 ms frame, p50/p95 on one thread, as wall
  time and as CPU time (time.thread_time), with the load average, since the machine may be
  shared.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import soxr
import torch

from telugu_s2s.checkpoint import load_pretrained
from telugu_s2s.metrics.codec import (
    Clip,
    ReconstructionScorer,
    codec_round_trip,
    evaluate_tokenizer,
    evaluate_transform,
    judge_cer,
    load_clips,
    summarize,
)
from telugu_s2s.paths import REPO_ROOT

OPUS_RATE = 48000  # libopus always decodes at 48 kHz in FFmpeg


class OpusCodec:
    """Opus through PyAV: 16 kHz mono in, packets, 16 kHz out (decoded at 48 kHz, resampled).

    libopus takes 16 kHz input directly; FFmpeg's libopus decoder outputs 48 kHz, so the
    decoded audio is resampled back (soxr) and the encoder's pre-skip is dropped to align it.
    """

    def __init__(self, bitrate: int, sample_rate: int = 16000, application: str = "voip"):
        self.bitrate, self.sample_rate, self.application = bitrate, sample_rate, application

    def encode(self, audio: np.ndarray) -> tuple[list[bytes], int]:
        """audio (T,) float -> (packets, pre-skip at 48 kHz)."""
        import av

        encoder = av.CodecContext.create("libopus", "w")
        encoder.sample_rate, encoder.layout, encoder.format = self.sample_rate, "mono", "s16"
        encoder.bit_rate = self.bitrate
        encoder.options = {"application": self.application}
        encoder.open()
        pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)[None]  # (1, T)
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate, frame.pts = self.sample_rate, 0
        packets = [bytes(p) for p in encoder.encode(frame)] + [
            bytes(p) for p in encoder.encode(None)
        ]
        pre_skip = int.from_bytes(bytes(encoder.extradata)[10:12], "little")  # OpusHead field
        return packets, pre_skip

    def decode(self, packets: list[bytes], pre_skip: int, length: int) -> np.ndarray:
        import av

        decoder = av.CodecContext.create("libopus", "r")
        decoder.layout = "mono"
        chunks = [f.to_ndarray() for data in packets for f in decoder.decode(av.Packet(data))]
        audio = np.concatenate(chunks, axis=-1)[0].astype(np.float32) / 32768  # (T48,) s16 -> float
        audio = soxr.resample(audio[pre_skip:], OPUS_RATE, self.sample_rate)
        return audio[:length]

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        packets, pre_skip = self.encode(audio)
        return self.decode(packets, pre_skip, audio.shape[0])


def opus_row(opus: OpusCodec, clips: list[Clip], scorer: ReconstructionScorer) -> dict:
    """Quality, the measured bitrate (packet payload bytes) and encode/decode speed of Opus."""
    row = evaluate_transform(opus, clips, scorer)
    encode_s = decode_s = bits = 0.0
    for clip in clips:
        start = time.perf_counter()
        packets, pre_skip = opus.encode(clip.audio)
        encode_s += time.perf_counter() - start
        start = time.perf_counter()
        opus.decode(packets, pre_skip, clip.audio.shape[0])
        decode_s += time.perf_counter() - start
        bits += 8 * sum(len(p) for p in packets)
    seconds = sum(c.audio.shape[0] for c in clips) / opus.sample_rate
    row.update(
        name=f"opus {opus.bitrate // 1000} kbps",
        target_bitrate=opus.bitrate,
        bitrate=bits / seconds,
        encode_rtf=encode_s / seconds,
        decode_rtf=decode_s / seconds,
        algorithmic_latency_ms=26.5,
    )
    return row


@torch.no_grad()
def offline_rtf(codec, clips: list[Clip], threads: int) -> dict[str, float]:
    """Encode and decode real-time factors (compute seconds per audio second), one clip at a time."""
    torch.set_num_threads(threads)
    audio = [torch.from_numpy(c.audio)[None, None] for c in clips]  # (1, 1, T) each
    codec.decode(codec.encode(audio[0]))  # warm-up
    encode_s = decode_s = 0.0
    for x in audio:
        start = time.perf_counter()
        codes = codec.encode(x)
        encode_s += time.perf_counter() - start
        start = time.perf_counter()
        codec.decode(codes)
        decode_s += time.perf_counter() - start
    seconds = sum(x.shape[-1] for x in audio) / codec.sample_rate
    return {"threads": threads, "encode_rtf": encode_s / seconds, "decode_rtf": decode_s / seconds}


@torch.inference_mode()
def streaming_latency(codec, clips: list[Clip], frames: int = 500, warmup: int = 20) -> dict:
    """Per-frame encode_step + decode_step of one 80 ms frame, batch 1, one thread."""
    torch.set_num_threads(1)
    stream = np.concatenate([c.audio for c in clips])
    needed = (frames + warmup) * codec.frame_size
    stream = np.resize(stream, needed) if stream.shape[0] < needed else stream[:needed]
    audio = torch.from_numpy(stream)[None, None]  # (1, 1, T)
    wall, cpu = [], []
    load_before = os.getloadavg()
    with codec.streaming(1):
        for f in range(frames + warmup):
            chunk = audio[..., f * codec.frame_size : (f + 1) * codec.frame_size]
            start_wall, start_cpu = time.perf_counter(), time.thread_time()
            out = codec.decode_step(codec.encode_step(chunk))
            stop_wall, stop_cpu = time.perf_counter(), time.thread_time()
            assert out.shape[-1] == codec.frame_size
            if f >= warmup:
                wall.append(1000 * (stop_wall - start_wall))
                cpu.append(1000 * (stop_cpu - start_cpu))

    def percentiles(ms: list[float]) -> dict[str, float]:
        return {f"p{q}": float(np.percentile(ms, q)) for q in (50, 90, 95, 99)} | {
            "mean": float(np.mean(ms))
        }

    return {
        "frames": frames,
        "frame_ms": 1000 * codec.frame_size / codec.sample_rate,
        "threads": 1,
        "wall_ms": percentiles(wall),
        "cpu_ms": percentiles(cpu),
        "wall_samples_ms": wall,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
    }


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["quality"]
    names = [r["name"] for r in rows]
    colors = ["tab:blue" if r["name"].startswith("codec") else "tab:gray" for r in rows]
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    for ax, key, label in [
        (axes[0, 0], "stoi", "STOI (higher is better)"),
        (axes[0, 1], "mel_distance", "mel distance (lower is better)"),
        (axes[1, 0], "si_snr", "SI-SNR dB (higher is better)"),
    ]:
        ax.bar(range(len(rows)), [r[key] for r in rows], color=colors)
        ax.set_xticks(
            range(len(rows)),
            [f"{n}\n{r['bitrate'] / 1000:.2f} kbps" for n, r in zip(names, rows, strict=True)],
            fontsize=7,
        )
        ax.set_title(label, fontsize=10)
    latency = report["streaming"]
    ax = axes[1, 1]
    ax.hist(latency.pop("wall_samples_ms"), bins=60, color="tab:blue", alpha=0.8)
    for q, style in (("p50", "--"), ("p95", "-")):
        ax.axvline(
            latency["wall_ms"][q],
            color="k",
            linestyle=style,
            label=f"wall {q} {latency['wall_ms'][q]:.2f} ms",
        )
    ax.axvline(
        latency["cpu_ms"]["p95"],
        color="tab:green",
        label=f"CPU p95 {latency['cpu_ms']['p95']:.2f} ms",
    )
    ax.axvline(10.0, color="tab:red", label="budget 10 ms")
    ax.set_title("encode_step + decode_step per 80 ms frame (1 thread)", fontsize=10)
    ax.set_xlabel("ms")
    ax.legend(fontsize=7)
    fig.suptitle(
        f"codec benchmark: {report['clips']} test clips, {report['audio_minutes']:.1f} min",
        fontsize=11,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def voice_groups(clips: list[Clip], held_out: set[str]) -> dict[str, list[Clip]]:
    """The four assistant voices (trained on) apart from the held-out user voices (never)."""
    groups = {
        "assistant_voices": [c for c in clips if c.speaker not in held_out],
        "held_out_user_voices": [c for c in clips if c.speaker in held_out],
    }
    return {name: group for name, group in groups.items() if group}


def quality_rows(codec, clips: list[Clip], codebooks: list[int], scorer, judge) -> list[dict]:
    """Codec with k codebooks and Opus 6/12 kbps on `clips`; with a judge, its CER beside."""
    rows = []
    if judge is not None:
        rows.append(
            {"name": "clean", "bitrate": 256000, "judge_cer": judge_cer(None, clips, judge)}
        )
    for k in codebooks:
        row = evaluate_tokenizer(codec, clips, k, scorer)
        row["name"] = f"codec {k}x{codec.cardinality}"
        row["algorithmic_latency_ms"] = 1000 * codec.frame_size / codec.sample_rate
        if judge is not None:
            row["judge_cer"] = judge_cer(codec_round_trip(codec, k), clips, judge)
        rows.append(row)
    for bitrate in (6000, 12000):
        opus = OpusCodec(bitrate, codec.sample_rate)
        row = opus_row(opus, clips, scorer)
        if judge is not None:
            row["judge_cer"] = judge_cer(opus, clips, judge)
        rows.append(row)
    return [summarize(r) for r in rows]


def run(
    checkpoint: Path, dataset_dir: Path, num_clips: int, codebooks: list[int], out_dir: Path,
    judge_dir: Path | None = None, split: str = "test",
) -> dict:  # fmt: skip
    codec = load_pretrained(checkpoint)
    clips = load_clips(dataset_dir, split, num_clips, codec.sample_rate)
    scorer = ReconstructionScorer(codec.sample_rate)
    load_start = os.getloadavg()
    # Latency first, while nothing else of ours has warmed the caches up or down.
    streaming = streaming_latency(codec, clips)
    torch.set_num_threads(1)
    judge = None
    if judge_dir is not None and (judge_dir / "model.safetensors").exists():
        from telugu_s2s.asr import Judge

        judge = Judge.load(judge_dir)
    info = json.loads((dataset_dir / "telugu_s2s.json").read_text())
    groups = voice_groups(clips, set(info.get("held_out_user_voices", [])))
    by_group = {name: quality_rows(codec, group, codebooks, scorer, judge)
                for name, group in groups.items()}  # fmt: skip
    quality = quality_rows(codec, clips, codebooks, scorer, None)
    speed = [offline_rtf(codec, clips, threads) for threads in (1, 2)]
    report = {
        "checkpoint": str(checkpoint),
        "split": split,
        "clips": len(clips),
        "audio_minutes": sum(c.audio.shape[0] for c in clips) / codec.sample_rate / 60,
        "speakers": sorted({c.speaker for c in clips}),
        "quality": quality,
        "by_voice_group": by_group,
        "judge": str(judge_dir) if judge is not None else None,
        "offline_speed": [summarize(s) for s in speed],
        "streaming": streaming,
        "latency_budget_ms": 10.0,
        "meets_latency_budget_p95": streaming["wall_ms"]["p95"] <= 10.0,
        "opus_note": "libopus via PyAV, application=voip, VBR, 20 ms frames; 16 kHz input, decoded at "
        "48 kHz (FFmpeg's libopus decoder) and resampled to 16 kHz with soxr; pre-skip removed. "
        "bitrate = measured packet payload.",
        "environment": {
            "torch": torch.__version__,
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "load_average_start": load_start,
            "load_average_end": os.getloadavg(),
        },
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    plot(report, out_dir / "codec.png")  # drops the raw latency samples from the report
    report["streaming"] = summarize(report["streaming"])
    (out_dir / "codec.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", type=Path, default=REPO_ROOT / "checkpoints" / "codec")
    parser.add_argument(
        "--dataset-dir", type=Path, default=REPO_ROOT / "data" / "build" / "dataset"
    )
    parser.add_argument("--clips", type=int, default=120)
    parser.add_argument("--codebooks", type=int, nargs="+", default=[8, 4, 2])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results")
    parser.add_argument("--judge", type=Path, default=REPO_ROOT / "checkpoints" / "asr")
    # choose between codecs on validation (the same held-out voices, other sentences)
    parser.add_argument("--split", default="test")
    args = parser.parse_args()
    report = run(
        args.checkpoint, args.dataset_dir, args.clips, args.codebooks, args.out, args.judge,
        args.split,
    )  # fmt: skip
    print(f"{'system':<18}{'kbps':>7}{'STOI':>7}{'mel':>7}{'SI-SNR':>8}{'PESQ':>6}")
    for r in report["quality"]:
        print(
            f"{r['name']:<18}{r['bitrate'] / 1000:>7.2f}{r['stoi']:>7.3f}{r['mel_distance']:>7.3f}"
            f"{r['si_snr']:>8.2f}{r.get('pesq', float('nan')):>6.2f}"
        )
    for group, rows in report["by_voice_group"].items():
        print(f"{group}: " + ", ".join(
            f"{r['name']} STOI {r.get('stoi', float('nan')):.3f} judge CER {r.get('judge_cer', float('nan')):.3f}"
            for r in rows
        ))  # fmt: skip
    s = report["streaming"]
    print(
        f"streaming step p50/p95: wall {s['wall_ms']['p50']:.2f}/{s['wall_ms']['p95']:.2f} ms, "
        f"CPU {s['cpu_ms']['p50']:.2f}/{s['cpu_ms']['p95']:.2f} ms"
    )
    for sp in report["offline_speed"]:
        print(
            f"{sp['threads']} thread(s): encode RTF {sp['encode_rtf']:.4f}, decode RTF {sp['decode_rtf']:.4f}"
        )
    print(f"wrote {args.out / 'codec.json'} and {args.out / 'codec.png'}")


if __name__ == "__main__":
    main()
