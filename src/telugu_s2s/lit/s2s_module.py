"""S2S stage LightningModule (foundation version: trains the frame baseline's text streams)."""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from telugu_s2s.data.text import PAD, TextTokenizer


class S2SModule(L.LightningModule):
    def __init__(self, net: nn.Module, lr: float = 1e-3, weight_decay: float = 0.01, user_text_weight: float = 0.5):
        super().__init__()
        self.save_hyperparameters(logger=False, ignore=["net"])
        self.net = net
        self.tokenizer = TextTokenizer()

    def _losses(self, batch: dict) -> dict[str, torch.Tensor]:
        out = self.net(batch["user_audio"], batch["speaker_id"], batch["style_id"])
        frames = out["assistant_text"].shape[1]

        def ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:  # (B, F, V), (B, F)
            return F.cross_entropy(logits.transpose(1, 2), target[:, :frames], ignore_index=PAD)

        assistant = ce(out["assistant_text"], batch["assistant_text"])
        user = ce(out["user_text"], batch["user_text"])
        loss = assistant + self.hparams.user_text_weight * user
        return {"loss": loss, "assistant_text_ce": assistant, "user_text_ce": user}

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        losses = self._losses(batch)
        bs = batch["user_audio"].shape[0]
        self.log_dict({f"train/{k}": v for k, v in losses.items()}, prog_bar=True, batch_size=bs)
        return losses["loss"]

    def _eval_step(self, prefix: str, batch: dict) -> None:
        losses = self._losses(batch)
        bs = batch["user_audio"].shape[0]
        self.log_dict({f"{prefix}/{k}": v for k, v in losses.items()}, prog_bar=True, batch_size=bs, sync_dist=True)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step("val", batch)

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step("test", batch)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
