"""python -m telugu_s2s.data.generate [--dialogs N] [--seed S] [--out FILE.jsonl]"""

from __future__ import annotations

import argparse
import json
import sys

from telugu_s2s.data.generate import GeneratorConfig, corpus_stats, generate_dialogs, write_jsonl


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m telugu_s2s.data.generate")
    parser.add_argument("--dialogs", type=int, default=GeneratorConfig.dialogs)
    parser.add_argument("--seed", type=int, default=GeneratorConfig.seed)
    parser.add_argument("--out", default="data/build/generated.jsonl")
    args = parser.parse_args(argv)
    if args.dialogs < 1:
        parser.error("--dialogs must be at least 1")
    cfg = GeneratorConfig(dialogs=args.dialogs, seed=args.seed)
    dialogs = generate_dialogs(cfg)
    write_jsonl(dialogs, args.out)
    print(json.dumps(corpus_stats(dialogs, cfg), ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
