"""Figures for the staged S2S recipe (docs/training_s2s.md).

    .venv/bin/python benchmarks/s2s_stages.py steps s2s_text_tiny [--steps 10] [--threads 1]
    .venv/bin/python benchmarks/s2s_stages.py recall [--items 200]

`steps`: seconds per training step (forward, backward, AdamW) of a stage's experiment on
the real dataset. The batches are fetched first, so the figure is the model's and not the
loader's (stages 2 and 3 encode missing codec tokens lazily here). Prints the 1-minute load
beside it: on the shared 2-core machine the figure moves with the other jobs.

`recall`: of sampled duplex training windows, how many hold a recall reply whose fact turn
is in the window and more than the attention window (125 frames) before it, i.e. examples
that only the context memory can get right; for s2s_tiny's windows and recall windows.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from telugu_s2s.paths import CONFIG_DIR, REPO_ROOT

DATASET = REPO_ROOT / "data" / "build" / "dataset"


def load() -> str:
    return " ".join(open("/proc/loadavg").read().split()[:3])


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    import telugu_s2s.train  # noqa: F401  (registers the repo_root resolver)

    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        cfg = hydra_compose("train", overrides=overrides, return_hydra_config=True)
        HydraConfig().set_config(cfg)
        with open_dict(cfg):
            cfg.paths.output_dir = "/tmp/s2s_stage_steps"
            cfg.data.num_workers = 0
    return cfg


def step_times(experiment: str, steps: int, threads: int, extra: list[str]) -> None:
    import hydra

    torch.set_num_threads(threads)
    cfg = compose([f"experiment={experiment}", "model.init_from=null",
                   "data.precompute_tokens=false", *extra])  # fmt: skip
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.setup()
    module = hydra.utils.instantiate(cfg.model)
    silence = getattr(datamodule.datasets["train"], "silence", None)
    if silence is not None:
        module.net.set_silence_codes(silence)
    batches = iter(datamodule.train_dataloader())
    batches = [next(batches) for _ in range(steps + 2)]  # the first two warm up
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-4)
    module.train()
    times = []
    for batch in batches:
        start = time.perf_counter()
        loss = module._losses(batch)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    times = sorted(times[2:])
    frames = batches[0]["num_frames"].float().mean().item()
    print(f"{experiment} {' '.join(extra)}: {threads} thread(s), batch {cfg.data.batch_size}, "
          f"{frames:.0f} frames an item: median {times[len(times) // 2]:.2f} s a step "
          f"(min {times[0]:.2f}, max {times[-1]:.2f}, {len(times)} steps); load {load()}")  # fmt: skip


def recall_coverage(items: int, context_frames: int = 125) -> None:
    from telugu_s2s.data.datasets import load_split
    from telugu_s2s.data.text_dialogs import load_dialogs
    from telugu_s2s.data.timeline import DialogTimelines, TimelineConfig

    rows = load_split(DATASET, "train")
    facts = {
        d.dialog_id: {t.index: t.depends_on[0] for t in d.turns if t.depends_on}
        for d in load_dialogs(DATASET, "train")
    }
    settings = {
        "s2s_tiny (48 s, opening 0.5)": {},
        "recall windows p=0.5": {"recall_window_prob": 0.5},
        "recall windows p=0.7 (s2s_duplex_tiny)": {"recall_window_prob": 0.7},
    }
    for name, extra in settings.items():
        cfg = TimelineConfig(max_seconds=48.0, start_at_opening=0.5, **extra)
        ds = DialogTimelines(rows, 16000, cfg, seed=0, train=True)
        beyond = inside = dependent = 0
        for index in np.random.default_rng(0).choice(len(ds), items, replace=False):
            item = ds[int(index)]
            by_turn = {t["turn_index"]: t for t in item["turns"]}
            far = near = False
            for turn in item["turns"]:
                fact = facts[item["dialog_id"]].get(turn["turn_index"])
                dependent += fact is not None
                if fact in by_turn:
                    gap = turn["assistant_span"][0] - by_turn[fact]["user_span"][1]
                    far, near = far or gap > context_frames, near or gap <= context_frames
            beyond, inside = beyond + far, inside + near
        print(f"{name}: {beyond}/{items} windows hold a recall reply with its fact more than "
              f"{context_frames} frames back, {inside} within attention; "
              f"{dependent} dependent replies")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    steps = sub.add_parser("steps")
    steps.add_argument("experiment")
    steps.add_argument("--steps", type=int, default=10)
    steps.add_argument("--threads", type=int, default=1)
    steps.add_argument("overrides", nargs="*", help="extra Hydra overrides")
    recall = sub.add_parser("recall")
    recall.add_argument("--items", type=int, default=200)
    args = parser.parse_args()
    if args.command == "steps":
        step_times(args.experiment, args.steps, args.threads, args.overrides)
    else:
        recall_coverage(args.items)


if __name__ == "__main__":
    main()
