"""What one 60-second full-duplex session costs per 80 ms frame, component by component.

    .venv/bin/python benchmarks/session.py [--seconds 60] [--mode stream] [--speaker priya]

Starts the real server (`python -m telugu_s2s.serve`, the trained checkpoints, silero-vad,
a throw-away SQLite store) on a free port, streams a held-out test dialog's user turns in a
held-out user voice in real time (each turn followed by the pause its reply needs, until
`--seconds` of input), then reads the server's `/stats`. Writes benchmarks/results/session.json
(per-component p50/p95/mean, the tick and queue figures, the real-time margin, what came
back) and benchmarks/results/session.png. One run; the load average is recorded because the
machine may be shared.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from telugu_s2s.client import SAMPLE_RATE, fetch_stats, run_file
from telugu_s2s.data.datasets import load_split
from telugu_s2s.data.timeline import DialogTimelines, TimelineConfig
from telugu_s2s.paths import REPO_ROOT
from telugu_s2s.serving.metrics import COMPONENTS

FRAME_MS = 80.0


def dialog_input(dataset_dir: Path, seconds: float, voice: str) -> tuple[np.ndarray, str]:
    """User turns of test dialogs in `voice`, each followed by its longest reply + 1 s."""
    ds = DialogTimelines(
        load_split(dataset_dir, "test"), SAMPLE_RATE, TimelineConfig(), train=False
    )
    pieces, total, used = [np.zeros(SAMPLE_RATE // 2, np.float32)], SAMPLE_RATE // 2, []
    for dialog, user_voice in ds.items:
        if user_voice != voice:
            continue
        used.append(dialog)
        users, replies = ds.user_rows[(dialog, voice)], ds.reply_rows
        for turn in sorted(users):
            longest = max(
                (ds.meta["duration"][row] for (d, _), by_turn in replies.items() if d == dialog
                 for row in by_turn.get(turn, {}).values()), default=3.0,
            )  # fmt: skip
            speech = ds.audio(users[turn]).astype(np.float32)
            pause = np.zeros(int((longest + 1.0) * SAMPLE_RATE), np.float32)
            pieces += [speech, pause]
            total += speech.size + pause.size
            if total >= seconds * SAMPLE_RATE:
                audio = np.concatenate(pieces)[: int(seconds * SAMPLE_RATE)]
                return audio, ",".join(used)
    raise ValueError(f"the test split has under {seconds} s of dialogs in {voice}")


def start_server(workdir: Path, threads: int) -> tuple[subprocess.Popen, str]:
    port_file = workdir / "port"
    cmd = [
        sys.executable, "-m", "telugu_s2s.serve", "port=0", f"port_file={port_file}",
        f"threads={threads}", f"server.store_url=sqlite:///{workdir}/bench.db",
        f"hydra.run.dir={workdir}/hydra", "log_level=warning",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180
    while not port_file.exists() or not port_file.read_text().strip():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"the server did not start: {proc.stdout.read().decode()[-2000:]}")
        time.sleep(0.2)
    time.sleep(0.5)  # the port file is written just before uvicorn starts accepting
    return proc, f"ws://127.0.0.1:{port_file.read_text().strip()}/ws"


def plot(latency: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [c for c in COMPONENTS if c in latency]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.bar(x - 0.2, [latency[n]["p50"] for n in names], 0.4, label="p50")
    ax.bar(x + 0.2, [latency[n]["p95"] for n in names], 0.4, label="p95")
    ax.set_xticks(x, names)
    ax.set_ylabel("ms per frame")
    ax.set_title("60 s session: cost per 80 ms frame")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--mode", default="stream", choices=["stream", "turn"])
    parser.add_argument("--speaker", default="priya")
    parser.add_argument("--voice", default="heldout_henrique", help="a held-out user voice")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dataset", type=Path, default=REPO_ROOT / "data/build/dataset")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks/results/session.json")
    args = parser.parse_args()

    audio, dialogs = dialog_input(args.dataset, args.seconds, args.voice)
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_server(Path(tmp), args.threads)
        try:
            started = time.monotonic()
            client = asyncio.run(run_file(audio, url, args.speaker, args.mode, tail_s=10.0))
            wall = time.monotonic() - started
            stats = fetch_stats(url)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    latency = stats["latency_ms"]
    per_frame_p50 = sum(latency[c]["p50"] for c in COMPONENTS if c in latency)
    turns = [e for e in client.events if e["type"] == "turn"]
    report = {
        "input_seconds": audio.size / SAMPLE_RATE, "session_wall_seconds": round(wall, 2),
        "mode": args.mode, "speaker": args.speaker, "user_voice": args.voice, "dialogs": dialogs,
        "latency_ms": latency,
        "sum_of_component_p50_ms": round(per_frame_p50, 3),
        "realtime_budget_used_p50": round(per_frame_p50 / FRAME_MS, 4),
        "ticks": stats["ticks"], "frames": stats["frames"],
        "reply_seconds": round(client.audio().size / SAMPLE_RATE, 2), "turns": len(turns),
        "interruptions": stats["interruptions"], "errors": stats["errors"],
        "threads": args.threads, "load_average": os.getloadavg(), "cpu_count": os.cpu_count(),
        "machine": platform.platform(),
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    plot(latency, args.out.with_suffix(".png"))
    print(json.dumps({k: report[k] for k in ("sum_of_component_p50_ms", "ticks", "turns",
                                             "reply_seconds")}))  # fmt: skip
    for name in [*COMPONENTS, "tick", "queue"]:
        if name in latency:
            print(
                f"{name:>8}: p50 {latency[name]['p50']:8.3f} ms  p95 {latency[name]['p95']:8.3f} ms"
            )


if __name__ == "__main__":
    main()
