"""python -m telugu_s2s.asr transcribe A.wav [B.wav ...] [--model DIR]"""

from __future__ import annotations

import argparse
import sys

from telugu_s2s.asr import DEFAULT_ASR_DIR, AudioFileError, Judge, read_audio


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m telugu_s2s.asr")
    sub = parser.add_subparsers(dest="command", required=True)
    tr = sub.add_parser("transcribe", help="print path<TAB>text for each audio file")
    tr.add_argument("files", nargs="+")
    tr.add_argument("--model", default=str(DEFAULT_ASR_DIR), help="an exported recognizer")
    args = parser.parse_args(argv)
    try:
        judge = Judge.load(args.model)
    except FileNotFoundError as exc:
        print(f"error: {exc} (train one: python train.py experiment=asr_tiny)", file=sys.stderr)
        return 2
    failed = 0
    for path in args.files:  # one file at a time: a bad file is reported, the rest go on
        try:
            text = judge.transcribe([read_audio(path, judge.sample_rate)])[0]
        except AudioFileError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
            continue
        print(f"{path}\t{text}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
