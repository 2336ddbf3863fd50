"""The models an S2S evaluation runs and the batched, scripted sessions it steps them through.

`EvalModels` loads the three exported stages and checks that they belong together;
`run_sessions` steps many `SessionScript`s as one batch of the streaming generator, each as
if it ran alone (its own seed, memory and forced-silent steps). `evaluation.s2s` builds the
scripts from held-out dialogs and scores the traces.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from telugu_s2s.checkpoint import load_pretrained
from telugu_s2s.data.text import ctc_transcript
from telugu_s2s.models.s2s import S2SModel
from telugu_s2s.models.s2s_generation import S2SGenerator
from telugu_s2s.modules.streaming import module_device
from telugu_s2s.speakers import SpeakerBank, encoder_fingerprint


class FirstCodebooks(nn.Module):
    """The codec restricted to its first `num_codebooks` codebooks (residual VQ: a prefix
    of the codebooks is a coarser code of the same audio)."""

    def __init__(self, codec: nn.Module, num_codebooks: int):
        super().__init__()
        self.codec, self.num_codebooks = codec, num_codebooks
        self.cardinality, self.sample_rate = codec.cardinality, codec.sample_rate
        self.frame_size = codec.frame_size

    def encode(self, audio: Tensor) -> Tensor:  # (B, 1, T) -> (B, K, F)
        return self.codec.encode(audio, num_codebooks=self.num_codebooks)

    def decode(self, codes: Tensor) -> Tensor:  # (B, K, F) -> (B, 1, T)
        return self.codec.decode(codes)


@dataclass
class EvalModels:
    """The exported models the evaluation needs; checked for compatibility on creation."""

    s2s: S2SModel
    codec: nn.Module  # an AudioTokenizer: encode, decode, sample_rate, frame_size
    speaker_encoder: nn.Module
    bank: SpeakerBank
    judge: object | None = None  # telugu_s2s.asr.Judge: transcribes the generated audio
    topic_model: object | None = None  # telugu_s2s.text_topics: the server's session topic
    reply_planner: object | None = None  # telugu_s2s.reply_planner: what the replies say

    def __post_init__(self) -> None:
        cfg, codec = self.s2s.cfg, self.codec
        if codec.num_codebooks < cfg.num_codebooks or codec.cardinality != cfg.codebook_size:
            raise ValueError(
                f"codec has {codec.num_codebooks} x {codec.cardinality} codes, the S2S model "
                f"{cfg.num_codebooks} x {cfg.codebook_size}: not the codec it was trained on"
            )
        self.s2s.check_codec(codec)
        if codec.num_codebooks > cfg.num_codebooks:  # the model speaks the first K codebooks
            self.codec = FirstCodebooks(codec, cfg.num_codebooks)
        self.s2s.check_speaker_bank(self.bank)
        if self.bank.encoder_fingerprint not in (None, encoder_fingerprint(self.speaker_encoder)):
            raise ValueError("the speaker bank was built with another speaker encoder")

    @classmethod
    def load(cls, s2s_dir, codec_dir, speaker_dir, device: str = "cpu", asr_dir=None,
             text_topics_dir=None, reply_planner_dir=None) -> EvalModels:  # fmt: skip
        """The exports; with `asr_dir`, the recognizer that judges the generated audio; with
        `text_topics_dir`, the text topic model that names the session's topic; with
        `reply_planner_dir`, the planner whose replies the model speaks."""
        s2s, codec, encoder = (
            load_pretrained(d).to(device) for d in (s2s_dir, codec_dir, speaker_dir)
        )
        judge = None
        if asr_dir is not None:
            from telugu_s2s.asr import Judge

            judge = Judge.load(asr_dir, device)
        topics = None
        if text_topics_dir is not None:
            from telugu_s2s.text_topics import NaiveBayesTopics

            topics = NaiveBayesTopics.load(text_topics_dir)
        planner = None
        if reply_planner_dir is not None:
            from telugu_s2s.reply_planner import ReplyPlanner

            planner = ReplyPlanner.load(reply_planner_dir)
        return cls(s2s, codec, encoder, SpeakerBank.load(speaker_dir), judge, topics, planner)


def encode_clip(codec: nn.Module, audio: np.ndarray) -> Tensor:
    """Mono audio (T,) -> codes (K, ceil(T / frame)), encoded alone as the token cache does."""
    x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None, None]  # (1, 1, T)
    return codec.encode(x.to(module_device(codec)))[0].long().cpu()  # (K, F)


@dataclass
class SessionScript:
    """One scripted session: what the user says, and when the assistant must keep quiet."""

    user_codes: Tensor  # (K, T)
    silent: Tensor  # (T,) bool: the assistant is forced silent at these steps
    speaker: Tensor | None = None  # (S,) bank embedding; None: the null speaker
    style_id: int = 0
    turn_spans: list[tuple[int, int]] = field(default_factory=list)  # user [start, end) steps
    use_memory: bool = True  # append each pooled user turn when it ends
    seed: int | None = None  # the slot's sampling seed
    # Each turn's user text for a copy head's memory (the server's final transcript); None:
    # what the ear heard in the turn.
    turn_texts: list[str] | None = None
    # Each turn's planned reply (`S2SGenerator.set_plan`, from the turn's end); None: the
    # model's own words.
    turn_plans: list[str] | None = None


@dataclass
class SessionTrace:
    text: Tensor  # (T,) assistant text token of each step
    # (T, R) what the model heard at each step: the transcript head's token of frame
    # t - user_text_delay (R = 1), or the ear's R greedy CTC ids (`S2SModel.hearing`).
    user_text: Tensor
    codes: Tensor  # (K, T) assistant codes out at step t (frame t - acoustic_delay)
    pooled: list[Tensor]  # (D,) mean hidden state over each turn span


@torch.inference_mode()
def run_sessions(
    model: S2SModel,
    scripts: list[SessionScript],
    silence: Tensor,
    temperature: float = 0.0,
    top_k: int = 0,
    speaker_guidance: float = 1.0,
) -> list[SessionTrace]:
    """Step all scripts as one batch (greedy by default); shorter ones are padded with
    silence (K,). Each script samples from its own seed, as if it ran alone. A
    `speaker_guidance` other than 1 runs the generator's null-speaker twins (2x compute)."""
    B, T = len(scripts), max(s.user_codes.shape[1] for s in scripts)
    user = silence.long().cpu()[None, :, None].repeat(B, 1, T)  # (B, K, T)
    silent = torch.ones(B, T, dtype=torch.bool)  # (B, T)
    ends: dict[int, list[tuple[int, int]]] = {}  # step -> (slot, span) of turns ending there
    for b, script in enumerate(scripts):
        n = script.user_codes.shape[1]
        user[b, :, :n], silent[b, :n] = script.user_codes, script.silent
        for span, (_, end) in enumerate(script.turn_spans):
            ends.setdefault(end, []).append((b, span))
    K, D = user.shape[1], model.cfg.d_model
    R = model.cfg.hearing_sub_frames if model.hearing is not None else 1
    text, user_text = torch.zeros(B, T, dtype=torch.long), torch.zeros(B, T, R, dtype=torch.long)
    codes = torch.zeros(B, K, T, dtype=torch.long)  # (B, K, T)
    hidden = torch.zeros(B, T, D)  # (B, T, D)
    pooled: list[list[Tensor]] = [[] for _ in scripts]
    with S2SGenerator(model, B, speaker_guidance=speaker_guidance != 1.0) as gen:
        for b, script in enumerate(scripts):
            gen.join(b, script.speaker, script.style_id, temperature, top_k, seed=script.seed,
                     guidance=speaker_guidance)  # fmt: skip
        for t in range(T):
            if t in ends:
                turns, which = torch.zeros(B, D), torch.zeros(B, dtype=torch.bool)  # (B, D), (B,)
                words = [""] * B  # what the ear heard in each turn, for a copy head's memory
                for b, span in ends[t]:
                    if scripts[b].turn_plans is not None:
                        gen.set_plan(b, scripts[b].turn_plans[span])
                    start, end = scripts[b].turn_spans[span]
                    turns[b] = hidden[b, start:end].mean(dim=0)
                    pooled[b].append(turns[b].clone())
                    which[b] = scripts[b].use_memory
                    if gen.copies_memory and scripts[b].turn_texts is not None:
                        words[b] = scripts[b].turn_texts[span]
                    elif gen.copies_memory:
                        words[b] = ctc_transcript(user_text[b, start:end].flatten().tolist())
                gen.append_turn(turns.to(gen.device, gen.memory.dtype), which, words)
            gen.force_silence(~silent[:, t], silent=False)
            gen.force_silence(silent[:, t], silent=True)
            out = gen.step(user[:, :, t])
            heard = out.user_text_token[:, None] if out.hearing_ids is None else out.hearing_ids
            text[:, t], user_text[:, t] = out.text_token.cpu(), heard.cpu()
            codes[:, :, t], hidden[:, t] = out.assistant_codes.cpu(), out.hidden.float().cpu()
    for b, span in ends.get(T, []):  # turns that end with the script
        start, end = scripts[b].turn_spans[span]
        pooled[b].append(hidden[b, start:end].mean(dim=0))
    return [SessionTrace(text[b], user_text[b], codes[b], pooled[b]) for b in range(B)]
