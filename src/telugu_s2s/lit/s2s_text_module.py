"""The text stage of the staged S2S recipe: `S2SModel`'s temporal transformer learns the
dialog text with no audio (models/s2s_text.py), from `TeluguDataModule(task="s2s_text")`.

Losses: the assistant text CE over every frame (BLANK where the assistant is silent, so
the stage also learns when to start and stop a reply), and the user-turn analysis heads
(sentiment, topic, emotion) on the pooled user frames, and (`user_lm_weight`) the user's
next character, so that those frames carry what the user said. `reply_ce` is the text CE
on the reply's characters alone (BLANK targets left out): the figure that says how well the model
knows what to say. The export is a plain `S2SModel` that `S2SModule(init_from=...)` starts
the listen-and-speak stage from; `UserTextInput` and the user LM head stay behind (they
are in the Lightning checkpoint, for resuming).
"""

from __future__ import annotations

import torch

from telugu_s2s.data.text import PAD
from telugu_s2s.lit.s2s_module import S2SModule, cross_entropy, spoken_only
from telugu_s2s.models.context_memory import ContextMemory
from telugu_s2s.models.copy_head import copy_loss, spread_frames
from telugu_s2s.models.s2s import IGNORE_INDEX, S2SModel
from telugu_s2s.models.s2s_text import UserTextInput, text_hidden, text_inputs


class S2STextModule(S2SModule):
    def __init__(
        self,
        net: S2SModel,
        speaker_dir: str,
        lr: float = 1e-3,
        weight_decay: float = 0.05,
        warmup_steps: int = 100,
        text_weight: float = 1.0,
        analysis_weight: float = 0.5,
        init_from: str | None = None,
        user_lm_weight: float = 0.0,
        init_checkpoint: str | None = None,
        copy_weight: float = 0.0,  # the copy head's own loss (models/copy_head.copy_loss)
    ):
        super().__init__(
            net, speaker_dir, lr=lr, weight_decay=weight_decay, warmup_steps=warmup_steps,
            text_weight=text_weight, analysis_weight=analysis_weight, use_memory=False,
            init_from=init_from, copy_weight=copy_weight,
        )  # fmt: skip
        self.user_input = UserTextInput(net.cfg.text_vocab_size, net.cfg.d_model)
        # Scaffolding too: the user's next character. The user frames' final hidden states
        # otherwise only predict the assistant's silence, so the turn that the analysis heads
        # and the memory pool carried almost nothing of what was said (a linear probe read
        # the topic from it at 18%, chance 10%).
        self.user_lm_head = (
            torch.nn.Linear(net.cfg.d_model, net.cfg.text_vocab_size) if user_lm_weight else None
        )
        if init_checkpoint:  # a text-stage run's checkpoint, scaffolding included
            state = torch.load(init_checkpoint, map_location="cpu", weights_only=False)
            # Session 9's copy head sat beside the network; it is the network's now.
            tensors = {
                ("net." + k if k.startswith("copy_head.") else k): v
                for k, v in state["state_dict"].items()
            }
            report = self.load_state_dict(tensors, strict=False)
            if report.unexpected_keys:
                raise ValueError(f"{init_checkpoint}: unknown tensors {report.unexpected_keys}")

    def on_fit_start(self) -> None:
        """No codec tokens in this stage: the silence codes come with the audio stages."""

    def _losses(self, batch: dict) -> dict[str, torch.Tensor]:
        net, hp = self.net, self.hparams
        text = batch["assistant_text"]  # (B, F)
        frames = torch.arange(text.shape[1], device=text.device)  # (F,)
        prev = text_inputs(net, text)  # (B, F)
        hidden = text_hidden(
            net, self.user_input, batch["user_text"], prev, self.speakers[batch["speaker_id"]],
            batch["style_id"],
        )  # fmt: skip
        logits = net.text_head(hidden)  # (B, F, V)
        copy = None
        if net.copy_head is not None:  # log-probabilities, which the CE takes as logits
            source = spread_frames(batch["user_text"], net.cfg.hearing_sub_frames)  # (B, F * R)
            logits, copy = net.copy_head(logits, hidden, prev, source, return_copy=True)
        ignored = (text == PAD) | (frames[None] >= batch["num_frames"][:, None])  # (B, F)
        target = text.masked_fill(ignored, IGNORE_INDEX)
        text_ce = cross_entropy(logits, target)
        reply_ce = cross_entropy(logits, spoken_only(target))
        spans = (
            ContextMemory.span_mask(batch["user_span"], text.shape[1])
            & batch["turn_mask"][..., None]
        )  # (B, N, F)
        analysis = self._analysis_losses(hidden, spans, batch)
        loss = hp.text_weight * text_ce + hp.analysis_weight * analysis.pop("analysis")
        if self.user_lm_head is not None:  # frame t (user token t in) predicts user token t + 1
            user = batch["user_text"]  # (B, F)
            user = user.masked_fill(ignored | (user == PAD), IGNORE_INDEX)[:, 1:]  # (B, F - 1)
            user_lm = cross_entropy(self.user_lm_head(hidden[:, :-1]), spoken_only(user))
            loss = loss + hp.user_lm_weight * user_lm
            analysis["user_lm_ce"] = user_lm
        if copy is not None:
            analysis["copy_nll"] = copy_loss(copy, spoken_only(target))
            loss = loss + hp.copy_weight * analysis["copy_nll"]
        return {"loss": loss, "text_ce": text_ce, "reply_ce": reply_ce, **analysis}
