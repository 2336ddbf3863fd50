"""Per-component latency (p50/p95), interruption statistics and Prometheus metrics.

Latencies live in bounded reservoirs (the most recent N samples) for the p50/p95 of
`/stats`, so percentiles follow the current load and memory stays flat over long-running
servers. Every sample also goes to a `prometheus_client` histogram (cumulative, with
`_count` and `_sum`), which `/metrics` exposes beside counters of sessions, frames,
interruptions and errors (`ServerMetrics`).
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Callable, Iterator

import numpy as np
from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric

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

    def __init__(self, window: int = 20000, histogram: Histogram | None = None):
        self._window = window
        self._values: dict[str, deque[float]] = {}
        self._lock = threading.Lock()
        self._histogram = histogram  # labelled by component, in seconds

    def record(self, component: str, ms: float) -> None:
        with self._lock:
            if component not in self._values:
                self._values[component] = deque(maxlen=self._window)
            self._values[component].append(float(ms))
        if self._histogram is not None:
            self._histogram.labels(component).observe(ms / 1000.0)

    def summary(self) -> dict[str, dict[str, float]]:
        with self._lock:
            snapshot = {k: np.fromiter(v, dtype=np.float64) for k, v in self._values.items()}
        order = [*COMPONENTS, *TICK_COMPONENTS]
        names = sorted(snapshot, key=lambda k: (order.index(k) if k in order else len(order), k))
        return {name: percentile_summary(snapshot[name]) for name in names}


class InterruptionStats:
    """Count, reason and detection delay of barge-ins, plus false interruptions (resumed)."""

    def __init__(self, window: int = 5000, delay_histogram: Histogram | None = None):
        self.by_reason: Counter[str] = Counter()
        self.false_interruptions = 0
        self._delays: deque[float] = deque(maxlen=window)
        self._delay_histogram = delay_histogram  # seconds

    @property
    def count(self) -> int:
        return sum(self.by_reason.values())

    def record(self, reason: str, delay_ms: float) -> None:
        self.by_reason[reason] += 1
        self._delays.append(float(delay_ms))
        if self._delay_histogram is not None:
            self._delay_histogram.observe(delay_ms / 1000.0)

    def record_false(self) -> None:
        self.false_interruptions += 1

    def summary(self) -> dict:
        return {
            "count": self.count,
            "by_reason": dict(self.by_reason),
            "false_interruptions": self.false_interruptions,
            "delay_ms": percentile_summary(np.fromiter(self._delays, dtype=np.float64)),
        }


# Per-frame component latencies run from ~0.1 ms (receive) to a few 80 ms ticks.
LATENCY_BUCKETS_S = (
    0.0002,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.28,
)
INTERRUPTION_BUCKETS_S = (0.02, 0.04, 0.08, 0.12, 0.16, 0.24, 0.32, 0.48, 0.64, 1.0, 2.0)
SESSION_BUCKETS_S = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200)


class ServerMetrics:
    """One server's Prometheus registry (its own, so that several apps in one process, as in
    the tests, do not collide).

    Histograms are fed as samples arrive; the counters are read at scrape time from the
    server's own running totals (`counters()`), which only ever grow, so they are monotonic.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram("telugu_s2s_latency_seconds", "Per-frame time by pipeline component.",
                                 ["component"], buckets=LATENCY_BUCKETS_S, registry=self.registry)  # fmt: skip
        self.interruption_delay = Histogram(
            "telugu_s2s_interruption_delay_seconds", "Speech onset (or interrupt message) to audio cut.",
            buckets=INTERRUPTION_BUCKETS_S, registry=self.registry,
        )  # fmt: skip
        self.session_seconds = Histogram("telugu_s2s_session_duration_seconds", "Length of closed sessions.",
                                         buckets=SESSION_BUCKETS_S, registry=self.registry)  # fmt: skip
        self.sessions_active = Gauge("telugu_s2s_sessions_active", "Connected sessions.",
                                     registry=self.registry)  # fmt: skip
        self.connections_open = Gauge("telugu_s2s_connections_open", "Open WebSocket connections.",
                                      registry=self.registry)  # fmt: skip

    def count_from(self, totals: Callable[[], dict]) -> None:
        """Expose `totals()` as counters: {"name": (help, value | {label: value}, label_name)}."""
        self.registry.register(_TotalsCollector(totals))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _TotalsCollector:
    def __init__(self, totals: Callable[[], dict]):
        self._totals = totals

    def collect(self) -> Iterator[Metric]:
        for name, (help_text, value, label) in self._totals().items():
            family = CounterMetricFamily(f"telugu_s2s_{name}", help_text,
                                         labels=[label] if label else None)  # fmt: skip
            if label:
                for key, count in sorted(value.items()):
                    family.add_metric([key], count)
            else:
                family.add_metric([], value)
            yield family
