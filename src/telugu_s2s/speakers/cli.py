"""`python -m telugu_s2s.speakers list | enroll NAME wav... [--checkpoint DIR] [--bank DIR]`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from telugu_s2s.speakers import (
    DEFAULT_CHECKPOINT,
    SpeakerBank,
    SpeakerMetadata,
    bind_encoder,
    embed_audio,
    load_audio,
    validate_name,
)


def _cmd_list(args: argparse.Namespace) -> int:
    bank = SpeakerBank.load(args.bank)
    print(f"{args.bank}: {len(bank)} voices, {bank.embedding_dim}-dim embeddings")
    columns = "name display_name gender persona age style pitch_hz utterances".split()
    rows = [tuple(columns)]
    for name in bank.names:
        meta = asdict(bank.metadata(name))
        meta["pitch_hz"] = None if meta["pitch_hz"] is None else f"{meta['pitch_hz']:.0f}"
        values = (name, *(meta[c] for c in columns[1:-1]), bank.num_utterances(name))
        rows.append(tuple("-" if v is None else str(v) for v in values))
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    return 0


def _measure_pitch(clips: Sequence[np.ndarray], sample_rate: int) -> float | None:
    try:
        from telugu_s2s.data.voices import median_f0
    except ImportError:
        return None
    f0 = [f for f in (median_f0(clip, sample_rate) for clip in clips) if np.isfinite(f)]
    return round(float(np.median(f0)), 1) if f0 else None


def _cmd_enroll(args: argparse.Namespace) -> int:
    from telugu_s2s.checkpoint import load_pretrained

    # Validate everything before touching the stored bank.
    name = validate_name(args.name.lower())
    bank = SpeakerBank.load(args.bank) if SpeakerBank.exists(args.bank) else None
    if bank is not None and name in bank and not args.replace:
        raise ValueError(f"{name!r} is already in the bank; pass --replace to re-enroll it")
    if not (Path(args.checkpoint) / "config.json").exists():
        raise FileNotFoundError(
            f"no speaker encoder checkpoint in {args.checkpoint} (train the speaker stage or pass --checkpoint)"
        )
    encoder = load_pretrained(args.checkpoint)
    if not hasattr(encoder, "embedding_dim"):
        raise ValueError(
            f"{args.checkpoint} holds a {type(encoder).__name__}, not a speaker encoder"
        )
    sample_rate = getattr(encoder, "sample_rate", 16000)
    clips = [load_audio(path, sample_rate) for path in args.wavs]
    if bank is None:
        bank = SpeakerBank(encoder.embedding_dim)

    metadata = SpeakerMetadata(
        display_name=args.display_name or (args.name if args.name != name else name.capitalize()),
        gender=args.gender, persona=args.persona, age=args.age, style=args.style,
        pitch_hz=args.pitch_hz if args.pitch_hz is not None else _measure_pitch(clips, sample_rate),
    )  # fmt: skip
    others = [n for n in bank.names if n != name]
    bind_encoder(bank, encoder)
    utterances = embed_audio(encoder, clips)  # (M, D)
    embedding = bank.enroll(name, utterances, metadata)  # (D,)
    consistency = (utterances @ embedding).mean().item()
    bank.save(args.bank)

    print(f"enrolled {name!r} ({metadata.display_name}) from {len(clips)} utterances")
    print(f"  mean cosine of its utterances to the new voice: {consistency:.3f}")
    if others:
        scores = {n: float(bank.embedding(n) @ embedding) for n in others}
        closest = max(scores, key=scores.get)
        print(f"  closest other voice: {closest} (cosine {scores[closest]:.3f})")
    print(f"  bank: {args.bank} ({len(bank)} voices)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m telugu_s2s.speakers", description=__doc__.split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)

    list_cmd = commands.add_parser("list", help="show the voices in a speaker bank")
    list_cmd.add_argument("--bank", type=Path, default=DEFAULT_CHECKPOINT, help="bank directory")
    list_cmd.set_defaults(run=_cmd_list)

    enroll = commands.add_parser("enroll", help="add a voice from audio files")
    enroll.add_argument("name", help="voice name (stored lower-case)")
    enroll.add_argument("wavs", nargs="+", type=Path, help="audio files of that voice")
    enroll.add_argument(
        "--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help="encoder checkpoint dir"
    )
    enroll.add_argument(
        "--bank", type=Path, default=None, help="bank directory (default: --checkpoint)"
    )
    enroll.add_argument("--display-name")
    enroll.add_argument("--gender")
    enroll.add_argument("--persona", help="e.g. young, mature, professional")
    enroll.add_argument("--age", help='apparent age range, e.g. "25-30"')
    enroll.add_argument("--style", help="e.g. energetic, calm")
    enroll.add_argument("--pitch-hz", type=float, help="median F0 (default: measured)")
    enroll.add_argument("--replace", action="store_true", help="re-enroll an existing voice")
    enroll.set_defaults(run=_cmd_enroll)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "bank", None) is None:
        args.bank = args.checkpoint
    try:
        return args.run(args)
    except (OSError, ValueError, KeyError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {message}", file=sys.stderr)
        return 1
