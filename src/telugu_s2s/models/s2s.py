"""The full-duplex S2S model (Moshi-like, CPU-sized): a temporal transformer over the user
and assistant streams, a depth transformer for the assistant codebooks within a frame, an
inner-monologue text stream, a delayed user-transcript stream, speaker and style
conditioning, and a context memory of past turns.

Alignment (F frames at 12.5 Hz, K codebooks, d = `acoustic_delay`, u = `user_text_delay`):
- Assistant codes use a delayed layout (`delay_codes`): codebook 0 stays in place and
  codebooks 1..K-1 move d frames later, `delayed[:, k, t] = codes[:, k, t - d]` for k >= 1
  (the CODE_START token `codebook_size` while t < d). The semantic codebook leads.
- Temporal input at frame t: the embeddings of the user's K codes of frame t, plus those of
  the assistant's text token and K delayed codes at t - 1 (START tokens at t = 0), plus the
  speaker/style vector (docs/conditioning.md), then the context memory's gated residual.
- From the temporal output h_t: `text_logits[:, t]` predict `assistant_text[:, t]`;
  `user_text_logits[:, t]` predict `user_text[:, t - u]` (the user's words, u frames late,
  so the audio of a character has arrived); the depth transformer predicts
  `code_logits[:, k, t]` -> `delayed[:, k, t]`, its input k being `proj_k(h_t)` plus the
  embedding of `assistant_text[:, t]` (k = 0) or `delayed[:, k - 1, t]` (k >= 1).
- So the text and codebook 0 of frame t come out at step t, and frame t - d is complete
  at step t. The last d frames of a sequence have no acoustic targets (pad by d frames to
  train them). `S2SModel.targets` lays every target out this way, IGNORE_INDEX elsewhere.

Streaming: inside `model.streaming(B)`, `model.step(...)` generates one frame per call
for B independent sessions; `models.s2s_generation.S2SGenerator` wraps it for a server
(slots, sampling).

This module holds the network; its config is in `models.s2s_config`, and the layout
helpers (`delay_codes`, `shift_right`, IGNORE_INDEX), the pass outputs and the streaming
state are in `models.s2s_streams`, all re-exported here (older exports and the hydra
configs name `telugu_s2s.models.s2s.S2SConfig`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from telugu_s2s.data.text import PAD
from telugu_s2s.models.code_hearing import CodeHearing, HearingOutput
from telugu_s2s.models.context_memory import ContextMemory, TurnAnalysis
from telugu_s2s.models.copy_head import CopyHead, CopyMemory
from telugu_s2s.models.s2s_config import S2SConfig as S2SConfig  # re-exported
from telugu_s2s.models.s2s_streams import (
    IGNORE_INDEX,
    ForcedFrame,
    S2SOutput,
    S2SState,
    S2SStepOutput,
    S2STargets,
    Sampler,
    delay_codes,
    greedy,
    shift_right,
)
from telugu_s2s.models.s2s_streams import undelay_codes as undelay_codes  # re-exported
from telugu_s2s.modules.streaming import StreamingModule, module_device
from telugu_s2s.modules.transformer import StreamingTransformer


class S2SModel(StreamingModule[S2SState]):
    """The S2S network. Training (teacher forcing, all targets IGNORE_INDEX-padded):

        out = model(user_codes, assistant_codes, assistant_text, speaker_emb, style_id)
        tgt = model.targets(assistant_codes, assistant_text, user_text, lengths)
        text = F.cross_entropy(out.text_logits.transpose(1, 2), tgt.text)
        codes = F.cross_entropy(out.code_logits.permute(0, 3, 1, 2), tgt.codes)
        user = F.cross_entropy(out.user_text_logits.transpose(1, 2), tgt.user_text)
        span = ContextMemory.span_mask(batch["user_span"], num_frames)  # (B, N, F)
        analysis = model.analyze_turn(model.turn_embedding(out.hidden, span))  # per turn

    `memory` (B, M, D) holds `turn_embedding`s of earlier turns (e.g. from a no-grad pass,
    or turns before the timeline's window); without it the model runs exactly as if the
    memory were empty. Generation: `step` inside `streaming(B)`, or `s2s_generation.S2SGenerator`.
    """

    config_class = S2SConfig

    def __init__(self, cfg: S2SConfig) -> None:
        super().__init__()
        self.cfg = cfg
        K, card, V, D, Dd = (
            cfg.num_codebooks,
            cfg.codebook_size,
            cfg.text_vocab_size,
            cfg.d_model,
            cfg.depth_d_model,
        )
        self.text_start, self.code_start = V, card  # extra embedding rows: "nothing yet"
        # Temporal input: one table per stream, codebook k at rows [k * size, (k + 1) * size).
        self.user_embedding = nn.Embedding(K * card, D)
        self.assistant_embedding = nn.Embedding(K * (card + 1), D)
        self.text_embedding = nn.Embedding(V + 1, D)
        self.register_buffer("user_offsets", torch.arange(K) * card, persistent=False)  # (K,)
        self.register_buffer("assistant_offsets", torch.arange(K) * (card + 1), persistent=False)
        self.speaker_proj = nn.Linear(cfg.speaker_dim, D)
        self.null_speaker = nn.Parameter(F.normalize(torch.randn(cfg.speaker_dim), dim=0))
        self.style_embedding = nn.Embedding(len(cfg.styles), D)
        self.memory = ContextMemory(cfg.memory_config())
        self.temporal = StreamingTransformer(cfg.temporal_config())
        self.text_head = nn.Linear(D, V)
        self.user_text_head = nn.Linear(D, V)
        self.hearing = CodeHearing(cfg.hearing_config()) if cfg.hearing_layers else None
        self.hearing_proj = (
            nn.Linear(cfg.hearing_config().feature_dim, D) if cfg.hearing_layers else None
        )
        # Depth: input k = proj_k(h_t) + embedding of the previous token within the frame.
        self.depth_in = nn.Linear(D, K * Dd)
        self.depth_text_embedding = nn.Embedding(V, Dd)
        self.depth_code_embedding = nn.Embedding(max(K - 1, 1) * (card + 1), Dd)
        self.depth = StreamingTransformer(cfg.depth_config())
        self.code_heads = nn.Parameter(torch.randn(K, Dd, card) * 0.02)  # (K, Dd, card)
        # The codes the codec gives for silence (set from the codec); 0 until then.
        self.register_buffer("silence_codes", torch.zeros(K, dtype=torch.long))  # (K,)
        for module in self.modules():
            if isinstance(module, nn.Linear | nn.Embedding):
                nn.init.normal_(module.weight, std=0.02)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
        # After the shared init: the head starts its gate mostly closed.
        self.copy_head = CopyHead(cfg.copy_head_config()) if cfg.copy_head else None

    # Shared pieces of the offline and streaming passes.

    def condition(
        self, speaker_emb: Tensor | None, style_id: Tensor | None, batch_size: int
    ) -> Tensor:
        """Unit-norm speaker (B, S) (None: the null speaker) and style ids (B,) -> (B, D)."""
        device = self.null_speaker.device
        speaker = self.null_speaker.expand(batch_size, -1) if speaker_emb is None else speaker_emb
        if self.training and self.cfg.speaker_dropout > 0:
            drop = torch.rand(batch_size, 1, device=device) < self.cfg.speaker_dropout  # (B, 1)
            speaker = torch.where(drop, self.null_speaker, speaker)
        style = (
            torch.zeros(batch_size, dtype=torch.long, device=device)
            if style_id is None
            else style_id
        )
        return self.speaker_proj(speaker.to(self.null_speaker.dtype)) + self.style_embedding(style)

    def _temporal_input(
        self, user_codes: Tensor, prev_text: Tensor, prev_codes: Tensor,
        heard: HearingOutput | None = None,
    ) -> tuple[Tensor, Tensor | None]:  # fmt: skip
        """user codes (B, K, T), previous text (B, T) and delayed codes (B, K, T) -> (B, T, D),
        and the ear's CTC log-probs (B, T * R, V) (None without an ear). `heard`: the ear's
        output on these user codes, when the caller has it already."""
        user = self.user_embedding(user_codes + self.user_offsets[:, None]).sum(dim=1)  # (B, T, D)
        assistant = self.assistant_embedding(prev_codes + self.assistant_offsets[:, None]).sum(
            dim=1
        )
        x = user + assistant + self.text_embedding(prev_text)  # (B, T, D)
        if self.hearing is None:
            return x, None
        if heard is None:
            heard = self.hearing(user_codes)  # streams inside `streaming()`, as the transformer
        return x + self.hearing_proj(heard.features), heard.log_probs

    def _contextualise(
        self, x: Tensor, cond: Tensor, memory: Tensor | None, memory_mask: Tensor | None
    ):
        x = x + cond[:, None]  # (B, T, D): the same vector on every frame
        if memory is None:
            return self.temporal(x), None
        x, weights = self.memory(x, memory, memory_mask)  # (B, T, D), (B, T, M)
        return self.temporal(x), weights

    def _text_logits(
        self, h: Tensor, prev_text: Tensor, hearing_log_probs: Tensor | None,
        memory: Tensor | None = None, memory_weights: Tensor | None = None,
        memory_chars: Tensor | None = None, memory_char_keys: Tensor | None = None,
        return_copy: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor | None]:  # fmt: skip
        """The text head's logits (B, T, V), or with the copy head its log-probabilities, of
        states h (B, T, D) given the previous text (B, T) and the ear's output (B, T * R, V);
        with `copy_memory`, also the memory (B, M, D), its retrieval weights (B, T, M) and its
        turns' text (B, M, L) (`memory_char_keys`: their keys, when the caller keeps them)."""
        logits = self.text_head(h)
        if self.copy_head is None:
            return (logits, None) if return_copy else logits
        if hearing_log_probs is None:
            raise ValueError("the copy head copies what the ear heard: set hearing_layers > 0")
        turns = None
        if self.cfg.copy_memory and memory is not None and memory_chars is not None:
            keys = memory_char_keys
            if keys is None:
                keys = self.copy_head.memory_keys(memory, memory_chars)
            turns = CopyMemory(keys, memory_chars.flatten(1), memory_weights)
        heard = self.hearing.emissions(hearing_log_probs)
        return self.copy_head(logits, h, prev_text, heard, turns, return_copy)

    def _depth_code_input(self, code: Tensor, k: int) -> Tensor:
        """Delayed code of codebook k (..., ) -> the depth input embedding of codebook k + 1."""
        return self.depth_code_embedding(code + k * (self.cfg.codebook_size + 1))

    # Training: teacher forcing over whole sequences.

    def forward(
        self,
        user_codes: Tensor,
        assistant_codes: Tensor,
        assistant_text: Tensor,
        speaker_emb: Tensor | None = None,
        style_id: Tensor | None = None,
        memory: Tensor | None = None,
        memory_mask: Tensor | None = None,
        heard: HearingOutput | None = None,
        memory_chars: Tensor | None = None,
    ) -> S2SOutput:
        """Teacher-forced logits for every stream (alignment: the module docstring).

        user_codes, assistant_codes (B, K, F) undelayed; assistant_text (B, F) char ids;
        speaker_emb (B, 192) unit-norm (None: null speaker); style_id (B,);
        memory (B, M, D) pooled past turns with memory_mask (B, M) or per frame (B, F, M);
        heard: `self.hearing(user_codes)` when the caller already ran the ear on them;
        memory_chars (B, M, L): the memory turns' text, for the copy head (`copy_memory`).
        """
        if self.is_streaming:
            raise RuntimeError(
                "forward is the offline pass: call it outside `streaming()`, or use `step`"
            )
        cfg = self.cfg
        B, K, _ = user_codes.shape
        delayed = delay_codes(assistant_codes, cfg.acoustic_delay, self.code_start)  # (B, K, F)
        prev_text = shift_right(assistant_text, self.text_start)  # (B, F)
        x, hearing_log_probs = self._temporal_input(
            user_codes, prev_text, shift_right(delayed, self.code_start), heard
        )  # (B, F, D), (B, F * R, V) | None
        h, weights = self._contextualise(
            x, self.condition(speaker_emb, style_id, B), memory, memory_mask
        )
        previous = torch.cat(
            [self.depth_text_embedding(assistant_text)[:, None]]  # (B, 1, F, Dd)
            + [self._depth_code_input(delayed[:, k], k)[:, None] for k in range(K - 1)],
            dim=1,
        )  # (B, K, F, Dd): what precedes codebook k within frame t
        z = rearrange(self.depth_in(h), "b f (k d) -> (b f) k d", k=K)
        z = z + rearrange(previous, "b k f d -> (b f) k d")  # (B*F, K, Dd)
        depth_out = self.depth(z)  # (B*F, K, Dd)
        code_logits = torch.einsum("nkd,kdc->nkc", depth_out, self.code_heads)  # (B*F, K, card)
        text_logits, copy_probs = self._text_logits(
            h, prev_text, hearing_log_probs, memory, weights, memory_chars, return_copy=True
        )
        return S2SOutput(
            text_logits=text_logits,
            code_logits=rearrange(code_logits, "(b f) k c -> b k f c", b=B),
            user_text_logits=self.user_text_head(h),
            hidden=h,
            memory_weights=weights,
            hearing_log_probs=hearing_log_probs,
            copy_probs=copy_probs,
        )

    def targets(
        self,
        assistant_codes: Tensor,
        assistant_text: Tensor,
        user_text: Tensor,
        lengths: Tensor | None = None,
    ) -> S2STargets:
        """The targets of `forward`'s logits: PAD, START and frames >= lengths (B,) are ignored."""
        cfg = self.cfg
        frames = torch.arange(assistant_text.shape[-1], device=assistant_text.device)  # (F,)
        valid = (
            frames < lengths[:, None]
            if lengths is not None
            else torch.ones_like(assistant_text, dtype=torch.bool)
        )
        codes = delay_codes(assistant_codes, cfg.acoustic_delay, IGNORE_INDEX)  # (B, K, F)
        user = F.pad(
            user_text[:, : user_text.shape[1] - cfg.user_text_delay],
            (cfg.user_text_delay, 0),
            value=PAD,
        )
        return S2STargets(
            text=assistant_text.masked_fill(~valid | (assistant_text == PAD), IGNORE_INDEX),
            codes=codes.masked_fill(~valid[:, None], IGNORE_INDEX),
            user_text=user.masked_fill(~valid | (user == PAD), IGNORE_INDEX),
        )

    # Turns: memory entries and analysis.

    def turn_embedding(self, hidden: Tensor, span_mask: Tensor) -> Tensor:
        """hidden (B, F, D), span_mask (B, F) or (B, N, F) -> pooled turns (B, [N,] D)."""
        return self.memory.pool_turn(hidden, span_mask)

    def analyze_turn(self, pooled_user_turn: Tensor) -> TurnAnalysis:
        return self.memory.analyze(pooled_user_turn)

    def set_silence_codes(self, codes: Tensor) -> None:
        """The codec's codes for silence (K,): what a silent assistant frame is made of."""
        self.silence_codes.copy_(codes.to(self.silence_codes))

    def check_speaker_bank(self, bank) -> None:
        """Refuse a `SpeakerBank` whose encoder differs from the one used in training."""
        expected, got = self.cfg.speaker_fingerprint, getattr(bank, "encoder_fingerprint", None)
        if expected and got != expected:
            raise ValueError(
                f"speaker bank of encoder {got}, but this model was trained with {expected}"
            )

    def check_codec(self, codec) -> None:
        """Refuse a codec whose codes differ from the ones this model was trained on: it would
        hear noise and speak noise, without any error."""
        expected = self.cfg.codec_fingerprint
        if expected and (got := codec.codes_fingerprint()) != expected:
            raise ValueError(
                f"this S2S model was trained on the codes of codec {expected}, but the codec "
                f"given encodes as {got}: serve the codec it was trained "
                "with (a decoder-only fine-tune of it is fine), or retrain the S2S stages"
            )

    # Generation: one frame per call inside `streaming(B)`.

    def init_state(self, batch_size: int) -> S2SState:
        K, d, device = self.cfg.num_codebooks, self.cfg.acoustic_delay, module_device(self)
        return S2SState(
            batch_size,
            prev_text=torch.full((batch_size,), self.text_start, dtype=torch.long, device=device),
            prev_codes=torch.full(
                (batch_size, K), self.code_start, dtype=torch.long, device=device
            ),
            pending_first=torch.zeros(batch_size, d, dtype=torch.long, device=device),
            frame=torch.zeros(batch_size, dtype=torch.long, device=device),
            text_start=self.text_start,
            code_start=self.code_start,
        )

    def step(
        self,
        user_codes: Tensor,
        speaker_emb: Tensor | None = None,
        style_id: Tensor | None = None,
        memory: Tensor | None = None,
        memory_mask: Tensor | None = None,
        sample: Sampler = greedy,
        forced: ForcedFrame | None = None,
        memory_chars: Tensor | None = None,
        memory_char_keys: Tensor | None = None,
    ) -> S2SStepOutput:
        """Consume the user's codes of frame t (B, K); produce the assistant's frame t.

        Text first, then codebooks 0..K-1 through the depth transformer, each chosen by
        `sample` unless `forced`. While an item's frame < d, its codebooks k >= 1 are
        CODE_START, as in the delayed training layout. `memory_chars` (B, M, L): the memory
        turns' text for the copy head, with their `CopyHead.memory_keys` if the caller keeps them.
        """
        state, cfg = self.state, self.cfg
        B, K = user_codes.shape
        x, hearing_log_probs = self._temporal_input(
            user_codes[:, :, None], state.prev_text[:, None], state.prev_codes[:, :, None]
        )
        cond = self.condition(speaker_emb, style_id, B)
        h, weights = self._contextualise(x, cond, memory, memory_mask)  # (B, 1, D), (B, 1, M)
        h = h[:, 0]  # (B, D)

        def choose(logits: Tensor, stream: int, forced_tokens: Tensor | None) -> Tensor:
            tokens = sample(logits, stream)  # (B,)
            return tokens if forced is None else torch.where(forced.mask, forced_tokens, tokens)

        one_frame = self._text_logits(
            h[:, None], state.prev_text[:, None], hearing_log_probs, memory, weights,
            memory_chars, memory_char_keys,
        )  # fmt: skip
        text_logits = one_frame[:, 0]  # (B, V)
        text = choose(text_logits, 0, None if forced is None else forced.text)
        self.depth.reset_streaming()  # a fresh depth sequence every frame
        depth_in = rearrange(self.depth_in(h), "b (k d) -> b k d", k=K)  # (B, K, Dd)
        previous = self.depth_text_embedding(text)  # (B, Dd)
        acoustic_ready = state.frame >= cfg.acoustic_delay  # (B,)
        codes, code_logits = [], []
        for k in range(K):
            out = self.depth((depth_in[:, k] + previous)[:, None])[:, 0]  # (B, Dd)
            logits = out @ self.code_heads[k]  # (B, card)
            code = choose(logits, 1 + k, None if forced is None else forced.codes[:, k])
            if k > 0:
                code = torch.where(acoustic_ready, code, self.code_start)
            codes.append(code)
            code_logits.append(logits)
            if k + 1 < K:
                previous = self._depth_code_input(code, k)  # (B, Dd)
        delayed = torch.stack(codes, dim=1)  # (B, K)
        if cfg.acoustic_delay == 0:
            frame_codes = delayed
        else:  # frame t - d: its codebook 0 came out d steps ago
            frame_codes = torch.cat([state.pending_first[:, :1], delayed[:, 1:]], dim=1)
            state.pending_first = torch.cat([state.pending_first[:, 1:], delayed[:, :1]], dim=1)
        user_text_logits = self.user_text_head(h)  # (B, V)
        out = S2SStepOutput(
            text_token=text, codes=delayed, frame_codes=frame_codes, frame_valid=acoustic_ready,
            user_text_token=user_text_logits.argmax(-1), text_logits=text_logits,
            code_logits=torch.stack(code_logits, dim=1), user_text_logits=user_text_logits, hidden=h,
            hearing_ids=None if hearing_log_probs is None else hearing_log_probs.argmax(-1),
        )  # fmt: skip
        state.prev_text, state.prev_codes, state.frame = text, delayed, state.frame + 1
        return out
