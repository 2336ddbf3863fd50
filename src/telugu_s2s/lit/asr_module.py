"""Recognizer stage LightningModule: CTC over Telugu characters, formant warps and SpecAugment
on the log-mels (modules/feature_augment.py), and (with a frozen codec) some training
utterances replaced by the codec's round trip so that the judge hears coded speech as well
as clean speech. Reports CER on held-out dialogs."""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from telugu_s2s.checkpoint import load_export_weights
from telugu_s2s.data.text import BLANK
from telugu_s2s.evaluation.cer import ErrorRate
from telugu_s2s.lit.eval_hooks import SplitEvalHooks
from telugu_s2s.modules.feature_augment import FrequencyWarp, SpecAugment


class AsrModule(SplitEvalHooks, L.LightningModule):
    def __init__(
        self,
        net: nn.Module,
        lr: float = 2e-3,
        weight_decay: float = 1e-2,
        warmup_steps: int = 300,
        spec_augment: bool = True,
        codec_dir: str | None = None,
        codec_round_trip_prob: float = 0.0,
        lr_decay_steps: int | None = None,  # cosine length; None: the whole planned run
        frequency_warp_prob: float = 0.0,  # share of utterances with warped formants
        init_from: str | None = None,  # an export folder to go on from (a fresh optimizer)
    ):
        super().__init__()
        self.save_hyperparameters(logger=False, ignore=["net"])
        self.net = net
        if init_from:
            load_export_weights(net, init_from)
        augments = [FrequencyWarp(net.cfg.mel, frequency_warp_prob)] if frequency_warp_prob else []
        augments += [SpecAugment()] if spec_augment else []
        self.spec_augment = nn.Sequential(*augments) if augments else None
        self.codec = None
        if codec_dir and codec_round_trip_prob > 0:
            from telugu_s2s.checkpoint import load_pretrained

            self.codec = load_pretrained(codec_dir).eval().requires_grad_(False)
        self._errors: dict[str, ErrorRate] = {}

    def state_dict(self, *args, **kwargs):  # the frozen codec is not part of this stage
        return {
            k: v
            for k, v in super().state_dict(*args, **kwargs).items()
            if not k.startswith("codec.")
        }

    def load_state_dict(self, state_dict, strict: bool = True, **kwargs):
        return super().load_state_dict(state_dict, strict=False if self.codec else strict, **kwargs)

    @torch.no_grad()
    def _round_trip(self, audio: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Replace a random share of the batch (B, T) by the codec's round trip."""
        pick = torch.rand(audio.shape[0]) < self.hparams.codec_round_trip_prob
        if not pick.any():
            return audio
        self.codec.eval()  # Lightning's train() would let the quantizer update its codebooks
        chosen = audio[pick][:, None]  # (b, 1, T)
        coded = self.codec.decode(self.codec.encode(chosen))[:, 0, : audio.shape[-1]]  # (b, T')
        coded = F.pad(coded, (0, audio.shape[-1] - coded.shape[-1]))
        mask = torch.arange(audio.shape[-1], device=audio.device)[None] < lengths[pick][:, None]
        audio = audio.clone()
        audio[pick] = coded * mask
        return audio

    def _loss(self, batch: dict, train: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        audio, lengths = batch["audio"], batch["length"]
        if train and self.codec is not None:
            audio = self._round_trip(audio, lengths)
        log_probs, out_lengths = self.net(
            audio, lengths, spec_augment=self.spec_augment if train else None
        )
        loss = F.ctc_loss(
            log_probs.transpose(0, 1), batch["text_ids"], out_lengths, batch["text_length"],
            blank=BLANK, zero_infinity=True,
        )  # fmt: skip
        return loss, log_probs, out_lengths

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss, _, _ = self._loss(batch, train=True)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["audio"].shape[0])
        return loss

    def _eval_step(self, prefix: str, batch: dict) -> None:
        loss, log_probs, out_lengths = self._loss(batch, train=False)
        self.log(f"{prefix}/loss", loss, batch_size=batch["audio"].shape[0], sync_dist=True)
        errors = self._errors.setdefault(prefix, ErrorRate())
        for hyp, ref in zip(self.net.decode(log_probs, out_lengths), batch["text"], strict=True):
            errors.add(hyp, ref)

    def _eval_epoch_end(self, prefix: str) -> None:
        errors = self._errors.pop(prefix, None)
        if errors is not None and errors.characters:
            self.log(
                f"{prefix}/cer", errors.edits / errors.characters, prog_bar=True, sync_dist=True
            )

    def configure_optimizers(self):
        opt = torch.optim.AdamW(
            self.net.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )
        total = self.hparams.lr_decay_steps or (
            self.trainer.estimated_stepping_batches if self.trainer else 10_000
        )
        warmup = self.hparams.warmup_steps

        def schedule(step: int) -> float:  # linear warm-up, then cosine to 5%
            if step < warmup:
                return (step + 1) / warmup
            progress = min(1.0, (step - warmup) / max(1, total - warmup))
            return 0.05 + 0.95 * 0.5 * (1 + torch.cos(torch.tensor(progress * torch.pi)).item())

        sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
