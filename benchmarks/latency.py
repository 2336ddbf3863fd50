"""The latency table, measured: components, stream mode and turn mode, over loopback.

    .venv/bin/python benchmarks/latency.py [--seconds 24]

Starts the real server (harness.BenchServer: the trained checkpoints, silero-vad, conf/
serve.yaml) and streams Telugu utterances in held-out voices, each followed by 1.5 s of
silence, in real time: one session in stream mode, then one in turn mode. Reports
- every per-frame component (receive, vad, encode, context, s2s, decode, send) and the
  tick and queue (frame arrival -> its step done) at p50/p95/p99, from the server's raw
  samples; plus the compute of one frame (the sum of the engine components and the VAD);
- stream mode: frame in -> frame out (server: a user frame's arrival -> the reply frame of
  the same step handed to the output), and the response gap (client: the send of the last
  chunk of an utterance -> the first reply audio received after it);
- turn mode: the endpoint decision -> the first reply frame (server), and the end of the
  utterance -> the first reply audio (client; includes the endpoint's silence). The same
  session again with harness.TalkingEngine (a model that speaks as soon as it is let) gives
  the serving layer's share; the rest is the trained model's own wait before it answers.
Writes benchmarks/results/latency.json and latency.png.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

import numpy as np
from harness import (
    FRAME_MS,
    RESULTS,
    BenchServer,
    machine,
    percentiles,
    silence,
    user_clips,
    write_result,
)

from telugu_s2s.client import S2SClient
from telugu_s2s.serving.metrics import COMPONENTS

ENGINE = ("encode", "context", "s2s", "decode")


def build_input(clips: list[np.ndarray], seconds: float) -> tuple[np.ndarray, list[int]]:
    """Utterances each followed by 1.5 s of silence; returns the audio and each end sample."""
    pieces, ends, total = [silence(0.5)], [], 8000
    for i in range(len(clips) * 4):
        clip = clips[i % len(clips)]
        pieces += [clip, silence(1.5)]
        ends.append(total + clip.size)
        total += clip.size + 24000
        if total >= seconds * 16000:
            break
    return np.concatenate(pieces), ends


async def run_session(url: str, mode: str, audio: np.ndarray) -> S2SClient:
    async with S2SClient(url, "priya", mode) as client:
        await client.stream(audio)
        await client.stream(silence(3.0))
    return client


def reply_gaps(client: S2SClient, ends: list[int]) -> list[float]:
    """Per utterance: the send of its last chunk -> the first audio received after it (ms)."""
    sent, offset = [], 0
    for e in client.timeline:
        if e["kind"] == "sent":
            offset += e["samples"]
            sent.append((offset, e["t"]))
    audio = [e["t"] for e in client.timeline if e["kind"] == "audio"]
    gaps = []
    for i, end in enumerate(ends):
        t_end = next((t for off, t in sent if off >= end), None)
        t_next = (
            next((t for off, t in sent if off >= ends[i + 1]), None) if i + 1 < len(ends) else None
        )
        first = next((t for t in audio if t > t_end), None) if t_end is not None else None
        if first is not None and (t_next is None or first < t_next):  # before the next utterance
            gaps.append((first - t_end) * 1000)
    return gaps


def plot(table: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in table if table[n]["count"]]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(8, 3.4))
    for j, q in enumerate(("p50", "p95", "p99")):
        ax.bar(x + (j - 1) * 0.27, [table[n][q] for n in names], 0.27, label=q)
    ax.set_xticks(x, names, rotation=30)
    ax.set_ylabel("ms")
    ax.set_title("server latency per 80 ms frame")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=24.0, help="input per mode")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    info = machine(args.threads)
    audio, ends = build_input(user_clips(6), args.seconds)
    with tempfile.TemporaryDirectory() as tmp, BenchServer(Path(tmp), threads=args.threads) as srv:
        stream = asyncio.run(run_session(srv.ws, "stream", audio))
        stream_raw = srv.get("/bench/latency")["raw"]
        turn = asyncio.run(run_session(srv.ws, "turn", audio))
        raw = srv.get("/bench/latency")
    talking = ("engine._target_=harness.TalkingEngine",)
    with tempfile.TemporaryDirectory() as tmp, BenchServer(Path(tmp), *talking,
                                                           threads=args.threads) as srv:  # fmt: skip
        asyncio.run(run_session(srv.ws, "turn", audio))
        serving_only = srv.get("/bench/latency")["raw"].get("endpoint_reply", [])
    samples = raw["raw"]
    table = {n: percentiles(samples.get(n, [])) for n in (*COMPONENTS, "tick", "queue")}
    frames = min(len(samples.get(n, [])) for n in (*ENGINE, "vad"))
    compute = np.sum([samples[n][:frames] for n in (*ENGINE, "vad")], axis=0) if frames else []
    turn_gaps = reply_gaps(turn, ends)
    result = {
        "what": "latency over loopback, real-time paced, one session at a time",
        "input_seconds": round(audio.size / 16000, 1), "utterances": len(ends),
        "components_ms": table,
        "compute_per_frame_ms": percentiles(compute),
        "stream": {
            "frame_in_to_out_ms": percentiles(stream_raw.get("frame_io", [])),
            "response_gap_ms": percentiles(reply_gaps(stream, ends)),
            "reply_seconds": round(stream.audio().size / 16000, 2),
        },
        "turn": {
            "endpoint_to_first_reply_ms": percentiles(samples.get("endpoint_reply", [])),
            "utterance_end_to_first_audio_ms": percentiles(turn_gaps),
            "replies": len(turn_gaps), "reply_seconds": round(turn.audio().size / 16000, 2),
            "serving_only_endpoint_to_first_reply_ms": percentiles(serving_only),
        },
        "server": {"ticks": raw["ticks"], "overruns": raw["overruns"]},
        "goals": {"compute_per_frame_p95_ms": 40.0, "turn_endpoint_to_reply_p95_ms": 250.0},
        "frame_ms": FRAME_MS, "machine": info,
    }  # fmt: skip
    write_result("latency", result)
    plot(table | {"compute": result["compute_per_frame_ms"]}, RESULTS / "latency.png")
    for name, row in table.items():
        print(f"{name:>8}: p50 {row['p50']} p95 {row['p95']} p99 {row['p99']} ms")
    print("stream:", result["stream"], "\nturn:", result["turn"])


if __name__ == "__main__":
    main()
