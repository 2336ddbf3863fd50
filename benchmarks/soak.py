"""Soak the server over loopback: many talking clients for minutes, disconnect storms, and
slow readers that never read.

    .venv/bin/python benchmarks/soak.py [--clients 16] [--minutes 5] [--slow-readers 4]
                                        [--storm-every 20] [--storm-size 24]

Starts `python -m telugu_s2s.serve` around the fake engine (tests/serving/fakes.py; replies
of `REPLY_FRAMES` frames) with a throw-away SQLite store on a free loopback port. Then, for
`--minutes` (bounded: at most 30, at most 64 clients):
- `--clients` clients speak turns in real time (80 ms chunks), one after another;
- every `--storm-every` s, `--storm-size` connections open at once, some start a turn, and
  all drop without a goodbye (the TCP connection is aborted);
- `--slow-readers` clients keep asking for replies but never read a byte (a 4 KB receive
  buffer), so the server's writes to them back up.
Reports the talking clients' turns and errors, the server's p95 tick and queue delay, its
error events, and its RSS from start to end (and the peak). Writes
benchmarks/results/soak.json. `run_soak` is also what tests/serving/test_soak.py runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # tests.serving: the fake engine and the process helper

from telugu_s2s.client import S2SClient, fetch_stats  # noqa: E402

REPLY_FRAMES = 12  # ~1 s of reply audio per turn: enough to back up a reader that never reads
MAX_MINUTES, MAX_CLIENTS = 30.0, 64
SR = 16000


def server_overrides() -> list[str]:
    """Every client is on 127.0.0.1 here: lift the per-address limits (not the others)."""
    return ["vad=false", "threads=null", f"engine.reply_frames={REPLY_FRAMES}",
            "server.limits.max_connections_per_ip=1000", "server.limits.connections_per_minute_per_ip=1000000"]  # fmt: skip


def turn_audio(hz: float) -> np.ndarray:
    t = np.arange(int(0.32 * SR)) / SR
    return np.concatenate([0.3 * np.sin(2 * np.pi * hz * t), np.zeros(int(0.24 * SR))]).astype(
        np.float32
    )


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


async def _talker(url: str, k: int, deadline: float, report: dict) -> None:
    """Turn after turn in real time; every failure is counted, then it reconnects."""
    while time.monotonic() < deadline:
        try:
            async with S2SClient(url, "priya", "stream") as client:
                if client.ready.get("type") != "ready":
                    report["errors"][f"refused:{client.ready.get('code')}"] += 1
                    await asyncio.sleep(1)
                    continue
                n = 0
                while time.monotonic() < deadline:
                    mark = len(client.timeline)
                    await client.stream(turn_audio(300 + 40 * ((k + n) % 15)))
                    sent = client.now()
                    turn = await client.wait_for(lambda e: e["type"] == "turn", 20, after=mark)
                    report["turn_ms"].append((turn["t"] - sent) * 1000)
                    report["turns"] += 1
                    n += 1
                for event in client.events:
                    if event["type"] == "error":
                        report["errors"][f"event:{event['code']}"] += 1
        except (TimeoutError, ConnectionError, OSError) as exc:
            report["errors"][type(exc).__name__] += 1


async def _storm(url: str, size: int, report: dict) -> None:
    """`size` connections at once; half start talking; all vanish without a close frame."""
    from websockets.asyncio.client import connect

    async def one(i: int) -> None:
        try:
            ws = await connect(url + "/ws", open_timeout=20)
            if i % 2:
                await ws.send(np.zeros(2560, "<i2").tobytes())
                await ws.send((turn_audio(500)[:4000] * 32767).astype("<i2").tobytes())
                await asyncio.sleep(0.3)
            ws.transport.abort()
            report["storm_connections"] += 1
        except (OSError, TimeoutError) as exc:
            report["errors"][f"storm:{type(exc).__name__}"] += 1

    await asyncio.gather(*(one(i) for i in range(size)))


async def _slow_reader(url: str, deadline: float, report: dict) -> None:
    """Asks for reply after reply and never reads: its socket backs up at the server. Not
    reading, it cannot answer pings either, so the server may hang up on it (keepalive):
    that is an outcome, counted by close code, not an error."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    host, port = url.removeprefix("ws://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    sock.setblocking(False)
    pcm = (turn_audio(600) * 32767).astype("<i2").tobytes()
    async with connect(url + "/ws", sock=sock, max_queue=1, open_timeout=20) as ws:
        try:
            while time.monotonic() < deadline:
                for start in range(0, len(pcm), 2560):
                    await ws.send(pcm[start : start + 2560])
                    await asyncio.sleep(0.08)
        except ConnectionClosed:
            report["slow_readers_dropped"][str(ws.close_code)] += 1
            return
    report["slow_readers_done"] += 1


async def run_soak(url: str, pid: int, clients: int = 8, seconds: float = 60.0, slow_readers: int = 2,
                   storm_every_s: float = 15.0, storm_size: int = 16) -> dict:  # fmt: skip
    """Soak the server at `url` (process `pid`) and report what happened."""
    clients, seconds = min(clients, MAX_CLIENTS), min(seconds, MAX_MINUTES * 60)
    report = {
        "turns": 0,
        "turn_ms": [],
        "errors": Counter(),
        "storm_connections": 0,
        "slow_readers_done": 0,
        "slow_readers_dropped": Counter(),
    }
    await asyncio.sleep(1.0)
    rss = [rss_mb(pid)]
    start = time.monotonic()
    deadline = start + seconds
    tasks = [asyncio.create_task(_talker(url, k, deadline, report)) for k in range(clients)]
    tasks += [asyncio.create_task(_slow_reader(url, deadline, report)) for _ in range(slow_readers)]
    storms = 0
    while time.monotonic() < deadline:
        await asyncio.sleep(min(storm_every_s, max(0.0, deadline - time.monotonic())))
        rss.append(rss_mb(pid))
        if time.monotonic() < deadline - 2:
            await _storm(url, storm_size, report)
            storms += 1
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            report["errors"][f"task:{type(result).__name__}"] += 1
    await asyncio.sleep(1.0)
    rss.append(rss_mb(pid))
    stats = await asyncio.to_thread(fetch_stats, url)
    turn_ms = np.asarray(report.pop("turn_ms"))
    return {
        "clients": clients, "slow_readers": slow_readers, "minutes": round(seconds / 60, 2),
        "storms": storms, "storm_connections": report["storm_connections"],
        "turns": report["turns"], "slow_readers_done": report["slow_readers_done"],
        "slow_readers_dropped": dict(report["slow_readers_dropped"]),
        "errors": dict(report["errors"]), "error_count": sum(report["errors"].values()),
        "turn_latency_ms": {"p50": round(float(np.percentile(turn_ms, 50)), 1),
                            "p95": round(float(np.percentile(turn_ms, 95)), 1)} if turn_ms.size else {},
        "tick_ms": stats["latency_ms"].get("tick", {}), "queue_ms": stats["latency_ms"].get("queue", {}),
        "tick_overruns": stats["ticks"]["overruns"], "server_errors": stats["errors"],
        "sessions_left_open": stats["sessions"]["active"],
        "rss_mb": {"start": round(rss[0], 1), "end": round(rss[-1], 1), "peak": round(max(rss), 1),
                   "samples": [round(r, 1) for r in rss]},
        "loadavg": os.getloadavg(),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--slow-readers", type=int, default=4)
    parser.add_argument("--storm-every", type=float, default=20.0)
    parser.add_argument("--storm-size", type=int, default=24)
    parser.add_argument(
        "--out", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "soak.json"
    )
    args = parser.parse_args()

    from tests.serving.processes import serve_process

    with tempfile.TemporaryDirectory() as tmp, serve_process(Path(tmp), "soak", "port=0", *server_overrides()) as (
        process, port, _):  # fmt: skip
        report = asyncio.run(run_soak(f"ws://127.0.0.1:{port}", process.pid, args.clients, args.minutes * 60,
                                      args.slow_readers, args.storm_every, args.storm_size))  # fmt: skip
        report["server_alive"] = process.poll() is None
    with contextlib.suppress(OSError):
        args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
