"""Lightning callbacks shared by the three stages."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import lightning as L
import torch

from telugu_s2s.checkpoint import save_pretrained
from telugu_s2s.paths import REPO_ROOT

log = logging.getLogger(__name__)


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def export_module(pl_module: L.LightningModule, export_dir: str | Path, stage: str,
                  dtype: str | None = None, extra: dict | None = None) -> None:  # fmt: skip
    """Write `pl_module.net` (and the module's `export_extras`) as a framework-free export."""
    extra = {"stage": stage, "commit": git_commit(), "command": " ".join(sys.argv), **(extra or {})}
    save_pretrained(pl_module.net, export_dir, extra=extra, dtype=dtype)
    if hasattr(pl_module, "export_extras"):
        pl_module.export_extras(Path(export_dir))
    log.info("exported %s model to %s", stage, export_dir)


class ExportPretrained(L.Callback):
    """At the end of fitting, export the best weights of `pl_module.net` (and anything the
    module adds through `export_extras(dir)`, e.g. the speaker bank) as safetensors + config."""

    def __init__(self, export_dir: str, stage: str, dtype: str | None = None):
        self.export_dir = Path(export_dir)
        self.stage, self.dtype = stage, dtype  # dtype: store weights as e.g. "float16"

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.global_rank != 0:
            return
        best = getattr(trainer.checkpoint_callback, "best_model_path", "")
        state = None
        if best and Path(best).exists():
            state = pl_module.state_dict()
            pl_module.load_state_dict(
                torch.load(best, map_location="cpu", weights_only=False)["state_dict"]
            )
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        extra = {"metrics": metrics, "global_step": trainer.global_step,
                 "source_checkpoint": best or None}  # fmt: skip
        export_module(pl_module, self.export_dir, self.stage, self.dtype, extra)
        if state is not None:
            pl_module.load_state_dict(state)  # leave the module as training left it
