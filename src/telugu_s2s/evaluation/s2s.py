"""S2S evaluation: generate every held-out dialog turn by turn and score what comes out.

Protocol. The test split holds held-out dialogs rendered in the held-out user voices; each
(dialog, user voice) rendering is one session. Sessions cycle over the four assistant
voices, and over the formal and casual styles every four sessions (dialogs without style
variants use the default style). A session is one continuous stream, as on the server:
`lead_frames` of silence, then for every turn
  1. the user's utterance codes (the utterance encoded alone, as in the token cache),
     frame by frame, with the assistant forced silent;
  2. `pause_frames` of user silence, the assistant still forced silent;
  3. user silence while the assistant generates freely for the longest reference reply
     of the turn (over its styles) plus `margin_frames`, in the requested voice and style.
     It samples as the server does (`temperature`, `top_k`, `speaker_guidance`: the
     generator's classifier-free guidance towards the voice), with one seed per rendering
     shared by its sessions, so that the ablations differ only in what they ablate. (Greedy
     decoding never starts a reply: the model spreads the onset over several frames, so
     "silent" wins every single frame; `temperature=0` still gives greedy runs.)
When a user utterance ends, its pooled hidden states (the mean over its frames) join the
session's context memory: training lets frame f retrieve every turn whose user part ended
before f. (Training pools turns from a memory-free pass; here each session pools its own
hidden states, as a server does, so the memory-on session pools with its memory on.)

Each rendering runs as up to three sessions in one batch, on the same user input:
`main` (the requested style, memory on), `other_style` (the other style, memory on) and
`memory_off` (the requested style, memory always empty). Metrics:
- monologue CER: main's text stream in the reply window (blanks dropped) vs the reply;
- topic accuracy (from the second user turn: an opening greeting carries no topic), per
  turn and for the dialog so far (as the server names it; `evaluation/topics.py`),
  sentiment MAE, emotion accuracy: the analysis heads on main's pooled user turns;
- context CER on turns with `depends_on`: main (memory on) vs memory_off;
- slot recall on those turns: does the reply say the fact it needs (evaluation/recall.py),
  memory on vs off, also on the turns whose fact ended more than the attention window
  (`context_frames`) before the reply, where only the memory can bring it back;
- speaker fidelity: main's reply codes decoded by the codec, silent frames at both ends
  trimmed; the speaker encoder and the bank must pick the requested voice, and the median
  F0 must be within 15% of the voice's target (the bank's `pitch_hz`). The codec caps
  both (`benchmarks/codec_voices.py`: its decoder once buzzed at 100 Hz over every voice);
  the per-turn `f0` values show what the tracker read;
- user-transcript CER: main's user_text stream over each utterance (read
  `user_text_delay` frames late) vs the user's words;
- the judge (`telugu_s2s.asr`, when given): each decoded reply, trimmed to its speech, is
  transcribed by the recognizer stage. `speaking_cer` scores that transcript against the
  model's own monologue (does the audio say what the model meant?), `reply_audio_cer`
  against the reference reply, and `reply_audio_valid_cer` against the nearest of the
  turn's valid replies (the generator stores them);
- self round trip: each decoded reply, re-encoded by the codec, is the user input of a fresh
  session whose user-transcript CER against the intended reply is `self_round_trip_cer`. It
  measures the S2S model's own user stream as much as the audio: the judge's figures are
  the ones about intelligibility;
- style, on turns with formal and casual variants: how often main and other_style differ,
  and the CER of each against its own reference vs the other style's.
CERs are corpus-level (all edits over all reference characters).
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from telugu_s2s.data.datasets import load_split
from telugu_s2s.data.text import TextTokenizer, ctc_transcript
from telugu_s2s.data.timeline import DialogTimelines, TimelineConfig
from telugu_s2s.data.voices import median_f0
from telugu_s2s.evaluation.cer import cer
from telugu_s2s.evaluation.planned_replies import plan_frames, reply_plans
from telugu_s2s.evaluation.recall import dialog_slot_values, fact_words, recalls, words_to_repeat
from telugu_s2s.evaluation.renderings import (  # noqa: F401 - re-exported for callers and tests
    STYLE_PAIR,
    ItemPlan,
    ProtocolConfig,
    TurnPlan,
    plan_item,
)
from telugu_s2s.evaluation.sessions import (  # noqa: F401 - re-exported for callers and tests
    EvalModels,
    FirstCodebooks,
    SessionScript,
    SessionTrace,
    encode_clip,
    run_sessions,
)
from telugu_s2s.evaluation.tally import Tally, nan_to_none
from telugu_s2s.evaluation.topics import DialogTopics
from telugu_s2s.labels import EMOTIONS, TOPICS
from telugu_s2s.modules.streaming import module_device
from telugu_s2s.speakers import embed_audio

log = logging.getLogger(__name__)
_TOKENIZER = TextTokenizer()
HEARING_TAIL_FRAMES = 4  # 320 ms: how late the ear may emit a character after its sound


def _text(tokens: Tensor, span: tuple[int, int], shift: int = 0) -> str:
    """The text of a frame-aligned token stream over steps [start, end) + shift."""
    frames = tokens[span[0] + shift : span[1] + shift].tolist()
    return " ".join(_TOKENIZER.collapse_frames(frames).split())


def _heard(model, user_text: Tensor, span: tuple[int, int]) -> str:
    """What the model heard over a user span, from a trace's (T, R) user stream: the
    transcript head's tokens (`user_text_delay` frames late), or the ear's CTC ids, whose
    characters may come out up to `HEARING_TAIL_FRAMES` after their sound."""
    if model.hearing is None:
        return _text(user_text[:, 0], span, shift=model.cfg.user_text_delay)
    return ctc_transcript(user_text[span[0] : span[1] + HEARING_TAIL_FRAMES].flatten().tolist())


def _speech(audio: np.ndarray, codes: Tensor, silence: Tensor, frame: int, min_frames: int):
    """The audio (n * frame,) of codes (K, n) without its silent frames at both ends."""
    voiced = torch.nonzero((codes != silence[:, None]).any(dim=0))[:, 0]  # (v,) frame indices
    if len(voiced) < min_frames:
        return audio
    return audio[int(voiced[0]) * frame : (int(voiced[-1]) + 1) * frame]


def _score_item(plan: ItemPlan, traces: dict[str, SessionTrace], ds, model, tally,
                finals: list[str] | None = None, topic_model=None,
                planned: list[str] | None = None) -> list[dict]:  # fmt: skip
    """Text, analysis, context and style metrics of one rendering; one record per turn.
    `finals`: the judge's transcript of each user turn (None: the S2S model's own, as a server
    without the judge); `topic_model`: the server's text topic model, if it has one;
    `planned`: main's planned replies (scored as text, before any audio)."""
    main, rate = traces["main"], tally.rates
    analysis = model.analyze_turn(torch.stack(main.pooled).to(module_device(model)))  # (N,) each
    emotions = analysis.emotion_probs.argmax(dim=-1)  # (N,)
    records, topics = [], DialogTopics(tally, topic_model)
    for n, turn in enumerate(plan.turns):
        row, reference = ds.rows[turn.user_row], plan.reference(turn, ds)
        said = _text(main.text, turn.reply_span)
        heard = _heard(model, main.user_text, turn.user_span)
        topic, emotion = int(analysis.topic[n]), int(emotions[n])
        sentiment = float(analysis.sentiment[n])
        record = {
            "dialog": plan.dialog, "user_voice": plan.user_voice, "turn": turn.turn,
            "voice": plan.voice, "style": plan.style, "reference": reference, "monologue": said,
            "monologue_cer": rate["monologue"].add(said, reference),
            "user_text": row["text"], "user_transcript": heard,
            "user_transcript_cer": rate["user_transcript"].add(heard, row["text"]),
            "topic": TOPICS[topic], "topic_true": TOPICS[row["topic"]],
            "sentiment": sentiment, "sentiment_true": float(row["sentiment"]),
            "emotion": EMOTIONS[emotion], "emotion_true": EMOTIONS[row["emotion"]],
            "valid_replies": ds.rows[plan.reply_row(turn)]["valid_replies"] or [reference],
        }  # fmt: skip
        if planned is not None:
            nearest = min(record["valid_replies"], key=lambda v: cer(planned[n], v))
            record.update(
                plan=planned[n], plan_valid_cer=rate["plan_valid"].add(planned[n], nearest)
            )
        for repeated in words_to_repeat(row["text"], said, record["valid_replies"]):
            tally.add("words_repeated", repeated)
        final = finals[n] if finals else heard  # the server's final user transcript
        topics.add(TOPICS[row["topic"]], analysis.topic_logits[n].cpu(), final, turn.turn + 1)
        if turn.turn > 0:  # the dialog's label: an opening greeting says nothing of it
            tally.add("topic", topic == row["topic"])
        tally.add("emotion", emotion == row["emotion"])
        tally.add("sentiment_error", abs(sentiment - float(row["sentiment"])))
        if row["depends_on"] and "memory_off" in traces:
            without = _text(traces["memory_off"].text, turn.reply_span)
            rate["memory_on"].add(said, reference)
            record.update(
                memory_off=without, memory_off_cer=rate["memory_off"].add(without, reference)
            )
            _score_recall(plan, turn, row, reference, said, without, ds, model, tally, record)
        if "other_style" in traces and set(STYLE_PAIR) <= set(turn.replies):
            other_said = _text(traces["other_style"].text, turn.reply_span)
            other_ref = plan.reference(turn, ds, plan.other_style)
            tally.add("style_differs", other_said != said)
            pairs = ((said, reference, other_ref), (other_said, other_ref, reference))
            for hypothesis, own, other in pairs:
                rate["style_own"].add(hypothesis, own)
                rate["style_other"].add(hypothesis, other)
            record.update(other_style=plan.other_style, other_style_monologue=other_said)
        records.append(record)
    return records


def _score_recall(plan, turn, row, reference, said, without, ds, model, tally, record) -> None:
    """Slot recall of a turn that depends on earlier ones, memory on and off."""
    earlier = [t for t in plan.turns if t.turn in set(row["depends_on"])]
    said_before = [ds.rows[t.user_row]["text"] for t in earlier]
    slots = tally.slot_values.get(plan.dialog)  # None for hand-written dialogs
    facts = fact_words(reference, said_before, row["text"], slots)
    if not facts:
        return
    hit_on, hit_off = recalls(said, facts), recalls(without, facts)
    gap = turn.reply_span[0] - max(t.user_span[1] for t in earlier)  # steps = frames
    tally.add("slot_on", hit_on)
    tally.add("slot_off", hit_off)
    if gap > model.cfg.context_frames:  # beyond the attention window: the memory's job
        tally.add("slot_on_far", hit_on)
        tally.add("slot_off_far", hit_off)
    record.update(facts=facts, fact_gap_frames=gap, slot_recalled=hit_on,
                  slot_recalled_memory_off=hit_off)  # fmt: skip


def _score_audio(models: EvalModels, plans: list[ItemPlan], mains: list[SessionTrace], ds,
                 silence: Tensor, protocol: ProtocolConfig, tally: Tally, records: list[dict],
                 finals: list[list[str]] | None) -> None:  # fmt: skip
    """Speaker fidelity and round trip of the main sessions' replies (`records` in plan order);
    `finals`: the judge's transcripts of the plans' user turns (`_final_transcripts`)."""
    codec, model, encoder = models.codec, models.s2s, models.speaker_encoder
    fs, lead = codec.frame_size, protocol.lead_frames
    tail = max(model.cfg.user_text_delay, HEARING_TAIL_FRAMES) + 1  # the transcript runs late
    speech, scripts, targets = [], [], []
    for plan, trace in zip(plans, mains, strict=True):
        for turn in plan.turns:
            reply = trace.codes[:, turn.reply_span[0] : turn.reply_span[1]]  # (K, n)
            audio = codec.decode(reply[None].to(module_device(codec)))[0, 0].float().cpu().numpy()
            clip = _speech(audio, reply, model.silence_codes.cpu(), fs, protocol.min_speech_frames)
            if encoder.sample_rate != codec.sample_rate:
                import soxr  # here: the training stages import this package, not the audio

                clip = soxr.resample(clip, codec.sample_rate, encoder.sample_rate)
            speech.append(clip)
            heard = encode_clip(codec, audio)  # (K, n): what a listener's codec would hear
            pad = silence[:, None]  # (K, 1)
            padded = torch.cat([pad.repeat(1, lead), heard, pad.repeat(1, tail)], dim=1)
            listening = torch.ones(padded.shape[1], dtype=torch.bool)  # the assistant stays quiet
            scripts.append(SessionScript(padded, listening, use_memory=False))
            targets.append((plan.voice, plan.reference(turn, ds), heard.shape[1]))
    if not scripts:
        return
    scores = models.bank.scores(embed_audio(encoder, speech))  # (M, voices)
    identified = [models.bank.names[int(i)] for i in scores.argmax(dim=-1)]
    if models.judge is not None and finals is not None:  # the recognizer, not the S2S model
        judged = models.judge.transcribe(speech, sample_rate=encoder.sample_rate)
        served = [text for texts in finals for text in texts]  # the final transcripts
        for record, text, user in zip(records, judged, served, strict=True):
            valid = record.get("valid_replies") or [record["reference"]]
            nearest = min(valid, key=lambda v: cer(text, v))
            rate = tally.rates
            record.update(
                judge_transcript=text,
                speaking_cer=tally.speaking_by_voice[record["voice"]].add(text, record["monologue"]),
                reply_audio_cer=rate["reply_audio"].add(text, record["reference"]),
                reply_audio_valid_cer=rate["reply_audio_valid"].add(text, nearest),
                user_transcript_served=user,
                user_transcript_served_cer=rate["user_transcript_served"].add(user, record["user_text"]),
            )  # fmt: skip
    # Fresh greedy sessions, the replies as user input: the transcriber does not sample.
    transcripts = run_sessions(model, scripts, silence)
    tally.frames["stepped"] += sum(s.user_codes.shape[1] for s in scripts)
    for record, (voice, reference, n), name, clip, trace in zip(
        records, targets, identified, speech, transcripts, strict=True
    ):
        target = models.bank.metadata(voice).pitch_hz or math.nan
        f0 = median_f0(clip, encoder.sample_rate) if clip.size else math.nan
        heard = _heard(model, trace.user_text, (lead, lead + n))
        record.update(identified_voice=name, f0=f0, f0_target=target, self_round_trip=heard,
                      self_round_trip_cer=tally.rates["round_trip"].add(heard, reference))  # fmt: skip
        tally.add("speaker", name == voice)
        tally.add("f0_ratio", f0 / target)


def _sessions(
    plan: ItemPlan, protocol: ProtocolConfig, speaker: Tensor, styles: tuple[str, ...], seed: int,
    turn_texts: list[str] | None = None, turn_plans: dict[str, list[str]] | None = None,
) -> dict[str, SessionScript]:  # fmt: skip
    """main, other_style and memory_off: the same user input, scored against each other.
    `turn_texts`: each user turn's final transcript, for a copy head over the memory;
    `turn_plans`: each session's planned replies (`_reply_plans`)."""
    spans = [turn.user_span for turn in plan.turns]
    return {
        name: SessionScript(
            plan.user_codes,
            plan.silent,
            speaker,
            styles.index(style),
            spans,
            memory,
            seed,
            turn_texts,
            None if turn_plans is None else turn_plans[name],
        )  # fmt: skip
        for name, (style, memory) in plan.session_kinds(protocol).items()
    }


def _final_transcripts(models: EvalModels, plans: list[ItemPlan], ds) -> list[list[str]] | None:
    """The judge's transcript of each plan's user turns (None without a judge): the server's
    final user transcript, which it stores as the turn's text and a copy head over the
    memory reads. One batched call for the plans."""
    if models.judge is None:
        return None
    users = [ds.audio(turn.user_row) for plan in plans for turn in plan.turns]
    texts = iter(models.judge.transcribe(users, sample_rate=ds.sample_rate))
    return [[next(texts) for _ in plan.turns] for plan in plans]


def _reply_plans(
    models: EvalModels, plan: ItemPlan, finals: list[str] | None, protocol: ProtocolConfig
) -> dict[str, list[str]] | None:
    """Each session's planned replies (`evaluation/planned_replies.py`); None without a
    planner or a judge (the planner reads the judge's transcripts, as served)."""
    if models.reply_planner is None or finals is None:
        return None
    turns, sessions = [turn.turn for turn in plan.turns], plan.session_kinds(protocol)
    return reply_plans(models.reply_planner, models.topic_model, turns, finals, sessions)


@torch.inference_mode()
def evaluate_s2s(
    models: EvalModels, dataset_dir: str | Path, split: str = "test", limit_dialogs: int | None = None,
    protocol: ProtocolConfig | None = None, per_turn: bool = True,
) -> dict:  # fmt: skip
    """Run the protocol of this module's docstring; returns the metrics (NaN -> None)."""
    protocol, started = protocol or ProtocolConfig(), time.perf_counter()
    model, codec = models.s2s.eval(), models.codec.eval()
    models.speaker_encoder.eval()
    split_rows = load_split(dataset_dir, split)
    ds = DialogTimelines(split_rows, codec.sample_rate, TimelineConfig(), train=False)
    dialogs = sorted({dialog for dialog, _ in ds.items})[:limit_dialogs]
    indices = [i for i, (dialog, _) in enumerate(ds.items) if dialog in set(dialogs)]
    silence = encode_clip(codec, np.zeros(codec.frame_size, np.float32))[:, 0]  # (K,) silence
    if not torch.equal(silence, model.silence_codes.cpu()):
        log.warning("the S2S model's silence codes differ from the codec's: another codec?")
    tally, records = Tally(slot_values=dialog_slot_values(dataset_dir)), []
    for first in range(0, len(indices), protocol.items_per_batch):
        batch = indices[first : first + protocol.items_per_batch]
        plans = [plan_item(ds, i, codec, silence, protocol) for i in batch]
        finals = _final_transcripts(models, plans, ds)
        memory_texts = finals if finals is not None and model.cfg.copy_memory else None
        replies = [
            _reply_plans(models, p, finals and finals[n], protocol) for n, p in enumerate(plans)
        ]
        if any(replies):  # windows long enough for the plans, at the slowest speaking rate
            plans = [
                plan if said is None else plan_item(
                    ds, i, codec, silence, protocol,
                    plan_frames(said, [t.turn for t in plan.turns]), plan.turn_codes(),
                )
                for plan, said, i in zip(plans, replies, batch, strict=True)
            ]  # fmt: skip
        sessions = [
            _sessions(
                plan,
                protocol,
                models.bank.embedding(plan.voice),
                model.cfg.styles,
                protocol.seed + index,
                None if memory_texts is None else memory_texts[n],
                replies[n],
            )  # fmt: skip
            for n, (plan, index) in enumerate(zip(plans, batch, strict=True))
        ]
        scripts = [script for named in sessions for script in named.values()]
        traces = iter(run_sessions(
            model, scripts, silence, protocol.temperature, protocol.top_k, protocol.speaker_guidance
        ))  # fmt: skip
        by_plan = [{name: next(traces) for name in named} for named in sessions]  # same order
        tally.frames["stepped"] += sum(s.user_codes.shape[1] for s in scripts)
        tally.frames["generated"] += sum(
            t.reply_span[1] - t.reply_span[0] for p in plans for t in p.turns
        )
        chunk = [
            r
            for n, (p, t) in enumerate(zip(plans, by_plan, strict=True))
            for r in _score_item(
                p,
                t,
                ds,
                model,
                tally,
                finals and finals[n],
                models.topic_model,
                replies[n] and replies[n]["main"],
            )  # fmt: skip
        ]
        _score_audio(
            models, plans, [t["main"] for t in by_plan], ds, silence, protocol, tally, chunk,
            finals,
        )  # fmt: skip
        records += chunk
        log.info("evaluated %d/%d renderings", first + len(batch), len(indices))
    info = Path(dataset_dir) / "telugu_s2s.json"
    held_out = json.loads(info.read_text()).get("held_out_user_voices", []) if info.exists() else []
    user_voices = sorted({ds.items[i][1] for i in indices})
    seconds = codec.frame_size / codec.sample_rate
    report = {
        "split": split, "dialogs": len(dialogs), "renderings": len(indices), "turns": len(records),
        **tally.summary(),
        "user_voices": user_voices, "held_out_user_voices": held_out,
        "held_out_voices_only": bool(held_out) and set(user_voices) <= set(held_out),
        "generated_seconds": tally.frames["generated"] * seconds,
        "stepped_seconds": tally.frames["stepped"] * seconds,
        "wall_seconds": time.perf_counter() - started, "protocol": asdict(protocol),
    }  # fmt: skip
    if per_turn:
        report["per_turn"] = [{k: nan_to_none(v) for k, v in r.items()} for r in records]
    return {k: nan_to_none(v) for k, v in report.items()}
