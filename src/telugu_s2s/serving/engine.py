"""The model engine: codec, speaker bank and S2S model stepping every session as one batch.

`ModelEngine` implements `engine_api.Engine` on the framework-free checkpoints that training
exports (`checkpoints/codec`, `checkpoints/speaker`, `checkpoints/s2s`; no Lightning;
loaded by `engine_checkpoints`). It keeps one long-lived streaming batch for the codec
encoder, the S2S generator and the codec decoder with one row per *joined* session (at most
`max_slots`): `join` appends a fresh row, `leave` drops one, the other rows' states
untouched (`serving.batch_rows`). A `step` over every session runs the models on the live
batch as is: user audio -> codes -> one assistant frame -> audio; no free slot is ever
stepped. A step over some sessions only (one catching up with a second frame) gathers their
rows, steps them and scatters them back.

Rules this file decides (the model has no explicit "turn" signal):
- speaking: a frame is *active* when its monologue token is a character (not BLANK/PAD/EOS)
  or its codebook-0 code differs from the codec's silence code *and* its decoded RMS is
  above `speaking_rms`. Codebook 0 is the semantic one and is generated with the text, so
  sampling noise in the finer codebooks during a pause does not count, and a code that
  decodes to an inaudible floor does not either. A reply stays `speaking` through pauses of
  up to `hangover_frames` frames, so that gaps between words do not split it into replies.
- turns: how a slot's turn window splits into the user part, the reply and the frames
  carried over to the next turn is `engine_turns.segment_turn`'s rule.
- memory: as in training, a turn's memory entry is `turn_embedding` of the temporal hidden
  states over the user part only, so no reply frame (heard or not) enters it.
  `end_turn(heard_frames)` keeps only the heard prefix of the reply's text in the engine's
  turn log. The attention cache (the last `context_frames` frames) keeps the cut reply's
  frames as they were stepped: they carry the user's barge-in speech too, and the forced
  silence after the cut shows the model that it stopped.
- the user's silence: the token timelines the model learns from put the codes of one frame
  of digital silence encoded from a fresh codec state between utterances. A live stream's
  silence encodes otherwise: about 3 frames after speech the encoder settles on other
  codes, and a microphone's noise floor, even at -60 dBFS, encodes as neither. The model
  never saw those, took the user for still speaking and never took its turn (0 of 12
  held-out utterances answered). So every user frame quieter than `voiced_rms` (not
  voiced, as for turns) reaches the model as its own silence codes
  (`benchmarks/turn_taking.py [--noise-dbfs]`: 12 of 12).
- silence: `silence(slot)` forces the slot's assistant silent (text BLANK, silence codes)
  until the user's next utterance ends: some voiced frames, then `release_quiet_frames`
  quiet ones. The model's own wish to speak cannot be observed while its output is forced,
  so the user's speech is what releases it (a manual interrupt with no speech after it
  keeps the assistant listening).
Timings are the batched cost of each component divided by the active slots (a slot's
share, as the worker reports the VAD); `context` is the memory retrieval inside the S2S
step plus the engine's turn bookkeeping, and `s2s` is the rest of the S2S step.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import random
import time
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from telugu_s2s.data.corpus import EMOTIONS, TOPICS
from telugu_s2s.data.text import BLANK, EOS, PAD, TextTokenizer, ctc_collapse
from telugu_s2s.models.context_memory import TurnMemoryState
from telugu_s2s.models.s2s_generation import S2SGenerator
from telugu_s2s.serving.batch_rows import SessionRows
from telugu_s2s.serving.engine_api import EngineFull, SlotConfig, StepResult, TurnAnalysis
from telugu_s2s.serving.engine_checkpoints import load_models
from telugu_s2s.serving.engine_turns import EngineTurn, SlotState, segment_turn

log = logging.getLogger(__name__)
_SPECIAL_TEXT = (PAD, BLANK, EOS)


class ModelEngine:
    """The `Engine` over exported checkpoints (see the module docstring for its rules).

    Calls must come from one thread (the server's worker): the engine does no locking.
    """

    def __init__(self, checkpoint_dir: str | Path = "checkpoints", device: str = "cpu",
                 max_slots: int = 8, codec_dir: str | Path | None = None,
                 speaker_dir: str | Path | None = None, s2s_dir: str | Path | None = None,
                 speaking_rms: float = 0.003, voiced_rms: float = 0.01, hangover_frames: int = 4,
                 release_quiet_frames: int = 5, max_turn_frames: int = 750,
                 seed: int | None = None, speaker_guidance: float = 1.0):  # fmt: skip
        root, self.device = Path(checkpoint_dir), torch.device(device)
        self.codec, self.bank, self.model = load_models(
            Path(codec_dir or root / "codec"), Path(speaker_dir or root / "speaker"),
            Path(s2s_dir or root / "s2s"), self.device,
        )  # fmt: skip
        cfg = self.model.cfg
        self.sample_rate: int = self.codec.sample_rate
        self.frame_size: int = self.codec.frame_size
        self.speakers: list[str] = list(self.bank.names)
        self.max_slots, self.num_codebooks = max_slots, cfg.num_codebooks
        self.speaking_rms, self.voiced_rms = speaking_rms, voiced_rms
        self.hangover_frames, self.release_quiet_frames = hangover_frames, release_quiet_frames
        self.max_turn_frames = max_turn_frames
        self._seeds = random.Random(seed) if seed is not None else None
        self._tokenizer = TextTokenizer()
        with torch.inference_mode():
            silence = self.codec.encode(torch.zeros(1, 1, self.frame_size, device=self.device))
            silence = silence[0, : self.num_codebooks, 0]  # (K,)
            saved = self.model.silence_codes
            if bool(saved.any()) and not torch.equal(saved, silence):
                log.warning("the S2S model was trained with other silence codes: not its codec?")
            self.model.set_silence_codes(silence)
        self.silence_code0 = int(silence[0])
        self.slots: dict[int, SlotState] = {}
        self._memory_turns = itertools.count()  # ids of memory entries, unique across slots
        self.rows: list[int] = []  # the slot of each batch row, in row order
        self._memory_ms = self._memory_started = 0.0
        self._hooks = [
            self.model.memory.register_forward_pre_hook(lambda *_: self._start_memory()),
            self.model.memory.register_forward_hook(lambda *_: self._stop_memory()),
        ]
        self._stack = contextlib.ExitStack()
        with torch.inference_mode():  # no rows yet: `join` adds them
            self._stack.enter_context(self.codec.streaming(0))
        self.speaker_guidance = speaker_guidance  # > 1: null-speaker twins, 2x the s2s compute
        self.generator = self._stack.enter_context(
            S2SGenerator(self.model, 0, speaker_guidance=speaker_guidance != 1.0)
        )
        self.batch = SessionRows(self.codec, self.generator)
        self.stepped_rows: list[int] = []  # batch size of each model call (tests, benchmarks)

    def close(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self._stack.close()

    # ------------------------------------------------------------------ slots

    def row(self, slot: int) -> int:
        """The batch row of a joined slot (rows move when other sessions leave)."""
        return self.rows.index(slot)

    def _mask(self, slot: int) -> Tensor:
        mask = torch.zeros(len(self.rows), dtype=torch.bool)  # (B,)
        mask[self.row(slot)] = True
        return mask

    def _style_id(self, style: str) -> int:
        styles = self.model.cfg.styles
        if style not in styles:
            raise ValueError(f"unknown style {style!r}; known: {list(styles)}")
        return styles.index(style)

    def _speaker(self, name: str) -> Tensor:
        if name not in self.speakers:
            raise ValueError(f"unknown speaker {name!r}; known: {self.speakers}")
        return self.bank.embedding(name).to(self.device)  # (S,) unit-norm

    def _memory(self, config: SlotConfig) -> TurnMemoryState:
        """The stored turn embeddings; turns without one of this model's size are skipped."""
        D, turns, texts = self.model.cfg.d_model, [], []
        for record in config.context:
            if record.memory is not None and np.shape(record.memory) == (D,):
                turns.append(torch.as_tensor(np.asarray(record.memory, np.float32)))
                texts.append(record.user_text)  # the stored transcript: what a copy head reads
            else:
                log.warning("turn %d has no %d-dim memory embedding: left out", record.index, D)
        return TurnMemoryState.from_tensors(turns, self.model.cfg.memory_turns, texts)

    @torch.inference_mode()
    def join(self, config: SlotConfig) -> int:
        free = [s for s in range(self.max_slots) if s not in self.slots]
        if not free:
            raise EngineFull(f"all {self.max_slots} engine slots are busy")
        slot = free[0]
        speaker, style, memory = self._speaker(config.speaker), self._style_id(config.style), self._memory(config)  # fmt: skip
        self.batch.relayout(list(range(len(self.rows))), fresh=1)
        self.rows.append(slot)
        seed = self._seeds.randrange(2**62) if self._seeds is not None else None
        self.generator.join(self.row(slot), speaker_emb=speaker, style_id=style,
                            temperature=config.temperature, top_k=config.top_k, seed=seed,
                            memory=memory, guidance=self.speaker_guidance)  # fmt: skip
        # Restored entries keep their stored text (-1: never revised).
        self.slots[slot] = SlotState(config, memory_ids=[-1] * len(memory))
        return slot

    @torch.inference_mode()
    def leave(self, slot: int) -> None:
        self.slots.pop(slot)
        row = self.row(slot)
        self.batch.relayout([r for r in range(len(self.rows)) if r != row])
        self.rows.remove(slot)

    @torch.inference_mode()
    def configure(self, slot: int, **changes) -> None:
        unknown = set(changes) - {"speaker", "style", "temperature", "top_k"}
        if unknown:
            raise ValueError(f"cannot configure {sorted(unknown)}")
        state = self.slots[slot]
        if "speaker" in changes:
            self.generator.set_speaker(self.row(slot), self._speaker(changes["speaker"]))
        if "style" in changes:
            self.generator.style[self.row(slot)] = self._style_id(changes["style"])
        self.generator.set_sampling(
            self.row(slot), changes.get("temperature"), changes.get("top_k")
        )
        for key, value in changes.items():
            setattr(state.config, key, value)

    @torch.inference_mode()
    def silence(self, slot: int) -> None:
        """Barge-in: silent from the next step until the user's next utterance ends."""
        state = self.slots[slot]
        self.generator.force_silence(self._mask(slot))
        state.silenced, state.user_spoke, state.user_quiet = True, False, 0
        state.since_active = 1 << 30

    @torch.inference_mode()
    def hold(self, slot: int, silent: bool = True) -> None:
        """Turn mode: keep the slot silent (hearing the user) until `hold(slot, False)`,
        which also ends a barge-in silence: the caller decided that the user is done."""
        state = self.slots[slot]
        state.held = silent
        if silent:
            self.generator.force_silence(self._mask(slot))
            state.since_active = 1 << 30
        else:
            state.silenced = False
            self.generator.force_silence(self._mask(slot), False)

    def set_plan(self, slot: int, text: str | None) -> None:
        """Say `text` as the next reply, at the model's pace (None: the model's own words)."""
        self.generator.set_plan(self.row(slot), text)

    # ------------------------------------------------------------------ stepping

    def _clock(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def _start_memory(self) -> None:
        self._memory_started = self._clock()

    def _stop_memory(self) -> None:
        self._memory_ms += (self._clock() - self._memory_started) * 1000

    def _text(self, token: int) -> str:
        return "" if token in _SPECIAL_TEXT else self._tokenizer.decode([token])

    @torch.inference_mode()
    def step(self, frames: dict[int, np.ndarray]) -> dict[int, StepResult]:
        """One frame (frame_size,) float32 of user audio per active slot -> one result each.

        Only the rows of `frames` run; when that is not every joined session, their rows are
        gathered, stepped and scattered back, and the others' KV rings rotated to match.
        """
        unknown = set(frames) - set(self.slots)
        if unknown:
            raise KeyError(f"step for slots that did not join: {sorted(unknown)}")
        if not frames:
            return {}
        batch = len(self.rows)
        rows = sorted(self.row(slot) for slot in frames)
        if len(rows) == batch:
            return self._release(self._step_rows(frames, rows))
        with self.batch.subset(rows):
            results = self._step_rows(frames, rows)
        return self._release(results)

    def _release(self, results: dict[int, StepResult]) -> dict[int, StepResult]:
        """Slots whose silence ended in this step may speak from the next one."""
        for slot in results:
            state = self.slots[slot]
            if not (state.silenced or state.held) and bool(self.generator.silenced[self.row(slot)]):
                self.generator.force_silence(self._mask(slot), False)
        return results

    def _step_rows(self, frames: dict[int, np.ndarray], rows: list[int]) -> dict[int, StepResult]:
        """Step the models on a batch whose item i is the session of row `rows[i]`."""
        slots = [self.rows[r] for r in rows]
        self.stepped_rows.append(len(rows))
        t0 = self._clock()
        audio = np.stack([np.asarray(frames[slot], np.float32) for slot in slots])  # (B, T)
        voiced = np.sqrt(np.mean(audio**2, axis=1)) > self.voiced_rms  # (B,) as for turns
        user_codes = self.codec.encode_step(
            torch.from_numpy(audio[:, None]).to(self.device), self.num_codebooks
        )  # (B, K, 1)
        quiet = torch.from_numpy(~voiced).to(user_codes.device)  # (B,)
        user_codes[quiet, :, 0] = self.model.silence_codes  # the silence the model knows
        t1 = self._clock()
        self._memory_ms = 0.0
        out = self.generator.step(user_codes[:, :, 0])
        t2 = self._clock()
        reply = self.codec.decode_step(out.assistant_codes[:, :, None])[:, 0]  # (B, T)
        reply_np = reply.float().cpu().numpy()  # (B, T)
        reply_rms = np.sqrt(np.mean(reply_np**2, axis=1))  # (B,)
        t3 = self._clock()
        text = out.text_token.tolist()  # (B,)
        user_text = out.user_text_token.tolist()  # (B,)
        heard = None if out.hearing_ids is None else out.hearing_ids.tolist()  # (B, R)
        code0 = out.assistant_codes[:, 0].tolist()  # (B,)
        valid = out.codes_valid.tolist()  # (B,)
        hidden = out.hidden.float().cpu()  # (B, D)
        results = {}
        for i, slot in enumerate(slots):
            state = self.slots[slot]
            active = text[i] not in _SPECIAL_TEXT or (
                code0[i] != self.silence_code0 and reply_rms[i] > self.speaking_rms
            )
            speaking = False
            if state.silenced:
                self._track_release(slot, state, bool(voiced[i]))
            elif state.held:
                state.since_active = 1 << 30
            else:
                state.since_active = 0 if active else state.since_active + 1
                speaking = valid[i] and state.since_active <= self.hangover_frames
            piece = self._text(text[i]) if speaking else ""
            state.hidden.append(hidden[i].clone())
            state.voiced.append(bool(voiced[i]))
            state.speaking.append(speaking)
            state.texts.append(piece)
            if heard is None:
                user_piece = self._text(user_text[i])
            else:  # the ear's CTC: repeats merge, across frames too
                user_piece = self._tokenizer.decode(ctc_collapse(heard[i], state.last_heard))
                state.last_heard = heard[i][-1]
            state.user_texts.append(user_piece)
            if len(state.hidden) > self.max_turn_frames:  # a window without turns: keep the last
                state.drop(len(state.hidden) - self.max_turn_frames)
            results[slot] = StepResult(reply_np[i].copy(), speaking, piece, user_piece)
        t4 = self._clock()
        share = 1000.0 / len(slots)
        timings = {
            "encode": (t1 - t0) * share,
            "context": self._memory_ms / len(slots) + (t4 - t3) * share,
            "s2s": (t2 - t1) * share - self._memory_ms / len(slots),
            "decode": (t3 - t2) * share,
        }
        for result in results.values():
            result.timings = dict(timings)
        return results

    def _track_release(self, slot: int, state: SlotState, voiced: bool) -> None:
        """While silenced: the end of the user's next utterance lets the model speak again."""
        if voiced:
            state.user_spoke, state.user_quiet = True, 0
        elif state.user_spoke:
            state.user_quiet += 1
            if state.user_quiet >= self.release_quiet_frames:
                state.silenced = False  # the generator follows after the step (`_release`)

    # ------------------------------------------------------------------ turns

    @torch.inference_mode()
    def end_turn(self, slot: int, heard_frames: int | None = None) -> TurnAnalysis | None:
        """Pool the user part of the turn window into the slot's memory and analyse it.

        Returns None (and stores nothing) when the window has no user part at all.
        """
        state = self.slots[slot]
        # A user pause shorter than the one that releases a silenced slot is inside an utterance.
        seg = segment_turn(state.voiced, state.speaking, self.release_quiet_frames - 1)
        reply_frames = seg.reply[1] - seg.reply[0]
        heard = reply_frames if heard_frames is None else max(0, min(heard_frames, reply_frames))
        heard_text = "".join(state.texts[seg.reply[0] : seg.reply[0] + heard])
        user_frames = seg.user[1] - seg.user[0]
        state.turns.append(EngineTurn(user_frames, reply_frames, heard, heard_text))
        del state.turns[: -self.model.cfg.memory_turns]
        analysis = None
        if user_frames > 0:
            hidden = torch.stack(state.hidden[seg.user[0] : seg.user[1]])[None]  # (1, F, D)
            hidden = hidden.to(self.device, self.model.null_speaker.dtype)
            span = torch.ones(1, user_frames, dtype=torch.bool, device=self.device)  # (1, F)
            pooled = self.model.turn_embedding(hidden, span)  # (1, D)
            result = self.model.analyze_turn(pooled)
            emotions = result.emotion_probs[0].float().cpu().tolist()  # (num_emotions,)
            topics = result.topic_logits[0].float().softmax(-1).cpu().tolist()  # (num_topics,)
            turn = torch.zeros(len(self.rows), pooled.shape[-1], device=self.device)  # (B, D)
            turn[self.row(slot)] = pooled[0]
            # The turn's words as heard, for a copy head over the memory: up to the next turn,
            # since the model's user text comes a few frames after the audio.
            heard_user = "".join(state.user_texts[seg.user[0] : seg.carry_from])
            texts = [""] * len(self.rows)
            texts[self.row(slot)] = " ".join(heard_user.split())
            self.generator.append_turn(turn, self._mask(slot), texts)
            state.memory_ids.append(next(self._memory_turns))
            del state.memory_ids[: -self.model.cfg.memory_turns]
            analysis = TurnAnalysis(
                sentiment=float(result.sentiment[0]), topic=TOPICS[int(result.topic[0])],
                emotion=EMOTIONS[int(np.argmax(emotions))],
                emotions={name: float(p) for name, p in zip(EMOTIONS, emotions, strict=True)},
                topics={name: float(p) for name, p in zip(TOPICS, topics, strict=True)},
                memory=pooled[0].float().cpu().numpy(), memory_turn=state.memory_ids[-1],
            )  # fmt: skip
        state.drop(seg.carry_from)
        return analysis

    @torch.inference_mode()
    def set_turn_text(self, slot: int, memory_turn: int, text: str) -> None:
        """The final transcript of a turn whose memory entry is `memory_turn` (the judge's,
        better than what the ear heard): what a copy head over the memory reads."""
        state = self.slots.get(slot)
        if state is None or memory_turn not in state.memory_ids:
            return  # the session left, or the turn fell out of its memory
        first = self.model.cfg.memory_turns - len(state.memory_ids)  # right-aligned entries
        index = first + state.memory_ids.index(memory_turn)
        self.generator.set_turn_text(self.row(slot), index, text)
