"""Model files are written atomically and read without unpickling arbitrary objects."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest
import torch
from torch import nn

from telugu_s2s import checkpoint
from telugu_s2s.checkpoint import WEIGHTS_FILE, atomic_write, save_pretrained

SRC = Path(checkpoint.__file__).resolve().parent
# torch.load calls allowed without weights_only=True, and why.
PICKLE_LOADS = {
    "callbacks.py": "Lightning's own training checkpoint of this run (hyperparameters are pickled)",
    "export.py": "a local run's Lightning checkpoint, named on the command line (pickled too)",
    "train.py": "the local checkpoint a run resumes (ckpt_path): its Timer's spent time",
    "s2s_text_module.py": "a local text-stage run's checkpoint to start from (init_checkpoint)",
}


@dataclasses.dataclass
class TinyConfig:
    width: int = 3


class Tiny(nn.Module):
    def __init__(self, cfg: TinyConfig):
        super().__init__()
        self.cfg = cfg
        self.proj = nn.Linear(cfg.width, cfg.width)


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path):
    target = tmp_path / "export.json"
    atomic_write(target, lambda tmp: tmp.write_text("old"))

    def torn(tmp: Path) -> None:
        tmp.write_text("half of the ne")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, torn)
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]


def test_an_interrupted_export_keeps_the_previous_weights(tmp_path, monkeypatch):
    model = Tiny(TinyConfig())
    save_pretrained(model, tmp_path)
    before = (tmp_path / WEIGHTS_FILE).read_bytes()

    def crash(state, path):  # the process dies half-way through the weights
        Path(path).write_bytes(b"\x00" * 10)
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint, "save_file", crash)
    with torch.no_grad():
        model.proj.weight.add_(1.0)
    with pytest.raises(KeyboardInterrupt):
        save_pretrained(model, tmp_path)
    assert (tmp_path / WEIGHTS_FILE).read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", WEIGHTS_FILE]


def test_torch_load_is_only_ever_called_with_weights_only():
    unsafe = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and ast.unparse(node.func) in (
                "torch.load",
                "torch.serialization.load",
            ):
                flags = {k.arg: ast.unparse(k.value) for k in node.keywords}
                if flags.get("weights_only") != "True" and path.name not in PICKLE_LOADS:
                    unsafe.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert unsafe == [], f"torch.load without weights_only=True: {unsafe}"


def test_the_engine_refuses_an_s2s_model_trained_on_another_codecs_codes(tmp_path):
    from telugu_s2s.models.codec import CodecConfig, CodecModel
    from telugu_s2s.models.s2s import S2SConfig, S2SModel
    from telugu_s2s.paths import REPO_ROOT
    from telugu_s2s.serving.engine_checkpoints import load_models

    torch.manual_seed(0)
    codec = CodecModel(CodecConfig(n_filters=4, dimension=16))
    save_pretrained(codec, tmp_path / "codec")
    speakers = REPO_ROOT / "checkpoints" / "speaker"
    small = dict(num_codebooks=2, d_model=32, num_layers=1, num_heads=2, depth_d_model=16,
                 depth_layers=1, depth_heads=2, memory_attention_dim=8)  # fmt: skip
    for fingerprint, fits in ((codec.codes_fingerprint(), True), ("0123456789abcdef", False)):
        save_pretrained(
            S2SModel(S2SConfig(**small, codec_fingerprint=fingerprint)), tmp_path / "s2s"
        )
        if fits:
            load_models(tmp_path / "codec", speakers, tmp_path / "s2s", torch.device("cpu"))
        else:
            with pytest.raises(ValueError, match="trained on the codes of codec 0123456789abcdef"):
                load_models(tmp_path / "codec", speakers, tmp_path / "s2s", torch.device("cpu"))
