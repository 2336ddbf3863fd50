"""The hearing stage of the staged S2S recipe: the S2S model's ear (`models/code_hearing.py`)
learns to transcribe the user's codec codes with CTC, on its own, before the listen-and-speak
stage builds the transformer on it (`S2SModule(hearing_from=...)`).

Data: `TeluguDataModule(task="s2s_listen_speak")` with every row a listen task, so every
voice is heard (the speak tasks that remain have a silent user: an empty transcript, all
blanks). Augmentation: on a share of frames the acoustic codebooks (k >= 1) are replaced by
random codes, so that the ear leans on what a voice it never heard still shares with the
ones it did (the semantic codebook) rather than on one voice's fine detail.
"""

from __future__ import annotations

import lightning as L
import torch

from telugu_s2s.checkpoint import load_pretrained
from telugu_s2s.lit.s2s_module import hearing_cer, user_transcripts, warmup_cosine
from telugu_s2s.models.code_hearing import CodeHearing
from telugu_s2s.models.warm_start import init_code_embedding


def replace_acoustic_codes(codes: torch.Tensor, prob: float, card: int) -> torch.Tensor:
    """codes (B, K, F): on a random `prob` of frames, codebooks 1.. become random codes."""
    if prob <= 0 or codes.shape[1] < 2:
        return codes
    B, K, F = codes.shape
    noisy = torch.rand(B, 1, F, device=codes.device) < prob  # (B, 1, F)
    noisy = noisy.expand(B, K, F).clone()
    noisy[:, 0] = False  # the semantic codebook carries the words: keep it
    return torch.where(noisy, torch.randint_like(codes, card), codes)


class HearingModule(L.LightningModule):
    def __init__(
        self,
        net: CodeHearing,
        lr: float = 2e-3,
        weight_decay: float = 0.01,
        warmup_steps: int = 100,
        code_noise_prob: float = 0.1,
        embedding_from: str | None = None,  # a codec export: its code vectors start the table
    ):
        super().__init__()
        self.save_hyperparameters(logger=False, ignore=["net"])
        self.net = net
        if embedding_from:  # a resumed run's checkpoint overwrites this, as it should
            codec = load_pretrained(embedding_from)
            with torch.no_grad():
                init_code_embedding(net.embedding, codec.code_vectors(net.cfg.num_codebooks))

    def _step(self, batch: dict, prefix: str) -> torch.Tensor:
        codes, frames = batch["user_codes"], batch["num_frames"]  # (B, K, F), (B,)
        if self.training:
            codes = replace_acoustic_codes(
                codes, self.hparams.code_noise_prob, self.net.cfg.codebook_size
            )
        transcripts = user_transcripts(batch["user_text"], frames)
        log_probs = self.net(codes).log_probs  # (B, F * R, V)
        loss = self.net.ctc_loss(log_probs, frames, transcripts)
        bs = frames.shape[0]
        self.log(f"{prefix}/loss", loss, prog_bar=True, batch_size=bs)
        if prefix != "train" and any(len(t) for t in transcripts):
            heard = self.net.decode(log_probs, frames)
            self.log(f"{prefix}/cer", hearing_cer(heard, transcripts), batch_size=bs)
        return loss

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._step(batch, "test")

    def configure_optimizers(self):
        hp = self.hparams
        opt = torch.optim.AdamW(self.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        return warmup_cosine(self, opt)
