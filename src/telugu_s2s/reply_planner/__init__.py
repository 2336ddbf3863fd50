"""What to answer: a retrieval reply planner over the training dialogs' turns.

    python -m telugu_s2s.reply_planner train [--dataset-dir data/build/dataset] [--out checkpoints/reply_planner]
    python -m telugu_s2s.reply_planner plan "user turn" ["next user turn" ...] [--style casual]

Why it exists: the S2S text stage reads the user's exact words and still picks the wrong
reply template on 3 turns in 4 (reply CER 0.75 against the nearest valid reply, turns 2+
0.78, unchanged over 7,700 CPU steps), while a lookup keyed on the assistant's previous
reply and the user's turn reads 0.14 (docs/training_s2s.md, session 11). The planner is that
lookup made servable: it never sees gold slot values at run time.

- Fit (seconds): a hidden Markov model over dialog states. A state is a turn's set of valid
  replies (per style, the dialog's slot values replaced by `{slot}` names); the training
  dialogs give each state's user turns and the counts of state-to-state transitions.
- Plan: each final transcript moves the session's belief over states one step (forward
  filtering): the transition prior times the emission, the user's words against each
  state's user turns as character 3-gram TF-IDF vectors (cosine), and the emotion and the
  kind of fact asked back (a name, a town) that naive Bayes models over all training turns
  read in the words, against each state's (`reply_planner.evidence`). The
  session's topic, when known, keeps that topic's states. Slot values said (a name, a
  town, a dish) are read by aligning the transcript with similar training user turns and
  by a tagger (`telugu_s2s.slot_values`); they join the session's. The reply is the one
  with the least expected distance to the replies of the likeliest states (minimum Bayes
  risk), filled.
  Keeping the whole belief, not only the last choice, lets one wrong turn be undone by the
  next (validation, 60 dialogs: 0.24 reply CER against 0.37 for a lookup keyed on the
  planner's own previous reply).

The S2S model then speaks the plan: `S2SGenerator.set_plan` makes its monologue follow the
planned characters at its own pace (models/s2s_generation.py). Export: one gzipped JSON.
"""

from telugu_s2s.reply_planner.fitting import fit, train
from telugu_s2s.reply_planner.planner import DEFAULT_DIR, FORMAT, MODEL_FILE, Plan, ReplyPlanner
from telugu_s2s.reply_planner.session import SessionPlanner

__all__ = ["DEFAULT_DIR", "FORMAT", "MODEL_FILE", "Plan", "ReplyPlanner", "SessionPlanner",
           "fit", "train"]  # fmt: skip
