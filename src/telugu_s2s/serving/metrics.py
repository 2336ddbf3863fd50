"""Per-component latency (p50/p95), interruption statistics and the Prometheus text format.

Latencies live in bounded reservoirs (the most recent N samples), so percentiles follow the
current load and memory stays flat over long-running servers.
"""

from __future__ import annotations

import threading
from collections import Counter, deque

import numpy as np

# Per-frame components, in pipeline order: the keys of /stats "latency_ms".
COMPONENTS: tuple[str, ...] = (
    "receive",  # parse + re-chunk the client's audio, per 80 ms frame
    "vad",  # silero-vad, per frame (batch time / batch size)
    "encode",  # codec encoder (engine)
    "context",  # context memory (engine)
    "s2s",  # S2S temporal + depth step (engine)
    "decode",  # codec decoder (engine)
    "send",  # serialise + write one frame to the socket
)
# Whole-tick figures, reported beside the components.
TICK_COMPONENTS: tuple[str, ...] = ("tick", "queue")  # batch wall time; frame arrival -> step


def percentile_summary(values: np.ndarray) -> dict[str, float]:
    if values.size == 0:
        return {"p50": 0.0, "p95": 0.0, "mean": 0.0, "count": 0}
    p50, p95 = np.percentile(values, [50, 95])
    return {
        "p50": round(float(p50), 3),
        "p95": round(float(p95), 3),
        "mean": round(float(values.mean()), 3),
        "count": int(values.size),
    }


class LatencyStats:
    """Reservoirs of milliseconds per component; thread-safe (the worker thread writes too)."""

    def __init__(self, window: int = 20000):
        self._window = window
        self._values: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def record(self, component: str, ms: float) -> None:
        with self._lock:
            if component not in self._values:
                self._values[component] = deque(maxlen=self._window)
            self._values[component].append(float(ms))

    def summary(self) -> dict[str, dict[str, float]]:
        with self._lock:
            snapshot = {k: np.fromiter(v, dtype=np.float64) for k, v in self._values.items()}
        order = [*COMPONENTS, *TICK_COMPONENTS]
        names = sorted(snapshot, key=lambda k: (order.index(k) if k in order else len(order), k))
        return {name: percentile_summary(snapshot[name]) for name in names}


class InterruptionStats:
    """Count, reason and detection delay of barge-ins, plus false interruptions (resumed)."""

    def __init__(self, window: int = 5000):
        self.by_reason: Counter[str] = Counter()
        self.false_interruptions = 0
        self._delays: deque[float] = deque(maxlen=window)

    @property
    def count(self) -> int:
        return sum(self.by_reason.values())

    def record(self, reason: str, delay_ms: float) -> None:
        self.by_reason[reason] += 1
        self._delays.append(float(delay_ms))

    def record_false(self) -> None:
        self.false_interruptions += 1

    def summary(self) -> dict:
        return {
            "count": self.count,
            "by_reason": dict(self.by_reason),
            "false_interruptions": self.false_interruptions,
            "delay_ms": percentile_summary(np.fromiter(self._delays, dtype=np.float64)),
        }


def _labels(**labels: str) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return "{" + inner + "}" if inner else ""


def prometheus_text(stats: dict) -> str:
    """Render the /stats dictionary as Prometheus text exposition format (version 0.0.4)."""
    lines: list[str] = []

    def metric(name: str, kind: str, help_text: str, samples: list[tuple[dict, float]]) -> None:
        lines.append(f"# HELP telugu_s2s_{name} {help_text}")
        lines.append(f"# TYPE telugu_s2s_{name} {kind}")
        lines.extend(f"telugu_s2s_{name}{_labels(**lab)} {value:g}" for lab, value in samples)

    sessions = stats["sessions"]
    metric("sessions_active", "gauge", "Connected sessions.", [({}, sessions["active"])])
    metric("sessions_total", "counter", "Sessions opened.", [({}, sessions["total"])])
    metric("frames_total", "counter", "80 ms frames stepped.", [({}, stats["frames"])])
    metric("tick_overruns_total", "counter", "Ticks that took longer than a frame.",
           [({}, stats["ticks"]["overruns"])])  # fmt: skip
    interruptions = stats["interruptions"]
    metric("interruptions_total", "counter", "Assistant replies cut, by reason.",
           [({"reason": r}, n) for r, n in sorted(interruptions["by_reason"].items())])  # fmt: skip
    metric("false_interruptions_total", "counter", "Short bursts after which the reply resumed.",
           [({}, interruptions["false_interruptions"])])  # fmt: skip
    delay = interruptions["delay_ms"]
    metric("interruption_delay_ms", "summary", "Speech onset (or interrupt message) to audio cut.",
           [({"quantile": "0.5"}, delay["p50"]), ({"quantile": "0.95"}, delay["p95"])])  # fmt: skip
    latency = [
        ({"component": c, "quantile": q}, s[key])
        for c, s in stats["latency_ms"].items()
        for q, key in (("0.5", "p50"), ("0.95", "p95"))
    ]
    metric("latency_ms", "summary", "Per-frame time by pipeline component.", latency)
    lines.extend(
        f"telugu_s2s_latency_ms_count{_labels(component=c)} {s['count']}"
        for c, s in stats["latency_ms"].items()
    )
    errors = stats.get("errors", {})
    metric("errors_total", "counter", "Error events sent, by code.",
           [({"code": code}, n) for code, n in sorted(errors.items())])  # fmt: skip
    return "\n".join(lines) + "\n"
