"""Export a run's Lightning checkpoint without finishing the run: the framework-free export
(model.safetensors + config.json) that serving, evaluation and the next stage load.

    python -m telugu_s2s.export logs/asr/runs/<run>/checkpoints/last.ckpt /tmp/asr [--dtype float16]

A long run on a small machine is often stopped by its session rather than by max_steps;
this turns its latest (or best) checkpoint into an export while it keeps going. The
Lightning module is rebuilt from the run's own config (<run>/.hydra/config.yaml), so any
stage works, extras (the speaker bank) included.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch


class ExportError(ValueError):
    """A checkpoint that cannot be exported."""


def run_config(checkpoint: Path):
    """The Hydra config of the run that wrote `checkpoint` (<run>/checkpoints/x.ckpt)."""
    from omegaconf import OmegaConf

    import telugu_s2s.train  # noqa: F401  (registers the repo_root resolver)

    path = checkpoint.resolve().parent.parent / ".hydra" / "config.yaml"
    if not path.is_file():
        raise ExportError(f"{checkpoint}: no run config at {path}")
    return OmegaConf.load(path)


def export_checkpoint(checkpoint: str | Path, export_dir: str | Path,
                      dtype: str | None = None) -> dict:  # fmt: skip
    """Rebuild the run's module, load `checkpoint` into it and export; returns the metadata."""
    import hydra

    from telugu_s2s.callbacks import export_module

    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise ExportError(f"{checkpoint}: no such checkpoint")
    cfg = run_config(checkpoint)
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    if "state_dict" not in state:
        raise ExportError(f"{checkpoint}: not a Lightning checkpoint (no state_dict)")
    module = hydra.utils.instantiate(cfg.model)
    module.load_state_dict(state["state_dict"])
    net_cfg, codec_dir = getattr(module.net, "cfg", None), cfg.get("data", {}).get("codec_dir")
    if hasattr(net_cfg, "codec_fingerprint") and codec_dir:  # set at fit start, not saved
        from telugu_s2s.checkpoint import load_pretrained

        net_cfg.codec_fingerprint = load_pretrained(codec_dir).codes_fingerprint()
    extra = {"global_step": int(state.get("global_step", 0)), "epoch": state.get("epoch"),
             "source_checkpoint": str(checkpoint)}  # fmt: skip
    export_module(module, export_dir, str(cfg.get("stage_name", "unknown")), dtype, extra)
    return extra


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", help="a run's Lightning checkpoint (.ckpt)")
    parser.add_argument("export_dir")
    parser.add_argument("--dtype", choices=["float16", "bfloat16"], default=None)
    args = parser.parse_args(argv)
    try:
        extra = export_checkpoint(args.checkpoint, args.export_dir, args.dtype)
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"exported step {extra['global_step']} of {args.checkpoint} to {args.export_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
