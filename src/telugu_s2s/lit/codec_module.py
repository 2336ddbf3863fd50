"""Codec stage LightningModule: reconstruction + commitment losses around `CodecModel`."""

from __future__ import annotations

import lightning as L
import torch
from torch import nn

from telugu_s2s.metrics.audio import MelDistance, MultiScaleMelLoss, si_snr


class CodecModule(L.LightningModule):
    def __init__(
        self,
        net: nn.Module,
        lr: float = 3e-4,
        betas: tuple[float, float] = (0.8, 0.99),
        mel_weight: float = 1.0,
        waveform_weight: float = 0.1,
        commitment_weight: float = 1.0,
    ):
        super().__init__()
        self.save_hyperparameters(logger=False, ignore=["net"])
        self.net = net
        self.mel_loss = MultiScaleMelLoss(net.sample_rate)
        self.mel_distance = MelDistance(net.sample_rate)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        audio = batch["audio"]  # (B, 1, T)
        out = self.net(audio)
        mel = self.mel_loss(out.audio, audio)
        wave = (out.audio - audio).abs().mean()
        hp = self.hparams
        loss = hp.mel_weight * mel + hp.waveform_weight * wave + hp.commitment_weight * out.commitment_loss
        self.log_dict(
            {"train/loss": loss, "train/mel": mel, "train/commitment": out.commitment_loss,
             "train/perplexity": out.perplexity.mean()},
            prog_bar=True, batch_size=audio.shape[0],
        )  # fmt: skip
        return loss

    def _eval_step(self, prefix: str, batch: dict) -> None:
        audio = batch["audio"]  # (B, 1, T)
        recon = self.net.decode(self.net.encode(audio))[..., : audio.shape[-1]]  # all codebooks
        self.log_dict(
            {f"{prefix}/mel_distance": self.mel_distance(recon, audio).mean(),
             f"{prefix}/si_snr": si_snr(recon, audio).mean()},
            prog_bar=True, batch_size=audio.shape[0], sync_dist=True,
        )  # fmt: skip

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step("val", batch)

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step("test", batch)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.net.parameters(), lr=self.hparams.lr, betas=tuple(self.hparams.betas))
