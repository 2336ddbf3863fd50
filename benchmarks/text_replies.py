"""What the S2S text stage says when it is given the user's exact words.

    .venv/bin/python benchmarks/text_replies.py RUN/checkpoints/last.ckpt [more.ckpt ...]
        [--split validation] [--dialogs 20] [--temperature 0.35] [--top-k 50] [--every-turn]

The upper bound of the reply CER for every later stage: they hear the user through the
ear, the text stage reads the words themselves. For each dialog window of the split (laid
out as in training, `TextDialogs` in evaluation mode), the network is teacher-forced up to
each reply's first frame, then samples the assistant's text frame by frame as the server
samples it (temperature, top-k), while the user stream stays silent. The reply is scored
against the nearest of the turn's valid replies in the item's style, as the evaluation
scores the reply audio, and against the voiced one. `words_repeated`: of the user's words
(4 characters or more) that the nearest valid reply repeats (a name, a place, a dish), the
share that the reply repeats.

The stage's `UserTextInput` is not exported, so this reads Lightning checkpoints; the
network's config comes from the run's `.hydra/config.yaml`. Writes
`benchmarks/results/text_replies.json`: one entry per checkpoint, in the order given.
"""

from __future__ import annotations

import argparse
import json
import time
from contextlib import nullcontext
from pathlib import Path

import torch

from telugu_s2s.data.text import BLANK, TextTokenizer
from telugu_s2s.data.text_dialogs import TextDialogConfig, TextDialogs, load_dialogs
from telugu_s2s.data.timeline import STYLE_IDS
from telugu_s2s.evaluation.cer import ErrorRate, cer
from telugu_s2s.evaluation.recall import words_to_repeat
from telugu_s2s.paths import REPO_ROOT

RESULTS = REPO_ROOT / "benchmarks" / "results"
TAIL_FRAMES = 8  # the reply may run this much past the reference's length


def load_text_stage(checkpoint: Path):
    """The S2STextModule of a text-stage run's checkpoint, in eval mode."""
    import hydra
    from omegaconf import OmegaConf, open_dict

    import telugu_s2s.train  # noqa: F401  (registers the repo_root resolver)

    config = checkpoint.parent.parent / ".hydra" / "config.yaml"
    if not config.exists():
        raise FileNotFoundError(f"{config}: a text-stage run's checkpoint is needed")
    cfg = OmegaConf.load(config)
    if cfg.model._target_.rsplit(".", 1)[-1] != "S2STextModule":
        raise ValueError(f"{checkpoint} is not a text-stage run ({cfg.model._target_})")
    with open_dict(cfg):
        cfg.model.init_from = None  # the weights come from the checkpoint
        cfg.model.init_checkpoint = None
        if cfg.model.pop("copy_head", False):  # session 9 kept it beside the network
            cfg.model.net.cfg.copy_head = True
    module = hydra.utils.instantiate(cfg.model)
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    tensors = state["state_dict"]
    module.load_state_dict(
        {("net." + k if k.startswith("copy_head.") else k): v for k, v in tensors.items()}
    )
    return module.eval(), int(state["global_step"])


def _sample(logits: torch.Tensor, temperature: float, top_k: int, gen: torch.Generator) -> int:
    if temperature <= 0:
        return int(logits.argmax())
    values, index = logits.topk(min(top_k, logits.shape[-1]))
    pick = torch.multinomial(torch.softmax(values / temperature, -1), 1, generator=gen)
    return int(index[pick])


def _text_log_probs(net, hidden: torch.Tensor, prev: torch.Tensor, user: torch.Tensor):
    """The text logits (1, T, V) of T frames' states (1, T, D), through the network's copy
    head when it has one (log-probabilities then, streaming: call it on every frame)."""
    from telugu_s2s.models.copy_head import spread_frames

    logits = net.text_head(hidden)
    if net.copy_head is None:
        return logits
    return net.copy_head(logits, hidden, prev, spread_frames(user, net.cfg.hearing_sub_frames))


def windows(dialog, every_turn: bool) -> list[tuple[int, slice]]:
    """(first turn of the window, which of its placed turns to score): the opening window's
    turns; with `every_turn`, also each later turn k in a window from turn k - 1, so that its
    context holds the previous exchange, as in a conversation."""
    if not every_turn:
        return [(0, slice(None))]
    return [(0, slice(0, 1))] + [(k - 1, slice(1, 2)) for k in range(1, len(dialog.turns))]


def window_turns(items: TextDialogs, index: int, first: int, which: slice) -> tuple[dict, list]:
    """The window and its turns to score; a turn whose exchange before it does not fit in
    one window is scored in a window of its own."""
    item = items.window(index, first)
    turns = item["turns"][which]
    if not turns and which.start == 1:
        item = items.window(index, first + 1)
        turns = item["turns"][:1]
    return item, turns


@torch.no_grad()
def reply_figures(
    module, dialogs, temperature: float, top_k: int, seed: int = 0, examples: int = 6,
    every_turn: bool = False,
) -> dict:  # fmt: skip
    from telugu_s2s.models.s2s_text import text_hidden, text_inputs

    net, tokenizer = module.net, TextTokenizer()
    styles = {i: s for s, i in STYLE_IDS.items()}
    items = TextDialogs(dialogs, TextDialogConfig(), train=False)
    gen = torch.Generator().manual_seed(seed)
    valid, voiced, shown = ErrorRate(), ErrorRate(), []
    by_turn = {key: ErrorRate() for key in ("0", "1", "2+")}
    to_repeat = repeated = 0  # the user's words that the nearest valid reply repeats
    scored = [
        (index, dialog, first, which)
        for index, dialog in enumerate(dialogs)
        for first, which in windows(dialog, every_turn)
    ]
    for index, dialog, first, which in scored:
        item, turns = window_turns(items, index, first, which)
        speaker = module.speakers[torch.tensor([item["speaker_id"]])]  # (1, S)
        style = torch.tensor([item["style_id"]])
        user = item["user_text"][None]  # (1, F)
        for placed in turns:
            start, end = placed["assistant_span"]
            end = min(end + TAIL_FRAMES, user.shape[1])
            text = item["assistant_text"][None].clone()  # (1, F)
            text[:, start:] = BLANK
            copy = net.copy_head
            with (
                net.temporal.streaming(1),
                copy.streaming(1) if copy is not None else nullcontext(),
            ):
                prev = text_inputs(net, text)  # (1, F): frame t sees the text of t - 1
                hidden = text_hidden(
                    net, module.user_input, user[:, : start + 1], prev[:, : start + 1],
                    speaker, style,
                )  # fmt: skip
                logits = _text_log_probs(net, hidden, prev[:, : start + 1], user[:, : start + 1])
                for frame in range(start, end):
                    token = _sample(logits[0, -1], temperature, top_k, gen)
                    text[0, frame] = token
                    if frame + 1 < end:
                        step = slice(frame + 1, frame + 2)
                        hidden = text_hidden(
                            net, module.user_input, user[:, step], text[:, frame : frame + 1],
                            speaker, style,
                        )  # fmt: skip
                        logits = _text_log_probs(
                            net, hidden, text[:, frame : frame + 1], user[:, step]
                        )  # fmt: skip
            said = tokenizer.collapse_frames(text[0, start:end].tolist())
            turn = dialog.turns[placed["turn_index"]]
            options = (turn.valid_replies or {}).get(styles[item["style_id"]]) or [
                placed["assistant_text"]
            ]
            nearest = min(options, key=lambda reply: cer(said, reply))
            valid.add(said, nearest)
            turn_key = "2+" if placed["turn_index"] >= 2 else str(placed["turn_index"])
            by_turn[turn_key].add(said, nearest)
            hits = words_to_repeat(placed["user_text"], said, options)
            to_repeat, repeated = to_repeat + len(hits), repeated + sum(hits)
            voiced.add(said, placed["assistant_text"])
            if len(shown) < examples:
                shown.append({"user": placed["user_text"], "reply": said, "nearest": nearest})
    return {
        "turns": valid.pairs, "reply_valid_cer": round(valid.value, 4),
        "reply_voiced_cer": round(voiced.value, 4), "words_to_repeat": to_repeat,
        "reply_valid_cer_by_turn": {k: round(r.value, 4) for k, r in by_turn.items() if r.pairs},
        "words_repeated": round(repeated / max(to_repeat, 1), 4), "examples": shown,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--dataset", default=str(REPO_ROOT / "data" / "build" / "dataset"))
    parser.add_argument("--split", default="validation")
    parser.add_argument("--dialogs", type=int, default=20)
    parser.add_argument("--temperature", type=float, default=0.35)  # the server's
    parser.add_argument("--top-k", type=int, default=50)
    parser.add_argument("--output", default=str(RESULTS / "text_replies.json"))
    # every turn of each dialog, each with the exchange before it in its window (default: the
    # opening window's turns, i.e. the first two, the hardest: benchmarks/reply_retrieval.py)
    parser.add_argument("--every-turn", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    dialogs = load_dialogs(args.dataset, args.split)[: args.dialogs]
    runs = []
    for checkpoint in args.checkpoints:
        start = time.perf_counter()
        module, step = load_text_stage(checkpoint)
        figures = reply_figures(
            module, dialogs, args.temperature, args.top_k, every_turn=args.every_turn
        )
        runs.append({"checkpoint": str(checkpoint), "step": step, **figures,
                     "seconds": round(time.perf_counter() - start, 1)})  # fmt: skip
        print(json.dumps({k: v for k, v in runs[-1].items() if k != "examples"}))
    result = {
        "command": "benchmarks/text_replies.py " + " ".join(map(str, args.checkpoints)),
        "split": args.split, "dialogs": len(dialogs), "temperature": args.temperature,
        "top_k": args.top_k, "every_turn": args.every_turn, "runs": runs,
    }  # fmt: skip
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n")


if __name__ == "__main__":
    main()
