"""Batched streaming generation with `S2SModel` for a server: slots, sampling, silence.

`S2SGenerator` holds the model's streaming state for a fixed number of slots (one per
session) and the per-slot settings: speaker, style, temperature, top-k, seed, context
memory and a silence switch. `sample_tokens` samples every row with its own temperature,
top-k and noise (Gumbel-max), so one session's seed never changes another's draw.

Speaker guidance (classifier-free guidance on the speaker, `speaker_guidance=True`): every
slot also runs a twin stream with the null speaker (training drops the speaker 10% of the
time, so the model knows both), and each token is drawn from `u + w * (c - u)`, the
conditioned logits c pushed away from the unconditioned u by the slot's `guidance` w. Both
twins are fed the same tokens. w = 1 is plain sampling, w = 0 the null speaker; w > 1 makes
the requested voice stronger, at twice the model's compute.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from telugu_s2s.data.text import BLANK, EOS, PAD, SPACE, TextTokenizer
from telugu_s2s.models.context_memory import ContextMemory, TurnMemoryState
from telugu_s2s.models.copy_head import text_characters
from telugu_s2s.models.s2s import ForcedFrame, S2SModel
from telugu_s2s.modules.streaming import module_device


def silence_frame(model: S2SModel, mask: Tensor) -> ForcedFrame:
    """Force a silent assistant (text BLANK, silence codes) on the items where mask (B,)."""
    B, device = mask.shape[0], model.silence_codes.device
    return ForcedFrame(
        mask=mask.to(device).bool(),
        text=torch.full((B,), BLANK, dtype=torch.long, device=device),
        codes=model.silence_codes.expand(B, -1),
    )


def gumbel_noise(uniform: Tensor) -> Tensor:
    """Uniform [0, 1) draws -> Gumbel(0, 1) noise of the same shape."""
    return -torch.log(-torch.log(uniform.clamp(1e-10, 1.0 - 1e-7)))


def sample_tokens(
    logits: Tensor, temperature: Tensor, top_k: Tensor, noise: Tensor | None = None
) -> Tensor:
    """Per-row sampling: logits (B, N), temperature (B,), top_k (B,) (0 = all), Gumbel noise (B, N).

    Gumbel-max: argmax(logits / T + noise) is a draw from softmax(logits / T), and each row
    depends only on its own noise (a per-session seed). Temperature 0, or top_k 1, is greedy.
    """
    logits = logits.float()
    best = logits.argmax(dim=-1)  # (B,)
    if noise is None or not bool((temperature > 0).any()):
        return best
    n = logits.shape[-1]
    k = torch.where(top_k > 0, top_k, n).clamp(1, n)  # (B,)
    if bool((k < n).any()):
        top = logits.topk(int(k.max()), dim=-1).values  # (B, max k), descending
        kth = top.gather(-1, (k - 1)[:, None])  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    drawn = (logits / temperature.clamp_min(1e-6)[:, None] + noise).argmax(dim=-1)  # (B,)
    return torch.where(temperature > 0, drawn, best)


@dataclass
class PlannedReply:
    ids: list[int]  # the plan's characters (a space after them)
    said: int = 0  # how many the slot has said


@dataclass
class GenerationStep:
    assistant_codes: Tensor  # (B, K) frame t - d, complete; silence if invalid or silenced
    codes_valid: Tensor  # (B,) bool: False during a session's first d frames
    text_token: Tensor  # (B,) assistant inner monologue (BLANK when silenced)
    user_text_token: Tensor  # (B,) user transcript, frame t - user_text_delay
    hidden: Tensor  # (B, D) temporal output, to pool turns for the context memory
    hearing_ids: Tensor | None = None  # (B, R) the ear's greedy CTC ids (None: no ear)


class S2SGenerator:
    """Batched streaming generation for a server: one slot per session, no Lightning.

    Holds the model's streaming state for `batch_size` slots and the per-slot settings:
    speaker, style, temperature, top-k, seed, context memory and a silence switch. Every
    slot steps on every call (idle slots too; ignore their output). Use as a context
    manager or call `close()`.

        with S2SGenerator(model, batch_size=8) as gen:
            gen.join(0, speaker_emb=bank.embedding("priya"), style_id=1, temperature=0.8, top_k=50)
            out = gen.step(user_codes)  # (8, K) -> GenerationStep
            gen.force_silence(torch.tensor([True] + [False] * 7))  # barge-in on slot 0
    """

    def __init__(self, model: S2SModel, batch_size: int, speaker_guidance: bool = False) -> None:
        self.model, self.batch_size = model.eval(), batch_size
        cfg, device = model.cfg, module_device(model)
        self.device, self.guided = device, speaker_guidance
        self.guidance = torch.ones(batch_size, device=device)  # (B,) w per slot
        self.speaker = model.null_speaker.detach().expand(batch_size, -1).clone()  # (B, S)
        self.style = torch.zeros(batch_size, dtype=torch.long, device=device)  # (B,)
        self.temperature = torch.zeros(batch_size, device=device)  # (B,)
        self.top_k = torch.zeros(batch_size, dtype=torch.long, device=device)  # (B,)
        self.silenced = torch.zeros(batch_size, dtype=torch.bool, device=device)  # (B,)
        self.active = torch.zeros(batch_size, dtype=torch.bool, device=device)  # (B,)
        self.memory, self.memory_mask = model.memory.empty(
            batch_size, device, model.null_speaker.dtype
        )
        # With a copy head over the memory: each turn's text (B, M, L) and its keys, kept
        # rather than recomputed each frame (they change only with the memory).
        self.copies_memory = bool(model.cfg.copy_head and model.cfg.copy_memory)
        shape = (batch_size, self.memory.shape[1], cfg.copy_memory_chars)
        self.memory_chars = torch.full(shape, PAD, dtype=torch.long, device=device)
        self.memory_char_keys = self._memory_char_keys() if self.copies_memory else None
        self.rngs = [torch.Generator(device=device) for _ in range(batch_size)]
        # Planned replies (`set_plan`): per slot, the characters to say and how many are said
        # (objects, so that a server's views of some rows update them in place).
        self.plans: list[PlannedReply | None] = [None] * batch_size
        self._noise_width = max(cfg.text_vocab_size, cfg.codebook_size)
        self._stream = model.streaming(2 * batch_size if speaker_guidance else batch_size)
        with torch.inference_mode():
            self._stream.__enter__()

    def close(self) -> None:
        if self._stream is not None:
            self._stream.__exit__(None, None, None)
            self._stream = None

    def __enter__(self) -> S2SGenerator:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @torch.inference_mode()
    def join(
        self,
        slot: int,
        speaker_emb: Tensor | None = None,
        style_id: int = 0,
        temperature: float = 0.8,
        top_k: int = 0,
        seed: int | None = None,
        memory: TurnMemoryState | None = None,
        guidance: float = 1.0,
    ) -> None:
        """Start a new session in `slot`: a fresh stream (position 0) and its settings."""
        if guidance != 1.0 and not self.guided:
            raise ValueError("speaker guidance needs S2SGenerator(..., speaker_guidance=True)")
        mask = torch.zeros(self.batch_size, dtype=torch.bool)
        mask[slot] = True
        self.model.reset_streaming(self._twins(mask))
        self.guidance[slot] = guidance
        self.active[slot], self.silenced[slot] = True, False
        self.set_plan(slot, None)
        self.set_speaker(slot, speaker_emb)
        self.style[slot] = style_id
        self.set_sampling(slot, temperature, top_k)
        self.rngs[slot].manual_seed(int(torch.randint(2**62, ())) if seed is None else seed)
        self.set_memory(slot, memory)

    @torch.inference_mode()
    def leave(self, slot: int) -> None:
        """Free `slot`; it keeps stepping on whatever it is fed until the next `join`."""
        self.active[slot] = False
        self.set_memory(slot, None)

    @torch.inference_mode()
    def set_sampling(
        self, slot: int, temperature: float | None = None, top_k: int | None = None
    ) -> None:
        """Temperature 0 = greedy; top_k 0 = no cut."""
        if temperature is not None:
            self.temperature[slot] = temperature
        if top_k is not None:
            self.top_k[slot] = top_k

    @torch.inference_mode()
    def set_speaker(self, slot: int, speaker_emb: Tensor | None) -> None:
        """A unit-norm bank embedding (S,), or None for the null speaker. Any time."""
        source = self.model.null_speaker if speaker_emb is None else speaker_emb
        self.speaker[slot] = source.detach().to(self.speaker)

    @torch.inference_mode()
    def set_memory(self, slot: int, memory: TurnMemoryState | None) -> None:
        """Replace the slot's context memory (None: empty)."""
        state = memory or TurnMemoryState(max_turns=self.memory.shape[1])
        self.memory[slot], self.memory_mask[slot] = state.as_row(
            self.memory.shape[-1], self.device, self.memory.dtype
        )
        if self.copies_memory:
            self.memory_chars[slot] = state.chars_row(self.memory_chars.shape[-1], self.device)
            self.memory_char_keys = self._memory_char_keys()

    @torch.inference_mode()
    def append_turn(self, turn: Tensor, which: Tensor, texts: list[str] | None = None) -> None:
        """Add pooled turns (B, D) to the memories of the slots where `which` (B,) is True,
        with their user texts (one per slot; for a copy head over the memory)."""
        self.memory, self.memory_mask = ContextMemory.append(
            self.memory, self.memory_mask, turn, which
        )
        if self.copies_memory:
            texts = texts or [""] * self.batch_size
            rows = text_characters(texts, self.memory_chars.shape[-1]).to(self.device)  # (B, L)
            shifted = torch.cat([self.memory_chars[:, 1:], rows[:, None]], dim=1)  # (B, M, L)
            self.memory_chars = torch.where(
                which.to(self.device)[:, None, None], shifted, self.memory_chars
            )
            self.memory_char_keys = self._memory_char_keys()

    @torch.inference_mode()
    def set_turn_text(self, slot: int, index: int, text: str) -> None:
        """Replace the text of the slot's memory entry `index` (0..M-1, newest last)."""
        if self.copies_memory:
            row = text_characters([text], self.memory_chars.shape[-1])[0].to(self.device)
            self.memory_chars[slot, index] = row
            self.memory_char_keys = self._memory_char_keys()

    def _memory_char_keys(self) -> Tensor:
        """Keys (B, M * L, A) of the memory turns' characters (the copy head's)."""
        return self.model.copy_head.memory_keys(self.memory, self.memory_chars)

    def set_plan(self, slot: int, text: str | None) -> None:
        """Make the slot's monologue say `text` (None: its own words again). The model keeps
        its pace: each frame where it would say a character says the plan's next one, and
        once the plan is said, the frames where it would go on are BLANK. Its audio follows
        the monologue, as it learnt to speak its own (reply planner: `telugu_s2s.reply_planner`)."""
        ids = None if text is None else TextTokenizer().encode(text.strip()) + [SPACE]
        self.plans[slot] = None if ids is None else PlannedReply(ids)

    def _follow_plans(self, tokens: Tensor, held: Tensor | None) -> Tensor:
        """(B,) sampled text tokens -> the planned characters where the slots have plans;
        not on the `held` slots (B,) (forced: silenced or teacher-forced), which say nothing."""
        out = tokens.clone()
        for slot, plan in enumerate(self.plans):
            speaks = int(tokens[slot]) not in (PAD, BLANK, EOS)
            if plan is None or not speaks or (held is not None and bool(held[slot])):
                continue
            out[slot] = plan.ids[plan.said] if plan.said < len(plan.ids) else BLANK
            plan.said = min(plan.said + 1, len(plan.ids))
        return out

    @torch.inference_mode()
    def force_silence(self, mask: Tensor, silent: bool = True) -> None:
        """Make the masked slots (B,) silent (barge-in) until called with silent=False."""
        self.silenced = torch.where(mask.to(self.device).bool(), silent, self.silenced)

    def _twins(self, x: Tensor) -> Tensor:
        """(B, ...) -> (2B, ...) when guided: the null-speaker twins follow the slots."""
        return torch.cat([x, x]) if self.guided else x

    def _guided(self, logits: Tensor) -> Tensor:
        """(2B, N) conditioned + null-speaker logits -> (B, N) u + w * (c - u); else as is."""
        if not self.guided:
            return logits
        cond, uncond = logits.float().chunk(2)
        return torch.lerp(uncond, cond, self.guidance[:, None])  # exact at w = 0 and w = 1

    @torch.inference_mode()
    def step(self, user_codes: Tensor, forced: ForcedFrame | None = None) -> GenerationStep:
        """user codes of the current frame (B, K) -> one assistant frame for every slot.

        `forced` (teacher forcing, tests) takes precedence over silence for its items.
        """
        model = self.model
        noise = None
        if bool((self.temperature > 0).any()):
            noise = gumbel_noise(torch.stack([  # (B, 1 + K, W): one draw per slot: seeds are per session
                torch.rand(1 + model.cfg.num_codebooks, self._noise_width, generator=rng, device=self.device)
                for rng in self.rngs
            ]))  # fmt: skip

        silence = silence_frame(model, self.silenced)
        if forced is not None:
            forced = ForcedFrame(
                mask=forced.mask | silence.mask,
                text=torch.where(forced.mask, forced.text, silence.text),
                codes=torch.where(forced.mask[:, None], forced.codes, silence.codes),
            )
        elif bool(self.silenced.any()):
            forced = silence
        held = None if forced is None else forced.mask  # (B,) slots that say nothing of their own

        def sample(logits: Tensor, stream: int) -> Tensor:  # (B or 2B, N) -> (B or 2B,)
            logits = self._guided(logits)  # (B, N)
            stream_noise = None if noise is None else noise[:, stream, : logits.shape[-1]]
            tokens = sample_tokens(logits, self.temperature, self.top_k, stream_noise)  # (B,)
            if stream == 0 and any(plan is not None for plan in self.plans):
                tokens = self._follow_plans(tokens, held)
            return self._twins(tokens)

        if forced is not None and self.guided:
            forced = ForcedFrame(
                *(self._twins(x) for x in (forced.mask, forced.text, forced.codes))
            )
        speaker = self.speaker
        if self.guided:
            speaker = torch.cat([speaker, model.null_speaker.expand_as(speaker).to(speaker)])
        has_memory = bool(self.memory_mask.any())
        B = self.batch_size
        out = model.step(
            self._twins(user_codes.to(self.device)), speaker, self._twins(self.style),
            self._twins(self.memory) if has_memory else None,
            self._twins(self.memory_mask) if has_memory else None, sample=sample, forced=forced,
            memory_chars=self._twins(self.memory_chars) if has_memory and self.copies_memory else None,
            memory_char_keys=self._twins(self.memory_char_keys) if has_memory and self.copies_memory else None,
        )  # fmt: skip
        valid, frame_codes = out.frame_valid[:B], out.frame_codes[:B]  # the twins are dropped
        quiet = ~valid | self.silenced  # (B,)
        codes = torch.where(quiet[:, None], model.silence_codes.expand_as(frame_codes), frame_codes)
        return GenerationStep(
            assistant_codes=codes, codes_valid=valid, text_token=out.text_token[:B],
            user_text_token=out.user_text_token[:B], hidden=out.hidden[:B],
            hearing_ids=None if out.hearing_ids is None else out.hearing_ids[:B],
        )  # fmt: skip
