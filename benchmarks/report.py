"""Generate docs/performance.md from benchmarks/results/*.json (run last by `make bench`).

.venv/bin/python benchmarks/report.py
"""

from __future__ import annotations

import json

from harness import REPO, RESULTS

OUT = REPO / "docs" / "performance.md"


def load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def pct(row: dict | None, keys=("p50", "p95", "p99")) -> str:
    if not row or not row.get("count"):
        return " | ".join("-" for _ in keys)
    return " | ".join(f"{row[k]:.1f}" if row.get(k) is not None else "-" for k in keys)


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def machine_line(m: dict) -> str:
    return (f"{m['cpu']} ({m['cpu_count']} cores), torch {m['torch']}, "
            f"{m['torch_threads']} torch thread(s); load average {m['loadavg_start'][0]:.2f} "
            f"at the start, {m.get('loadavg_end', ['?'])[0]} at the end")  # fmt: skip


def latency_section(d: dict) -> list[str]:
    lines = ["## Latency (`benchmarks/latency.py`)", "", f"Machine: {machine_line(d['machine'])}.",
             "", "| component | p50 ms | p95 ms | p99 ms |", "| --- | --- | --- | --- |"]  # fmt: skip
    for name, row in d["components_ms"].items():
        lines.append(f"| {name} | {pct(row)} |")
    compute = d["compute_per_frame_ms"]
    lines.append(f"| **compute per frame** (VAD + engine) | {pct(compute)} |")
    s, t = d["stream"], d["turn"]
    lines += ["", "| path | p50 ms | p95 ms | p99 ms | n |", "| --- | --- | --- | --- | --- |",
              f"| stream: frame in -> frame out (server) | {pct(s['frame_in_to_out_ms'])} | "
              f"{s['frame_in_to_out_ms']['count']} |",
              f"| stream: response gap (client) | {pct(s['response_gap_ms'])} | "
              f"{s['response_gap_ms']['count']} |",
              f"| turn: endpoint -> first reply frame (server) | "
              f"{pct(t['endpoint_to_first_reply_ms'])} | {t['endpoint_to_first_reply_ms']['count']} |",
              f"| turn: utterance end -> first reply audio (client) | "
              f"{pct(t['utterance_end_to_first_audio_ms'])} | "
              f"{t['utterance_end_to_first_audio_ms']['count']} |"]  # fmt: skip
    serving = t.get("serving_only_endpoint_to_first_reply_ms")
    if serving:
        lines.append(f"| turn: endpoint -> first reply frame, a model that answers at once "
                     f"(serving layer only) | {pct(serving)} | {serving['count']} |")  # fmt: skip
    lines.append("")
    p95 = compute.get("p95") or 1e9
    turn95 = t["endpoint_to_first_reply_ms"].get("p95") or 1e9
    lines += [f"- Compute per 80 ms frame, one session, p95 <= 40 ms: {p95:.1f} ms, "
              f"{verdict(p95 <= 40)}.",
              f"- Turn mode, first reply <= 250 ms p95 after the endpoint: {turn95:.1f} ms, "
              f"{verdict(turn95 <= 250)}.", "", "![latency](../benchmarks/results/latency.png)",
              ""]  # fmt: skip
    return lines


def bargein_section(d: dict) -> list[str]:
    stop = d["onset_to_audio_stop_ms"]
    lines = ["## Barge-in (`benchmarks/bargein.py`)", "",
             f"Machine: {machine_line(d['machine'])}. {d['valid_trials']} valid trials "
             f"({d['speech_trials']} speech, {d['burst_trials']} non-speech bursts) over "
             f"{d['sessions']} concurrent sessions.", "",
             "| speech onset -> | p50 ms | p95 ms | p99 ms |", "| --- | --- | --- | --- |",
             f"| last non-silent reply audio (client, loopback) | {pct(stop)} |",
             f"| `interrupted` (client) | {pct(d['onset_to_interrupted_ms'])} |",
             f"| first voiced frame -> output paused (server) | "
             f"{pct(d['server_first_voiced_to_pause_ms'])} |", ""]  # fmt: skip
    false, missed = d["false_interruptions"] or 0.0, d["missed_interruptions"] or 0.0
    server = d["server_first_voiced_to_pause_ms"].get("p95") or 1e9
    lines += [f"- Reply audio stops <= 150 ms p95 after the onset (server side): {server:.1f} ms, "
              f"{verdict(server <= 150)}; seen by the client over loopback: {stop.get('p95')} ms "
              "(it also waits for the VAD's first voiced frame).",
              f"- False interruptions <= 5 %: {100 * false:.1f} % ({d['false_by_kind']}), "
              f"{verdict(false <= 0.05)}.",
              f"- Missed interruptions <= 2 %: {100 * missed:.1f} %, {verdict(missed <= 0.02)}.",
              "", "![barge-in](../benchmarks/results/bargein.png)", ""]  # fmt: skip
    return lines


def capacity_section(d: dict) -> list[str]:
    lines = ["## Capacity (`benchmarks/capacity.py`)", "",
             f"Machine: {machine_line(d['machine'])}. Engine: {d['engine']}.", "",
             "| sessions | tick p50 ms | p95 ms | p99 ms | overruns | CPU cores busy | held |",
             "| --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for r in d["sweep"]:
        lines.append(f"| {r['sessions']} | {pct(r['tick_ms'])} | {r['overruns']} | "
                     f"{r['cpu_cores_busy']} | {'yes' if r['held'] else 'no'} |")  # fmt: skip
    ratio = d["batched_vs_unbatched"]
    held = d["largest_count_held"]
    lines += ["", f"Largest count held in real time: **{held}**. Batched vs unbatched at "
              f"{ratio['sessions']} sessions: {ratio['frames_per_s']} frames/s, ratio "
              f"**{ratio['ratio']}x**.", "",
              f"- 8 real-time sessions (tick p95 <= 80 ms, no overrun): {verdict(held >= 8)}.",
              f"- Batching >= 3x unbatched at 8 sessions: {verdict(ratio['ratio'] >= 3)}.", "",
              "![capacity](../benchmarks/results/capacity.png)", ""]  # fmt: skip
    return lines


def training_section(d: dict) -> list[str]:
    lines = ["## Training throughput (`benchmarks/training.py`)", "",
             f"Machine: {machine_line(d['machine'])}.", "",
             "| stage | experiment | device | batch | samples/s | s/step |",
             "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for stage, r in d["stages"].items():
        if "samples_per_s" in r:
            lines.append(f"| {stage} | {r['experiment']} | {r['device']} | {r['batch_size']} | "
                         f"{r['samples_per_s']} | {r['s_per_step']} |")  # fmt: skip
        else:
            lines.append(f"| {stage} | - | - | - | {r.get('skipped') or r.get('error')} | - |")
    return [*lines, ""]


def main() -> None:
    lines = ["# Performance", "",
             "Generated by `benchmarks/report.py` from `benchmarks/results/*.json` "
             "(`make bench`); do not edit by hand. Timings depend on the machine and on what "
             "else runs on it: each section states the CPU and the load average.", ""]  # fmt: skip
    for name, section in (("latency", latency_section), ("bargein", bargein_section),
                          ("capacity", capacity_section), ("training", training_section)):  # fmt: skip
        data = load(name)
        lines += section(data) if data else [f"## {name}", "", "(no results yet)", ""]
    OUT.write_text("\n".join(lines))
    print(f"wrote {OUT.relative_to(REPO)}")


if __name__ == "__main__":
    main()
