"""How many real-time sessions one server process holds: 1, 2, 4, 8, 16 and 32.

    .venv/bin/python benchmarks/capacity.py [--seconds 8] [--threads 1]

The served model (conf/serve.yaml's engine: the trained checkpoints, speaker guidance) and
silero-vad run under the server's own batch worker (`serving.worker.EngineWorker`): every
80 ms tick it runs the VAD and the engine over the frames the sessions asked for. Each
simulated session submits one frame of Telugu speech and silence per tick, as the server's
session task does (the socket work is left out: it is measured in latency.py). Per count:
tick p50/p95/p99 against the 80 ms budget, the S2S model's step for the whole batch
(goal for one session: <= 25 ms p95), overruns (ticks that fell a whole tick behind), the
process's CPU use (cores busy), and whether the count is held in real time (tick p95 <=
80 ms and no overrun). Then, in the same run and at 8 sessions, batched stepping against
unbatched (8 one-session engines stepped one after the other) as a throughput ratio,
alternating blocks so that a change of load hits both. Writes benchmarks/results/capacity.json
and capacity.png.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

import numpy as np
import torch
from harness import (
    FRAME_MS,
    REPO,
    RESULTS,
    engine_settings,
    machine,
    percentiles,
    silence,
    user_clips,
    write_result,
)

from telugu_s2s.serving.engine import ModelEngine
from telugu_s2s.serving.engine_api import SlotConfig
from telugu_s2s.serving.vad import SileroVAD, VADState
from telugu_s2s.serving.worker import EngineWorker, StepRequest

COUNTS = (1, 2, 4, 8, 16, 32)


class Samples:
    """The worker's latency sink, keeping every sample (p99 needs them all)."""

    def __init__(self):
        self.raw: dict[str, list[float]] = {}

    def record(self, component: str, ms: float) -> None:
        self.raw.setdefault(component, []).append(ms)


def session_input(clips: list[np.ndarray], index: int, seconds: float) -> list[np.ndarray]:
    """Speech then a pause, repeated, offset per session; (1280,) frames."""
    pieces, total = [silence(0.08 * (index % 10))], 0
    while total < seconds * 16000:
        clip = clips[index % len(clips)]
        pieces += [clip, silence(1.0)]
        total += clip.size + 16000
        index += 1
    audio = np.concatenate(pieces)
    return [audio[i : i + 1280] for i in range(0, int(seconds * 16000), 1280)]


async def run_sessions(worker: EngineWorker, slots: list[int], inputs, seconds: float) -> dict:
    ticker = asyncio.create_task(worker.run())
    ticks = int(seconds * 1000 / FRAME_MS)

    async def session(slot: int, frames: list[np.ndarray]) -> None:
        state = VADState()
        for t in range(ticks):
            frame = frames[t % len(frames)]
            await worker.step(StepRequest(slot, frame, state, [frame]))

    cpu0, wall0 = time.process_time(), time.monotonic()
    await asyncio.gather(*(session(s, inputs[i]) for i, s in enumerate(slots)))
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    ticker.cancel()
    return {"cpu_cores_busy": round(cpu / wall, 3), "wall_s": round(wall, 2)}


def sweep(engine: ModelEngine, vad: SileroVAD, clips, seconds: float, budget_s: float) -> list:
    rows, started = [], time.monotonic()
    for count in COUNTS:
        slots = [engine.join(SlotConfig("priya")) for _ in range(count)]
        inputs = [session_input(clips, i, seconds) for i in range(count)]
        samples = Samples()
        worker = EngineWorker(engine, vad, FRAME_MS, samples)  # type: ignore[arg-type]
        usage = asyncio.run(run_sessions(worker, slots, inputs, seconds))
        worker.close()
        stats = percentiles(samples.raw.get("tick", [])[5:])  # the first ticks warm up
        held = stats["p95"] <= FRAME_MS and worker.overruns == 0
        # The S2S model's step for the whole batch: each session records its share of it.
        s2s = [ms * count for ms in samples.raw.get("s2s", [])[5 * count :]]
        rows.append({"sessions": count, "tick_ms": stats, "s2s_step_ms": percentiles(s2s),
                     "overruns": worker.overruns, "ticks": worker.ticks, **usage, "held": held})  # fmt: skip
        print(f"{count:3d} sessions: tick p50 {stats['p50']:6.1f} p95 {stats['p95']:6.1f} ms, "
              f"s2s step p95 {rows[-1]['s2s_step_ms']['p95']:5.1f} ms, "
              f"overruns {worker.overruns}, cpu {usage['cpu_cores_busy']:.2f}, held {held}")  # fmt: skip
        for slot in slots:
            engine.leave(slot)
        if time.monotonic() - started > budget_s:
            print("time budget spent: the larger counts are left out")
            break
    return rows


def batched_vs_unbatched(checkpoints, clips, sessions: int, blocks: int, steps: int) -> dict:
    """Throughput (frames/s, compute-bound) of one batched engine vs per-session engines."""
    guidance = engine_settings()["speaker_guidance"]
    batched = ModelEngine(checkpoints, max_slots=sessions, speaker_guidance=guidance, seed=0)
    batched_slots = [batched.join(SlotConfig("priya")) for _ in range(sessions)]
    singles = [ModelEngine(checkpoints, max_slots=1, speaker_guidance=guidance, seed=i)
               for i in range(sessions)]  # fmt: skip
    single_slots = [e.join(SlotConfig("priya")) for e in singles]
    inputs = [session_input(clips, i, steps * blocks * 0.08 + 1) for i in range(sessions)]
    times = {"batched": 0.0, "unbatched": 0.0}
    t = 0
    for _ in range(blocks):
        start = time.perf_counter()
        for k in range(steps):
            batched.step({s: inputs[i][t + k] for i, s in enumerate(batched_slots)})
        times["batched"] += time.perf_counter() - start
        start = time.perf_counter()
        for k in range(steps):
            for i, (engine, slot) in enumerate(zip(singles, single_slots, strict=True)):
                engine.step({slot: inputs[i][t + k]})
        times["unbatched"] += time.perf_counter() - start
        t += steps
    frames = sessions * steps * blocks
    rate = {k: round(frames / v, 1) for k, v in times.items()}
    return {"sessions": sessions, "frames_per_s": rate,
            "ms_per_tick": {k: round(1000 * v / (steps * blocks), 2) for k, v in times.items()},
            "ratio": round(rate["batched"] / rate["unbatched"], 2)}  # fmt: skip


def plot(rows: list[dict], path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = [r["sessions"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for q in ("p50", "p95", "p99"):
        ax.plot(counts, [r["tick_ms"][q] for r in rows], marker="o", label=f"tick {q}")
    ax.axhline(FRAME_MS, color="red", linestyle="--", label="80 ms budget")
    ax.set_xscale("log", base=2)
    ax.set_xticks(counts, [str(c) for c in counts])
    ax.set_xlabel("concurrent real-time sessions")
    ax.set_ylabel("tick (VAD + engine) ms")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="per session count")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (serve.yaml: 1)")
    parser.add_argument("--budget", type=float, default=180.0, help="seconds for the sweep")
    parser.add_argument("--checkpoints", default=str(REPO / "checkpoints"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    info = machine(args.threads)
    clips = user_clips(8)
    engine = ModelEngine(args.checkpoints, max_slots=max(COUNTS), seed=0, **engine_settings())
    vad = SileroVAD()
    vad.warmup()
    rows = sweep(engine, vad, clips, args.seconds, args.budget)
    ratio = batched_vs_unbatched(args.checkpoints, clips, 8, blocks=4, steps=25)
    print(f"batched / unbatched throughput at 8 sessions: {ratio['ratio']}x")
    held = [r["sessions"] for r in rows if r["held"]]
    write_result("capacity", {
        "what": "real-time sessions in one server process: VAD + engine tick per 80 ms",
        "engine": engine_settings(), "seconds_per_count": args.seconds, "sweep": rows,
        "largest_count_held": max(held) if held else 0, "batched_vs_unbatched": ratio,
        "goal": {"sessions": 8, "tick_p95_ms": FRAME_MS, "overruns": 0, "batching_ratio": 3.0},
        "machine": info, "pid_cpu_affinity": len(os.sched_getaffinity(0)),
    })  # fmt: skip
    plot(rows, RESULTS / "capacity.png")


if __name__ == "__main__":
    main()
