"""Training throughput: samples per second for each stage (tiny on CPU; base on a GPU).

    .venv/bin/python benchmarks/training.py [--steps 12]

For each stage, composes the training config (`experiment=<stage>_tiny`, or `_base` with
`trainer=gpu` when CUDA is available and a base config exists), fits `--steps` optimizer
steps without validation, checkpoints, loggers or a previous stage's weights, and times
each training batch after the first two (warm-up). A step's cost does not depend on the
corpus size, so it runs on the small dataset (`make data-small`) when that is built, else
on data/build/dataset. A stage that cannot run is recorded with its reason. Writes
benchmarks/results/training.json.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from harness import REPO, machine, write_result

from telugu_s2s.paths import CONFIG_DIR

STAGES = (
    "codec",
    "codec_v2",
    "speaker",
    "asr",
    "s2s_text",
    "s2s_listen_speak",
    "s2s_duplex",
    "s2s",
)
DATASETS = (REPO / "data" / "build" / "dataset_small", REPO / "data" / "build" / "dataset")


def batch_size_of(batch) -> int:
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0])
    if isinstance(batch, dict):
        return next(batch_size_of(v) for v in batch.values() if isinstance(v, torch.Tensor | dict))
    if isinstance(batch, list | tuple):
        return batch_size_of(batch[0])
    return int(next(t.shape[0] for t in vars(batch).values() if isinstance(t, torch.Tensor)))


def overrides_for(experiment: str, dataset: Path, steps: int, gpu: bool) -> list[str]:
    """Hydra overrides: `steps` training steps, no validation, checkpoints or loggers."""
    return [f"experiment={experiment}", f"trainer={'gpu' if gpu else 'cpu'}",
            f"paths.dataset_dir={dataset}", f"trainer.max_steps={steps}",
            "++trainer.limit_val_batches=0", "++trainer.max_time=null",
            "++trainer.enable_checkpointing=false", "test=false", "~logger", "~callbacks"]  # fmt: skip


def compose_for(experiment: str, dataset: Path, steps: int, gpu: bool, output_dir: Path):
    """The training config as train.py would see it, writing under `output_dir`."""
    from omegaconf import open_dict

    from telugu_s2s.train import compose_train_config

    cfg = compose_train_config(overrides_for(experiment, dataset, steps, gpu), output_dir)
    if cfg.model.get("init_from"):  # throughput does not depend on the starting weights
        with open_dict(cfg):
            cfg.model.init_from = None
    return cfg


def measure(experiment: str, dataset: Path, steps: int, gpu: bool) -> dict:
    import hydra
    import lightning as L

    from telugu_s2s.train import set_threads

    class Timer(L.Callback):
        def __init__(self):
            self.times, self.samples, self._t = [], [], 0.0

        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            self._t = time.perf_counter()

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            if gpu:
                torch.cuda.synchronize()
            self.times.append(time.perf_counter() - self._t)
            self.samples.append(batch_size_of(batch))

    cfg = compose_for(experiment, dataset, steps, gpu, Path(tempfile.mkdtemp(prefix="bench_")))
    set_threads(cfg)
    datamodule = hydra.utils.instantiate(cfg.data)
    model = hydra.utils.instantiate(cfg.model)
    timer = Timer()
    trainer = hydra.utils.instantiate(cfg.trainer, callbacks=[timer], logger=False)
    trainer.fit(model=model, datamodule=datamodule)
    times, samples = timer.times[2:], timer.samples[2:]
    return {"experiment": experiment, "dataset": dataset.name, "device": "cuda" if gpu else "cpu",
            "steps_timed": len(times), "batch_size": samples[0] if samples else None,
            "samples_per_s": round(sum(samples) / sum(times), 2) if times else None,
            "s_per_step": round(sum(times) / len(times), 3) if times else None}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=12)
    args = parser.parse_args()
    gpu = torch.cuda.is_available()
    info = machine()
    rows = {}
    dataset = next((d for d in DATASETS if (d / "telugu_s2s.json").exists()), None)
    for stage in STAGES:
        if dataset is None:
            rows[stage] = {"skipped": "no dataset: run `make data-small` or `make data`"}
            continue
        base = CONFIG_DIR / "experiment" / f"{stage}_base.yaml"
        experiment = f"{stage}_base" if gpu and base.exists() else f"{stage}_tiny"
        try:
            rows[stage] = measure(experiment, dataset, args.steps, gpu)
        except Exception as exc:  # noqa: BLE001 - one stage failing must not hide the others
            rows[stage] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
        print(stage, rows[stage])
    write_result("training", {"what": "training samples per second per stage",
                              "stages": rows, "machine": info})  # fmt: skip


if __name__ == "__main__":
    main()
