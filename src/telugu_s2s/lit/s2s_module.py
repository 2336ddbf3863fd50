"""S2S stage LightningModule: per-stream weighted losses around `S2SModel`, trained on the
frozen codec's tokens (cached by the datamodule) and the speaker bank's embeddings.

The context memory is trained with two passes: a no-grad pass pools every user turn of
the timeline, then the real pass lets frame f retrieve the turns whose user part has
ended before f (a per-frame memory mask), as the server does turn by turn. With
`memory_grad` the first pass keeps its graph, so a recall reply's loss also teaches how a
turn is summarised (the fact must be in the pooled turn), not only how it is retrieved.
`retrieval_weight` also teaches where to look: the NLL of the memory's weight on the turn
that holds a recall reply's fact (the batch's `fact_slot`), without which retrieval stayed
at chance.

Staged training (docs/training_s2s.md): `init_from` starts the network from the previous
stage's export (every tensor of matching name and shape; the rest is logged), and
`hearing_from` puts the hearing stage's ear into it. With an ear, its CTC loss on the
user's words (`hearing_weight`) trains alongside, and validation logs its greedy CER.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import asdict

import lightning as L
import torch
import torch.nn.functional as F

from telugu_s2s.checkpoint import load_pretrained
from telugu_s2s.data.text import BLANK, EOS, PAD, TextTokenizer
from telugu_s2s.data.voices import ASSISTANT_VOICES
from telugu_s2s.evaluation.cer import cer
from telugu_s2s.models.context_memory import ContextMemory
from telugu_s2s.models.copy_head import copy_loss, text_spans, turn_characters
from telugu_s2s.models.s2s import IGNORE_INDEX, S2SModel
from telugu_s2s.models.warm_start import init_code_embedding, load_matching_weights


def load_hearing(net: S2SModel, export_dir: str) -> None:
    """Put the hearing stage's export (a `CodeHearing`) into `net` as its ear."""
    if net.hearing is None:
        raise ValueError("hearing_from needs an S2S model with an ear: set hearing_layers > 0")
    ear = load_pretrained(export_dir)
    if asdict(ear.cfg) != asdict(net.cfg.hearing_config()):
        raise ValueError(
            f"the ear at {export_dir} is {asdict(ear.cfg)}, but the S2S config asks for "
            f"{asdict(net.cfg.hearing_config())}"
        )
    net.hearing.load_state_dict(ear.state_dict())


def turn_memory_mask(
    user_span: torch.Tensor, turn_mask: torch.Tensor, num_frames: int
) -> torch.Tensor:
    """(B, F, N): frame f may retrieve turn n once the user has finished speaking it."""
    frames = torch.arange(num_frames, device=user_span.device)  # (F,)
    ended = frames[None, :, None] >= user_span[:, None, :, 1]  # (B, F, N)
    return ended & turn_mask[:, None, :]


def spoken_only(target: torch.Tensor) -> torch.Tensor:
    """Text targets with BLANK (nothing said in that frame) ignored as well."""
    return target.masked_fill(target == BLANK, IGNORE_INDEX)


def user_transcripts(user_text: torch.Tensor, frames: torch.Tensor) -> list[torch.Tensor]:
    """The characters each item's user says, in order: its frame-aligned user text stream
    (B, F) without BLANK, PAD and EOS, up to its `frames` (B,). The ear's CTC targets."""
    spoken = (user_text != BLANK) & (user_text != PAD) & (user_text != EOS)  # (B, F)
    return [
        row[:n][keep[:n]] for row, keep, n in zip(user_text, spoken, frames.tolist(), strict=True)
    ]


def hearing_cer(hypotheses: list[str], transcripts: list[torch.Tensor]) -> torch.Tensor:
    """Mean CER of the ear's greedy transcripts over the items whose user says something."""
    tokenizer = TextTokenizer()  # `cer` collapses whitespace itself
    scores = [
        cer(hyp, tokenizer.decode(ids.tolist()))
        for hyp, ids in zip(hypotheses, transcripts, strict=True)
        if len(ids)
    ]
    return torch.tensor(sum(scores) / max(len(scores), 1))


def retrieval_losses(
    weights: torch.Tensor, assistant_span: torch.Tensor, fact_slot: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Over the frames of every recall reply (fact_slot (B, N) >= 0; assistant_span (B, N, 2)):
    the memory's weight (weights (B, F, N)) on the turn that holds the fact, and its NLL."""
    picks = []
    for b, n in (fact_slot >= 0).nonzero().tolist():
        a0, a1 = assistant_span[b, n].tolist()
        picks.append(weights[b, a0:a1, fact_slot[b, n]])  # (frames of the reply,)
    on_fact = torch.cat(picks)
    if not on_fact.numel():
        return {}
    return {"retrieval_nll": -on_fact.clamp_min(1e-4).log().mean(), "fact_weight": on_fact.mean()}


def cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean CE over targets != IGNORE_INDEX (logits (..., C), target (...)); 0 when none."""
    if (target != IGNORE_INDEX).sum() == 0:
        return logits.sum() * 0.0
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=IGNORE_INDEX
    )


class S2SModule(L.LightningModule):
    def __init__(
        self,
        net: S2SModel,
        speaker_dir: str,
        lr: float = 1e-3,
        weight_decay: float = 0.05,
        warmup_steps: int = 100,
        text_weight: float = 1.0,
        semantic_weight: float = 1.0,
        acoustic_weight: float = 0.5,
        user_text_weight: float = 0.5,
        hearing_weight: float = 0.0,  # the ear's CTC (models/code_hearing.py), when it has one
        analysis_weight: float = 0.5,
        use_memory: bool = True,
        memory_grad: bool = False,
        retrieval_weight: float = 0.0,  # the memory's weight on a recall reply's fact turn
        copy_weight: float = 0.0,  # the copy head's own loss (models/copy_head.copy_loss)
        init_from: str | None = None,  # the previous stage's export folder
        user_embedding_from: str | None = None,  # a codec export: its code vectors start
        # the user code embeddings (models/warm_start.init_code_embedding)
        hearing_from: str | None = None,  # the hearing stage's export: the model's ear
    ):
        super().__init__()
        self.save_hyperparameters(logger=False, ignore=["net"])
        self.net = net
        self.init_report = load_matching_weights(net, init_from) if init_from else None
        if user_embedding_from:  # a resumed run's checkpoint overwrites this, as it should
            codec = load_pretrained(user_embedding_from)
            init_code_embedding(net.user_embedding, codec.code_vectors(net.cfg.num_codebooks))
        if hearing_from:
            load_hearing(net, hearing_from)
        # Speaker embeddings of the four voices, in ASSISTANT_VOICES order (the data's speaker_id).
        from telugu_s2s.speakers import SpeakerBank

        bank = SpeakerBank.load(speaker_dir)
        self.register_buffer(
            "speakers", torch.stack([bank.embedding(n) for n in ASSISTANT_VOICES]), persistent=False
        )
        net.cfg.speaker_fingerprint = bank.encoder_fingerprint or ""

    def on_fit_start(self) -> None:
        train = self.trainer.datamodule.datasets["train"]
        silence = getattr(getattr(train, "dataset", train), "silence", None)
        if silence is None:
            raise ValueError(
                "the s2s datamodule needs `codec_dir`: the model trains on codec tokens"
            )
        self.net.set_silence_codes(silence)
        codes = getattr(getattr(train, "dataset", train), "codes", None)  # SplitTokens
        if codes is not None:  # the export records whose codes it learned (serving checks)
            self.net.cfg.codec_fingerprint = codes.cache.codec.codes_fingerprint()

    def _forward(self, batch: dict):
        net, frames = self.net, batch["user_codes"].shape[-1]
        speaker = self.speakers[batch["speaker_id"]]  # (B, S)
        args = (
            batch["user_codes"],
            batch["assistant_codes"],
            batch["assistant_text"],
            speaker,
            batch["style_id"],
        )
        spans = (
            ContextMemory.span_mask(batch["user_span"], frames) & batch["turn_mask"][..., None]
        )  # (B, N, F)
        memory = memory_mask = None
        # The ear hears the same codes in both passes: run it once (its GRU is the slow part).
        heard = net.hearing(batch["user_codes"]) if net.hearing is not None else None
        if self.hparams.use_memory:
            grad = contextlib.nullcontext() if self.hparams.memory_grad else torch.no_grad()
            with grad:
                memory = net.turn_embedding(net(*args, heard=heard).hidden, spans)  # (B, N, D)
            memory_mask = turn_memory_mask(
                batch["user_span"], batch["turn_mask"], frames
            )  # (B, F, N)
        chars = None
        if memory is not None and net.cfg.copy_memory:  # the turns' words, for the copy head
            said = text_spans(batch["user_span"], batch["turn_mask"], frames)  # (B, N, 2)
            chars = turn_characters(batch["user_text"], said, net.cfg.copy_memory_chars)
        out = net(*args, memory=memory, memory_mask=memory_mask, heard=heard, memory_chars=chars)
        return out, spans

    def _losses(self, batch: dict) -> dict[str, torch.Tensor]:
        hp, net = self.hparams, self.net
        out, spans = self._forward(batch)
        tgt = net.targets(
            batch["assistant_codes"],
            batch["assistant_text"],
            batch["user_text"],
            batch["num_frames"],
        )

        text = cross_entropy(out.text_logits, tgt.text)
        semantic = cross_entropy(out.code_logits[:, 0], tgt.codes[:, 0])
        acoustic = cross_entropy(out.code_logits[:, 1:], tgt.codes[:, 1:])
        user_text = cross_entropy(out.user_text_logits, tgt.user_text)
        analysis = self._analysis_losses(out.hidden, spans, batch)
        hearing = {}
        if out.hearing_log_probs is not None:
            transcripts = user_transcripts(batch["user_text"], batch["num_frames"])
            hearing["hearing_ctc"] = net.hearing.ctc_loss(
                out.hearing_log_probs, batch["num_frames"], transcripts
            )
            if not self.training and any(len(t) for t in transcripts):  # else nothing to hear
                hearing["hearing_cer"] = hearing_cer(
                    net.hearing.decode(out.hearing_log_probs, batch["num_frames"]), transcripts
                )
        retrieval, fact_slot = {}, batch.get("fact_slot")  # (B, N); none in hand-made batches
        if (
            out.memory_weights is not None
            and fact_slot is not None
            and bool((fact_slot >= 0).any())
        ):
            retrieval = retrieval_losses(out.memory_weights, batch["assistant_span"], fact_slot)
        copying = {}
        if out.copy_probs is not None:  # on the reply's characters, as reply_ce
            copying["copy_nll"] = copy_loss(out.copy_probs, spoken_only(tgt.text))
        loss = (
            hp.text_weight * text + hp.semantic_weight * semantic + hp.acoustic_weight * acoustic
            + hp.user_text_weight * user_text + hp.analysis_weight * analysis.pop("analysis")
            + hp.hearing_weight * hearing.get("hearing_ctc", 0.0)
            + hp.retrieval_weight * retrieval.get("retrieval_nll", 0.0)
            + hp.copy_weight * copying.get("copy_nll", 0.0)
        )  # fmt: skip
        return {**hearing, **retrieval, **copying,
            "loss": loss, "text_ce": text, "semantic_ce": semantic, "acoustic_ce": acoustic,
            "audio_ce": semantic + acoustic, "user_text_ce": user_text, **analysis,
            # The same CEs on characters only (BLANK targets, i.e. silence, left out).
            "reply_ce": cross_entropy(out.text_logits, spoken_only(tgt.text)),
            "transcript_ce": cross_entropy(out.user_text_logits, spoken_only(tgt.user_text)),
        }  # fmt: skip

    def _analysis_losses(
        self, hidden: torch.Tensor, spans: torch.Tensor, batch: dict
    ) -> dict[str, torch.Tensor]:
        """Sentiment, topic and emotion of each user turn (spans (B, N, F)); "analysis" is
        their sum. A batch without user turns (e.g. only speaking tasks) scores 0."""
        analysis = self.net.analyze_turn(self.net.turn_embedding(hidden, spans))  # (B, N)
        valid = batch["turn_mask"]  # (B, N)
        if not valid.any():
            zero = hidden.sum() * 0.0
            return {"analysis": zero, "sentiment_mse": zero, "topic_ce": zero, "emotion_ce": zero}
        sentiment = F.mse_loss(analysis.sentiment[valid], batch["sentiment"][valid])
        emotion = F.cross_entropy(analysis.emotion_logits[valid], batch["emotion"][valid])
        # The topic is the dialog's label: an opening greeting carries none of it (noise).
        topical = valid & (batch["turn_index"] > 0)  # (B, N)
        logits, topics = analysis.topic_logits[topical], batch["topic"][topical]
        topic, topic_acc = hidden.sum() * 0.0, {}
        if topical.any():
            topic = F.cross_entropy(logits, topics)
            topic_acc = {"topic_acc": (logits.argmax(-1) == topics).float().mean()}
        return {
            "analysis": sentiment + topic + emotion, "sentiment_mse": sentiment,
            "topic_ce": topic, "emotion_ce": emotion, **topic_acc,
            "emotion_acc": (analysis.emotion_logits[valid].argmax(-1) == batch["emotion"][valid]).float().mean(),
            "sentiment_mae": (analysis.sentiment[valid] - batch["sentiment"][valid]).abs().mean(),
        }  # fmt: skip

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        losses = self._losses(batch)
        bs = batch["num_frames"].shape[0]
        loss = losses.pop("loss")
        self.log("train/loss", loss, prog_bar=True, batch_size=bs)
        self.log_dict({f"train/{k}": v for k, v in losses.items()}, batch_size=bs)
        return loss

    def _eval_step(self, prefix: str, batch: dict) -> None:
        losses = self._losses(batch)
        bs = batch["num_frames"].shape[0]
        self.log_dict(
            {f"{prefix}/{k}": v for k, v in losses.items()}, batch_size=bs, sync_dist=True
        )

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step("val", batch)

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step("test", batch)

    def configure_optimizers(self):
        hp = self.hparams
        params = list(self.named_parameters())  # the network and any stage scaffolding
        decay = [p for n, p in params if p.dim() >= 2 and "embedding" not in n]
        other = [p for n, p in params if not (p.dim() >= 2 and "embedding" not in n)]
        opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": hp.weight_decay}, {"params": other, "weight_decay": 0.0}],
            lr=hp.lr, betas=(0.9, 0.95),
        )  # fmt: skip
        return warmup_cosine(self, opt)


def warmup_cosine(module: L.LightningModule, opt: torch.optim.Optimizer) -> dict:
    """A linear warmup of `hparams.warmup_steps` (at most a tenth of the run), then a cosine
    down to a tenth of `hparams.lr` at the run's last step. A run bounded by time alone
    (`trainer.max_time`, `max_steps=-1`: a GPU lease) follows the cosine by elapsed time."""
    hp, trainer = module.hparams, module._trainer
    timer = _time_budget(trainer)
    total = max(1, int(trainer.estimated_stepping_batches)) if trainer else 1000
    warmup = min(hp.warmup_steps, max(1, total // 10))
    if timer is not None:

        def factor(step: int) -> float:
            if step < warmup:
                return 0.01 + 0.99 * step / warmup
            elapsed, left = timer.time_elapsed("train"), timer.time_remaining("train") or 0.0
            done = min(1.0, elapsed / max(elapsed + left, 1e-9))
            return 0.1 + 0.45 * (1.0 + math.cos(math.pi * done))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    else:
        sched = torch.optim.lr_scheduler.SequentialLR(
            opt,
            [torch.optim.lr_scheduler.LinearLR(opt, 0.01, 1.0, warmup),
             torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, total - warmup), eta_min=hp.lr * 0.1)],
            milestones=[warmup],
        )  # fmt: skip
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def _time_budget(trainer: L.Trainer | None):
    """The trainer's Timer when time alone bounds the run, else None."""
    if trainer is None or trainer.max_steps != -1:
        return None
    from lightning.pytorch.callbacks import Timer

    timers = [c for c in trainer.callbacks if isinstance(c, Timer)]
    return timers[0] if timers and timers[0].time_remaining("train") is not None else None
