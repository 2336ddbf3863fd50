"""Speaker stage LightningModule: AAM-softmax over every synthetic voice; EER and
identification accuracy among the four assistant voices on held-out sentences; exports
the speaker bank beside the encoder."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import torch
from torch import nn

from telugu_s2s.data.voices import ASSISTANT_VOICES
from telugu_s2s.lit.eval_hooks import SplitEvalHooks
from telugu_s2s.metrics.speaker import enrol_and_score, projection_plot
from telugu_s2s.models.speaker import AAMSoftmax

log = logging.getLogger(__name__)


class SpeakerModule(SplitEvalHooks, L.LightningModule):
    def __init__(
        self,
        net: nn.Module,
        num_classes: int = 12,
        lr: float = 2e-3,
        weight_decay: float = 2e-5,
        margin: float = 0.2,
        scale: float = 30.0,
        margin_warmup_steps: int = 200,
        enrol_utterances: int = 40,
    ):
        super().__init__()
        self.save_hyperparameters(logger=False, ignore=["net"])
        self.net = net
        self.head = AAMSoftmax(net.embedding_dim, num_classes, margin=margin, scale=scale)
        self._eval: dict[str, list[torch.Tensor]] = {}

    def setup(self, stage: str) -> None:
        names = getattr(self.trainer.datamodule, "speaker_names", None) if self.trainer else None
        if names and len(names) > self.hparams.num_classes:
            raise ValueError(
                f"{len(names)} voices in the data but num_classes={self.hparams.num_classes}"
            )

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        # Ramp the margin in: a full margin from step 0 slows early training.
        ramp = min(1.0, self.global_step / max(1, self.hparams.margin_warmup_steps))
        self.head.margin = self.hparams.margin * ramp
        emb = self.net(batch["audio"], batch["length"])  # (B, D)
        loss, logits = self.head(emb, batch["speaker_id"])
        acc = (logits.argmax(1) == batch["speaker_id"]).float().mean()
        self.log_dict(
            {"train/loss": loss, "train/acc": acc}, prog_bar=True, batch_size=emb.shape[0]
        )
        return loss

    def _eval_step(self, prefix: str, batch: dict) -> None:
        emb = self.net(batch["audio"], batch["length"])  # (B, D)
        loss, _ = self.head(emb, batch["speaker_id"])
        self.log(f"{prefix}/loss", loss, prog_bar=True, batch_size=emb.shape[0], sync_dist=True)
        self._eval.setdefault("emb", []).append(emb.detach().cpu())
        self._eval.setdefault("label", []).append(batch["speaker_id"].detach().cpu())

    def _eval_epoch_end(self, prefix: str) -> None:
        if not self._eval:
            return
        emb, labels = torch.cat(self._eval.pop("emb")), torch.cat(self._eval.pop("label"))
        self._eval.clear()
        emb, labels = self._gather_ranks(emb, labels)
        log_dir = self.trainer.log_dir  # a broadcast under DDP: every rank must ask
        if prefix == "test" and log_dir and self.trainer.is_global_zero:
            self._log_projection(emb, labels, Path(log_dir))
        k = len(ASSISTANT_VOICES)  # assistant voices are labels 0..3
        keep = labels < k
        try:
            scores = enrol_and_score(emb[keep], labels[keep], k)
        except ValueError as err:  # e.g. a debug run with too few batches
            log.warning("skipping %s EER: %s", prefix, err)
            return
        self.log_dict(
            {f"{prefix}/eer": scores["eer"], f"{prefix}/id_accuracy": scores["accuracy"]},
            prog_bar=True,
            sync_dist=True,  # the same value on every rank (all of them scored the whole split)
        )

    def _gather_ranks(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Under DDP each rank holds a shard of the split: EER needs all of it."""
        world = self.trainer.world_size if self._trainer is not None else 1
        if world == 1:
            return tensors
        import torch.distributed as dist

        parts: list = [None] * world
        dist.all_gather_object(parts, tensors)  # shards may differ in length
        return tuple(torch.cat(shard) for shard in zip(*parts, strict=True))

    def _log_projection(self, emb: torch.Tensor, labels: torch.Tensor, log_dir: Path) -> None:
        """A 2-D projection of the held-out embeddings: a png in the run dir, and wandb if used."""
        names = getattr(self.trainer.datamodule, "speaker_names", None) or list(ASSISTANT_VOICES)
        path = log_dir / "speaker_projection.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        projection_plot(emb, labels, names, path)
        for logger in self.loggers:
            if type(logger).__name__ == "WandbLogger":
                logger.log_image(key="test/speaker_projection", images=[str(path)])

    def configure_optimizers(self):
        opt = torch.optim.AdamW(
            self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )
        total = self.trainer.estimated_stepping_batches if self.trainer else 1000
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=self.hparams.lr, total_steps=max(1, int(total)), pct_start=0.15
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    @torch.no_grad()
    def export_extras(self, directory) -> None:
        """Enrol the four assistant voices from training utterances and save the bank."""
        from telugu_s2s.speakers import SpeakerBank, enroll_audio, load_voice_metadata

        train = self.trainer.datamodule.datasets["train"]
        train = getattr(train, "dataset", train)  # unwrap a Subset
        metadata = load_voice_metadata()
        bank = SpeakerBank(self.net.embedding_dim)
        net = self.net.to("cpu")
        for name in ASSISTANT_VOICES:
            rows = [
                i
                for i, s in zip(train.keep, train.labels, strict=True)
                if train.speaker_names[s] == name
            ]
            clips = [train.audio(i) for i in rows[: self.hparams.enrol_utterances]]
            if clips:
                enroll_audio(bank, net, name, clips, metadata.get(name))
        bank.save(directory)
