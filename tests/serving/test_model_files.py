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
