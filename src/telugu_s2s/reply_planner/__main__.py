"""python -m telugu_s2s.reply_planner train | plan: see the package's doc."""

from __future__ import annotations

import argparse

from telugu_s2s.reply_planner import DEFAULT_DIR, ReplyPlanner, SessionPlanner, train


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m telugu_s2s.reply_planner",
        description="Fit a reply planner on dialogs, or plan the replies to user turns.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("train", help="fit on a dataset's training dialogs")
    build.add_argument("--dataset-dir", default="data/build/dataset")
    build.add_argument("--out", default=str(DEFAULT_DIR))
    ask = commands.add_parser("plan", help="the replies to user turns, one session")
    ask.add_argument("turns", nargs="+")
    ask.add_argument("--style", default="casual", choices=("formal", "casual"))
    ask.add_argument("--model", default=str(DEFAULT_DIR))
    args = parser.parse_args(argv)
    if args.command == "train":
        planner = train(args.dataset_dir)
        print(
            f"wrote {planner.save(args.out)} ({planner.num_states} states, {len(planner.users)} turns)"
        )
    else:
        session = SessionPlanner(ReplyPlanner.load(args.model))
        for text in args.turns:
            print(f"{text}\t{session.reply(text, args.style).text}")


if __name__ == "__main__":
    main()
