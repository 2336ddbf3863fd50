"""The model engine's checkpoints: the three exported stages (codec, speaker bank, S2S),
loaded without Lightning and checked against each other."""

from __future__ import annotations

from pathlib import Path

import torch

from telugu_s2s.checkpoint import CONFIG_FILE, load_pretrained
from telugu_s2s.models.codec import AudioTokenizer
from telugu_s2s.models.s2s import S2SModel
from telugu_s2s.speakers import SpeakerBank

_MAKE_TARGETS = {stage: f"make train-{stage}" for stage in ("codec", "speaker", "s2s")}


def _require(directory: Path, what: str, marker: str) -> Path:
    if not (directory / marker).exists():
        raise FileNotFoundError(
            f"no {what} checkpoint in {directory} ({marker} is missing): create it with "
            f"`{_MAKE_TARGETS[what]}` (or `make train` for all three stages)"
        )
    return directory


def load_models(codec_dir: Path, speaker_dir: Path, s2s_dir: Path, device: torch.device
                ) -> tuple[AudioTokenizer, SpeakerBank, S2SModel]:  # fmt: skip
    """The three exported stages, checked against each other."""
    codec = load_pretrained(_require(codec_dir, "codec", CONFIG_FILE), map_location=device)
    bank = SpeakerBank.load(_require(speaker_dir, "speaker", "speaker_bank.yaml"))
    model = load_pretrained(_require(s2s_dir, "s2s", CONFIG_FILE), map_location=device)
    cfg = model.cfg
    if codec.cardinality != cfg.codebook_size or codec.num_codebooks < cfg.num_codebooks:
        raise ValueError(
            f"the codec ({codec.num_codebooks} x {codec.cardinality} codes) does not fit the S2S "
            f"model ({cfg.num_codebooks} x {cfg.codebook_size}): export them from one training run"
        )
    if bank.embedding_dim != cfg.speaker_dim:
        raise ValueError(
            f"speaker bank dim {bank.embedding_dim} != S2S speaker_dim {cfg.speaker_dim}"
        )
    model.check_speaker_bank(bank)
    model.check_codec(codec)
    return codec.eval(), bank, model.eval()
