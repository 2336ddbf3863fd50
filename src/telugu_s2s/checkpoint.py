"""Framework-free model checkpoints: `model.safetensors` + `config.json` in one folder.

Every model is a plain `nn.Module` built from a dataclass config: it takes the config as
its only constructor argument, keeps it as `self.cfg`, and names its config class in
`config_class`. Lightning checkpoints are for resuming training; these are what the
server, the notebooks and the Hub use, and they load without Lightning.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import os
import tempfile
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


def _qualname(obj_type: type) -> str:
    return f"{obj_type.__module__}.{obj_type.__qualname__}"


def _import(path: str) -> Any:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def weights_fingerprint(state: dict[str, torch.Tensor]) -> str:
    """A short hash of named tensors (a state dict or part of one): equal weights, equal hash."""
    digest = hashlib.sha256()
    for key, value in sorted(state.items()):
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """`write(tmp)` a sibling temp file, flush it to disk, then rename it over `path`: a
    crash at any point leaves the old file or the new one, never a torn one."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb+") as written:
            os.fsync(written.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; an export is readable like any file
        os.replace(tmp, path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself survives a power cut
        finally:
            os.close(directory)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def save_pretrained(
    model: nn.Module, directory: str | Path, extra: dict | None = None, dtype: str | None = None
) -> Path:
    """Write the weights and the dataclass config of `model` (plus `extra` metadata).

    `dtype` ("float16", "bfloat16") stores floating-point weights at that precision (half
    the bytes); loading casts them back to the model's own dtype. Each file is written
    atomically, weights first: a reader never sees a torn file."""
    cfg = getattr(model, "cfg", None)
    if cfg is None or not dataclasses.is_dataclass(cfg):
        raise TypeError(f"{type(model).__name__} has no dataclass `cfg`; cannot export it")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    # safetensors refuses shared storage: clone tied weights.
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    if dtype is not None:
        store = getattr(torch, dtype)
        state = {k: v.to(store) if v.is_floating_point() else v for k, v in state.items()}
    atomic_write(directory / WEIGHTS_FILE, lambda tmp: save_file(state, str(tmp)))
    meta = {
        "model_class": _qualname(type(model)),
        "config_class": _qualname(type(cfg)),
        "config": dataclasses.asdict(cfg),
        "stored_dtype": dtype or "native",
        **(extra or {}),
    }
    text = json.dumps(meta, indent=2, ensure_ascii=False)
    atomic_write(directory / CONFIG_FILE, lambda tmp: tmp.write_text(text))
    return directory


def read_metadata(directory: str | Path) -> dict:
    path = Path(directory) / CONFIG_FILE
    if not path.exists():
        raise FileNotFoundError(f"no {CONFIG_FILE} in {directory}: not an exported checkpoint")
    return json.loads(path.read_text())


def build_config(config_class: type, values: dict) -> Any:
    """Rebuild a (possibly nested) dataclass config from its `asdict` form."""
    kwargs = {}
    hints = typing.get_type_hints(config_class)  # resolves `from __future__` string annotations
    for field in dataclasses.fields(config_class):
        if field.name not in values:
            continue
        value = values[field.name]
        field_type = hints.get(field.name)
        if (
            field_type is not None
            and dataclasses.is_dataclass(field_type)
            and isinstance(value, dict)
        ):
            value = build_config(field_type, value)
        elif isinstance(value, list) and isinstance(field.default, tuple):
            value = tuple(value)
        kwargs[field.name] = value
    return config_class(**kwargs)


def load_pretrained(
    directory: str | Path, map_location: str | torch.device = "cpu", revision: str | None = None
) -> nn.Module:
    """Rebuild the model saved by `save_pretrained` and load its weights (eval mode).

    `directory` is an export folder or, when no such folder exists, a Hugging Face Hub repo id
    ("USER/NAME", pushed by `python -m telugu_s2s.hub push`), downloaded into the HF cache."""
    if not Path(directory).exists():
        # Imported here: huggingface_hub stays off the server's import path.
        from telugu_s2s.hub_download import HubError, download, is_repo_id

        if not is_repo_id(str(directory)):
            raise FileNotFoundError(f"{directory}: no such export folder")
        try:
            directory = download(str(directory), revision=revision)
        except HubError as exc:
            raise FileNotFoundError(
                f"{directory} is neither a folder nor a Hub repo that could be downloaded: {exc}"
            ) from None
    meta = read_metadata(directory)
    model_class = _import(meta["model_class"])
    config_class = _import(meta["config_class"])
    model = model_class(build_config(config_class, meta["config"]))
    state = load_file(str(Path(directory) / WEIGHTS_FILE), device=str(map_location))
    model.load_state_dict(state)
    return model.eval()


def load_export_weights(net: nn.Module, directory: str | Path) -> None:
    """Start `net` from an export's weights; its config must match the export's."""
    source = load_pretrained(directory)
    theirs, ours = vars(source.cfg), vars(net.cfg)
    differ = sorted(k for k in theirs.keys() | ours.keys() if theirs.get(k) != ours.get(k))
    if differ:
        raise ValueError(
            f"{directory} holds a model whose config differs from this run's in {differ}: "
            "set them (model.net.cfg.<name>) to the export's values"
        )
    net.load_state_dict(source.state_dict())
