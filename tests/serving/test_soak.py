"""A short soak (benchmarks/soak.py's harness) over loopback against a real server process:
talking clients, disconnect storms and readers that never read, for about 30 seconds."""

from __future__ import annotations

import asyncio
import json

from benchmarks.soak import run_soak, server_overrides

from tests.serving.processes import serve_process


def test_a_short_soak_loses_nothing_and_stays_bounded(tmp_path):
    with serve_process(tmp_path, "soak", "port=0", *server_overrides()) as (process, port, log):
        report = asyncio.run(run_soak(f"ws://127.0.0.1:{port}", process.pid, clients=6, seconds=30,
                                      slow_readers=2, storm_every_s=7, storm_size=10))  # fmt: skip
        alive = process.poll() is None
    print(json.dumps(report))  # the figures, for the CI log
    assert alive and report["error_count"] == 0, (report["errors"], log.read_text()[-2000:])
    assert report["storms"] >= 3 and report["storm_connections"] == 10 * report["storms"]
    assert report["turns"] >= 6 * 5  # every talker kept getting replies while the others misbehaved
    # the server kept reading from readers it could not write to, or dropped them (keepalive)
    assert report["slow_readers_done"] + sum(report["slow_readers_dropped"].values()) == 2
    assert report["sessions_left_open"] == 0  # aborted and slow connections were all cleaned up
    assert report["server_errors"] == {}
    assert report["rss_mb"]["end"] - report["rss_mb"]["start"] < 100
