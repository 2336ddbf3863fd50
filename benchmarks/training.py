"""Training throughput: samples per second for each stage (tiny on CPU; base on a GPU).

    .venv/bin/python benchmarks/training.py [--steps 12]

For each stage, composes the training config (`experiment=<stage>_tiny`, or `_base` with
`trainer=gpu` when CUDA is available), fits `--steps` optimizer steps on the built dataset
(data/build/dataset: `make data`) without validation, checkpoints or loggers, and times
each training batch after the first two (warm-up). A stage that cannot run (no dataset)
is recorded with its reason. Writes benchmarks/results/training.json.
"""

from __future__ import annotations

import argparse
import time

import torch
from harness import REPO, machine, write_result

STAGES = ("codec", "speaker", "s2s")


def batch_size_of(batch) -> int:
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0])
    if isinstance(batch, dict):
        return next(batch_size_of(v) for v in batch.values() if isinstance(v, torch.Tensor | dict))
    if isinstance(batch, list | tuple):
        return batch_size_of(batch[0])
    return int(next(t.shape[0] for t in vars(batch).values() if isinstance(t, torch.Tensor)))


def measure(stage: str, size: str, steps: int, gpu: bool) -> dict:
    import hydra
    import lightning as L
    from hydra import compose, initialize_config_dir

    from telugu_s2s.paths import CONFIG_DIR

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

    overrides = [f"experiment={stage}_{size}", f"trainer={'gpu' if gpu else 'cpu'}",
                 f"trainer.max_steps={steps}", "trainer.limit_val_batches=0", "test=false",
                 "~logger", "~callbacks", "trainer.enable_checkpointing=false"]  # fmt: skip
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    datamodule = hydra.utils.instantiate(cfg.data)
    model = hydra.utils.instantiate(cfg.model)
    timer = Timer()
    trainer = hydra.utils.instantiate(cfg.trainer, callbacks=[timer], logger=False)
    trainer.fit(model=model, datamodule=datamodule)
    times, samples = timer.times[2:], timer.samples[2:]
    return {"experiment": f"{stage}_{size}", "device": "cuda" if gpu else "cpu",
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
    for stage in STAGES:
        if not (REPO / "data" / "build" / "dataset").exists():
            rows[stage] = {"skipped": "no dataset in data/build/dataset: run `make data`"}
            continue
        try:
            rows[stage] = measure(stage, "base" if gpu else "tiny", args.steps, gpu)
        except Exception as exc:  # noqa: BLE001 - one stage failing must not hide the others
            rows[stage] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
        print(stage, rows[stage])
    write_result("training", {"what": "training samples per second per stage",
                              "stages": rows, "machine": info})  # fmt: skip


if __name__ == "__main__":
    main()
