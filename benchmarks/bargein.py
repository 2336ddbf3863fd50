"""Barge-in, measured: speech over a reply, and non-speech bursts that must not cut it.

    .venv/bin/python benchmarks/bargein.py [--speech 52] [--bursts 30] [--sessions 4]

The real server (harness.BenchServer, silero-vad, conf/serve.yaml) around
harness.TalkingEngine: the served model runs every frame, and its reply is a tone whenever
the engine lets it speak, so every trial has a reply to cut. Sessions run concurrently in
real time; each trial is 1.2 s of the reply playing, then a stimulus starting on a chunk
boundary, then 1.8 s of silence. Stimuli: Telugu utterances in held-out voices, and
non-speech bursts (white noise, a train of clicks, a cough-like decaying low-passed burst).

Per speech trial, client side (loopback: the chunk's send time is the onset's arrival):
onset -> the last non-silent reply audio received before `interrupted`, and onset ->
`interrupted`; server side: the `interrupted` event's delay_ms (the first voiced frame's
arrival -> the output paused) and the server's interruption statistics. A speech trial
without `interrupted` is missed; a burst trial with one is a false interruption. Writes
benchmarks/results/bargein.json and bargein.png.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

import numpy as np
from harness import RESULTS, BenchServer, machine, percentiles, silence, user_clips, write_result

from telugu_s2s.client import S2SClient

CHUNK = 1280
LEAD_S, TAIL_S = 1.2, 1.8


def bursts(rng: np.random.Generator, count: int) -> list[tuple[str, np.ndarray]]:
    out = []
    for i in range(count):
        kind = ("noise", "clicks", "cough")[i % 3]
        if kind == "noise":
            audio = rng.uniform(0.05, 0.3) * rng.standard_normal(4800)
        elif kind == "clicks":
            audio = np.zeros(6400)
            audio[rng.choice(6400, 5, replace=False)] = rng.uniform(0.5, 0.9, 5)
        else:  # a decaying, low-passed noise burst of 250 ms
            noise = np.convolve(rng.standard_normal(4000), np.ones(8) / 8, mode="same")
            audio = rng.uniform(0.3, 0.6) * noise * np.exp(-np.arange(4000) / 1200) * 2.5
        out.append((kind, audio.astype(np.float32)))
    return out


def pad_to_chunks(audio: np.ndarray) -> np.ndarray:
    return np.concatenate([audio, silence((-audio.size % CHUNK) / 16000)])


async def run_trials(url: str, trials: list[tuple[str, np.ndarray]]) -> list[dict]:
    results = []
    async with S2SClient(url, "priya", "stream") as client:
        await client.stream(silence(0.8))
        for kind, stimulus in trials:
            await client.stream(silence(LEAD_S))
            mark = len(client.timeline)
            await client.stream(pad_to_chunks(stimulus))
            # The onset: when the stimulus's first chunk went out (the mic clock may delay it).
            onset = next(e["t"] for e in client.timeline[mark:] if e["kind"] == "sent")
            await client.stream(silence(TAIL_S))
            results.append(measure(client, kind, onset, mark, stimulus.size / 16000))
    return results


def measure(client: S2SClient, kind: str, onset: float, mark: int, seconds: float) -> dict:
    timeline, chunks = client.timeline, client.audio()
    audio = [e for e in timeline if e["kind"] == "audio"]
    playing = any(onset - 0.4 < e["t"] <= onset for e in audio)
    cut = next((e for e in timeline[mark:] if e.get("type") == "interrupted"), None)
    end = cut["t"] if cut else onset + seconds + TAIL_S
    loud = [e["t"] for e in audio if onset < e["t"] <= end
            and np.sqrt(np.mean(chunks[e["offset"] : e["offset"] + e["samples"]] ** 2)) > 0.01]  # fmt: skip
    return {
        "kind": kind, "reply_playing": playing, "interrupted": cut is not None,
        "onset_to_interrupted_ms": round((cut["t"] - onset) * 1000, 1) if cut else None,
        "onset_to_audio_stop_ms": round(((loud[-1] if loud else onset) - onset) * 1000, 1),
        "server_delay_ms": cut["delay_ms"] if cut else None,
    }  # fmt: skip


def plot(speech: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.4))
    stop = [t["onset_to_audio_stop_ms"] for t in speech if t["interrupted"]]
    cut = [t["onset_to_interrupted_ms"] for t in speech if t["interrupted"]]
    ax.hist([stop, cut], bins=20, label=["reply audio stops", "`interrupted` arrives"])
    ax.axvline(150, color="red", linestyle="--", label="150 ms goal")
    ax.set_xlabel("ms after the speech onset (client, loopback)")
    ax.set_ylabel("trials")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def rate(hits: int, total: int) -> float | None:
    return round(hits / total, 4) if total else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--speech", type=int, default=52)
    parser.add_argument("--bursts", type=int, default=30)
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    info = machine(args.threads)
    rng = np.random.default_rng(0)
    clips = user_clips(12)
    trials = [("speech", clips[i % len(clips)]) for i in range(args.speech)]
    trials += bursts(rng, args.bursts)
    order = rng.permutation(len(trials))
    per_session = [[trials[j] for j in order[i :: args.sessions]] for i in range(args.sessions)]
    with tempfile.TemporaryDirectory() as tmp:
        overrides = ("engine._target_=harness.TalkingEngine", f"engine.max_slots={args.sessions}")
        with BenchServer(Path(tmp), *overrides, threads=args.threads) as srv:

            async def everyone():
                return await asyncio.gather(*(run_trials(srv.ws, t) for t in per_session))

            results = [r for session in asyncio.run(everyone()) for r in session]
            server = srv.get("/bench/latency")
    valid = [r for r in results if r["reply_playing"]]
    speech = [r for r in valid if r["kind"] == "speech"]
    noise = [r for r in valid if r["kind"] != "speech"]
    cut = [r for r in speech if r["interrupted"]]
    result = {
        "what": "barge-in over a playing reply, concurrent real-time sessions over loopback",
        "sessions": args.sessions, "trials": len(results), "valid_trials": len(valid),
        "speech_trials": len(speech), "burst_trials": len(noise),
        "onset_to_audio_stop_ms": percentiles([r["onset_to_audio_stop_ms"] for r in cut]),
        "onset_to_interrupted_ms": percentiles([r["onset_to_interrupted_ms"] for r in cut]),
        "server_first_voiced_to_pause_ms": percentiles([r["server_delay_ms"] for r in cut]),
        "missed_interruptions": rate(len(speech) - len(cut), len(speech)),
        "false_interruptions": rate(sum(r["interrupted"] for r in noise), len(noise)),
        "false_by_kind": {k: rate(sum(r["interrupted"] for r in noise if r["kind"] == k),
                                  sum(r["kind"] == k for r in noise))
                          for k in ("noise", "clicks", "cough")},  # fmt: skip
        "server_interruptions": server["interruptions"],
        "server": {"ticks": server["ticks"], "overruns": server["overruns"],
                   "tick_ms": percentiles(server["raw"].get("tick", []))},
        "goals": {"audio_stop_p95_ms": 150, "false_interruptions": 0.05,
                  "missed_interruptions": 0.02},
        "trials_detail": results, "machine": info,
    }  # fmt: skip
    write_result("bargein", result)
    plot(speech, RESULTS / "bargein.png")
    for key in ("onset_to_audio_stop_ms", "onset_to_interrupted_ms", "missed_interruptions",
                "false_interruptions", "false_by_kind"):  # fmt: skip
        print(f"{key}: {result[key]}")


if __name__ == "__main__":
    main()
