"""Shared pieces of the serving benchmarks (not a benchmark itself).

- `machine()`: what the figures were measured on, with /proc/loadavg before and after;
- `write_result(name, data)`: benchmarks/results/<name>.json (small, committed);
- `user_clips()`: Telugu utterances voiced by espeak-ng in the held-out user voices;
- `BenchServer`: the real server (`python -m telugu_s2s.serve`, the trained checkpoints,
  silero-vad, a throw-away store) in a subprocess, started through this file so that it
  also answers `/bench/latency` with every raw latency sample (p99 needs them);
- `TalkingEngine`: the model engine (its full compute every frame) whose reply is a tone
  whenever the engine lets it speak, so that barge-in trials always have a reply to cut.

    python benchmarks/harness.py serve <hydra overrides>   # what BenchServer runs
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
FRAME_MS = 80.0
SAMPLE_RATE = 16000
SENTENCES = (
    "నాకు కామెడీ సినిమాలు ఇష్టం",
    "ఆగండి, ఒక్క నిమిషం వినండి",
    "ఈ రోజు వాతావరణం ఎలా ఉంది",
    "హైదరాబాద్ కి రైలు ఎప్పుడు బయలుదేరుతుంది",
    "నా పేరు రాము, నేను విజయవాడ నుండి వచ్చాను",
    "మీరు ఏ పండుగ ఎక్కువగా ఇష్టపడతారు",
)


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def machine(threads: int | None = None) -> dict:
    import torch

    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")), platform.processor(),
    )  # fmt: skip
    return {
        "cpu": cpu, "cpu_count": os.cpu_count(), "platform": platform.platform(),
        "python": platform.python_version(), "torch": torch.__version__,
        "torch_threads": threads if threads is not None else torch.get_num_threads(),
        "loadavg_start": loadavg(),
    }  # fmt: skip


def write_result(name: str, data: dict) -> Path:
    import json

    data.setdefault("machine", {})["loadavg_end"] = loadavg()
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {path.relative_to(REPO)}")
    return path


def percentiles(values, qs=(50, 95, 99)) -> dict:
    values = np.asarray(list(values), np.float64)
    if values.size == 0:
        return {f"p{q}": None for q in qs} | {"count": 0}
    return {f"p{q}": round(float(np.percentile(values, q)), 2) for q in qs} | {
        "mean": round(float(values.mean()), 2), "count": int(values.size),
    }  # fmt: skip


def user_voices(count: int) -> list:
    """Held-out user voices of conf/synth.yaml (else any user voices), at most `count`."""
    from telugu_s2s.data.voices import load_synth_config, voices_from_config

    cfg = load_synth_config()
    voices = voices_from_config(cfg)
    names = list(cfg.get("held_out_user_voices") or [])
    names = [n for n in names if n in voices] or [n for n in voices if n.startswith("user")]
    if not names:
        raise RuntimeError("conf/synth.yaml names no user voice to voice the benchmark input")
    return [voices[n] for n in names[:count]]


def user_clips(count: int = 12) -> list[np.ndarray]:
    """`count` utterances (N,) float32 at 16 kHz, sentences x held-out voices."""
    from telugu_s2s.data.voices import render

    voices = user_voices(4)
    clips = []
    for i in range(count):
        audio = render(SENTENCES[i % len(SENTENCES)], voices[i % len(voices)])[0]
        clips.append(np.asarray(audio, np.float32))
    return clips


def engine_settings() -> dict:
    """The served engine's settings from conf/serve.yaml that the benchmarks' engines take."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(REPO / "conf" / "serve.yaml").engine
    return {"speaker_guidance": float(cfg.get("speaker_guidance", 1.0))}


def silence(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * SAMPLE_RATE), np.float32)


class BenchServer:
    """The real server in a subprocess, on a free port, with a throw-away store."""

    def __init__(self, workdir: Path, *overrides: str, threads: int = 1):
        self.port_file = workdir / "port"
        cmd = [
            sys.executable, str(Path(__file__)), "serve", "port=0", f"port_file={self.port_file}",
            f"threads={threads}", f"server.store_url=sqlite:///{workdir}/bench.db",
            f"hydra.run.dir={workdir}/hydra", "log_level=warning", "server.stats_interval_s=0",
            *overrides,
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 300
        while not self.port_file.exists() or not self.port_file.read_text().strip():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                out = self.proc.stdout.read().decode()[-3000:]
                raise RuntimeError(f"the server did not start: {out}")
            time.sleep(0.2)
        time.sleep(0.5)  # the port file is written just before uvicorn accepts
        port = self.port_file.read_text().strip()
        self.ws, self.http = f"ws://127.0.0.1:{port}/ws", f"http://127.0.0.1:{port}"

    def get(self, path: str) -> dict:
        import httpx

        return httpx.get(self.http + path, timeout=30).json()

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def __enter__(self) -> BenchServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _engine_class():
    from telugu_s2s.serving.engine import ModelEngine

    class TalkingEngine(ModelEngine):
        """ModelEngine whose reply is a 220 Hz tone whenever the engine lets it speak."""

        def step(self, frames):
            results = super().step(frames)
            for slot, result in results.items():
                state = self.slots[slot]
                if not (state.silenced or state.held):
                    n = np.arange(self.frame_size) + len(state.voiced) * self.frame_size
                    result.audio = (0.3 * np.sin(2 * np.pi * 220 * n / 16000)).astype(np.float32)
                    result.speaking, result.assistant_text = True, "."
            return results

    return TalkingEngine


def TalkingEngine(**kwargs):  # noqa: N802 - a factory that Hydra instantiates
    return _engine_class()(**kwargs)


def _serve() -> None:
    """Run telugu_s2s.serve with raw latency samples recorded and served at /bench/latency."""
    from telugu_s2s.serving import server
    from telugu_s2s.serving.metrics import LatencyStats

    class RecordingStats(LatencyStats):
        def __init__(self):
            super().__init__()
            self.raw: dict[str, list[float]] = {}

        def record(self, component: str, ms: float) -> None:
            super().record(component, ms)
            self.raw.setdefault(component, []).append(float(ms))

    create_app = server.create_app

    def recording_app(engine, settings=None, vad="silero"):
        app = create_app(engine, settings, vad)
        hub, stats = app.state.hub, RecordingStats()
        hub.latency = hub.worker.latency = stats

        @app.get("/bench/latency")
        async def raw_latency():
            return {"raw": stats.raw, "ticks": hub.worker.ticks, "overruns": hub.worker.overruns,
                    "interruptions": hub.interruptions.summary()}  # fmt: skip

        return app

    server.create_app = recording_app
    from telugu_s2s import serve

    sys.argv = [sys.argv[0], *sys.argv[2:]]
    serve.main()


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        _serve()
    else:
        sys.exit(__doc__)
