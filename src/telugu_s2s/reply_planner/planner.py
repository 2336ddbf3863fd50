"""The reply planner's model: dialog states, their emission and transitions, the plan of
a turn (`ReplyPlanner.step`), and its export."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import numpy as np

from telugu_s2s.json_export import load_json_export, save_json_export
from telugu_s2s.paths import REPO_ROOT
from telugu_s2s.reply_planner.evidence import LabelEvidence
from telugu_s2s.slot_values import (
    OPEN_TYPES,
    SlotValueTagger,
    delexicalize_known,
    extract_slots,
    fill,
    slot_names,
)
from telugu_s2s.text_distance import edit_distance
from telugu_s2s.text_topics import NaiveBayesTopics
from telugu_s2s.trigram_index import TrigramIndex, unit_rows

MODEL_FILE = "reply_planner.json.gz"
DEFAULT_DIR = REPO_ROOT / "checkpoints" / "reply_planner"
FORMAT = "telugu_s2s.reply_planner/1"
SIMILAR_TURNS = 30  # user turns of any state that slot values are read with
# Replies chosen by least risk over the 4 likeliest states (`ReplyPlanner._least_risk`).
# 300 validation dialogs, the judge's transcripts, reply CER against the nearest valid reply:
# 1 (the likeliest state's reply) 0.211, 2 0.209, 4 0.201, 6 0.204; the opening turn 0.49 ->
# 0.41. The user's words: 0.187 -> 0.177. Sharpening the posterior (weights p^2) was worse.
RISK_STATES = 4
# The emission's scale and its centroid share, chosen on the same 300 dialogs once states
# could span topics (session 18). Judge transcripts, reply CER: 20 / 0.5 0.200, 25-30 /
# 0.8-1.0 0.194-0.195, 40 / 0.8 0.212; the user's words 0.173 -> 0.171 at 30 / 0.8. With the
# emotion's evidence beside it (session 21), a scale of 20 / 22.5 / 25 / 30 / 35 gave 0.162 /
# 0.161 / 0.161 / 0.165 / 0.170.
SHARPNESS, CENTROID_WEIGHT = 25.0, 0.8
# A likely state (posterior at least COMPLETE_RATIO of the likeliest's, among the
# COMPLETE_STATES likeliest) with every value known is said before the likeliest state's
# broken reply (`ReplyPlanner._complete_reply`). 300 validation dialogs, reply CER / slot
# recall, the user's words | the judge's transcripts: none 0.160 / 0.811 | 0.190 / 0.635;
# any of the 4 0.162 / 0.821 | 0.196 / 0.628 (a misheard value sent the reply to a wrong
# state); ratio 0.1 0.159 / 0.813 | 0.189 / 0.635.
COMPLETE_STATES, COMPLETE_RATIO = 4, 0.1
# The user's emotion weighs the states (`LabelEvidence`): a naive Bayes over all training
# turns pools every phrasing of a feeling, where a state has a handful. Its posterior is
# sharp, so it is tempered. Chosen on the 300 validation dialogs (docs/training_s2s.md,
# session 21).
EMOTION_WEIGHT = 0.5
# So does the kind of fact the user asks back (a name, a town, another fact, none), at naive
# Bayes's own weight. 300 validation dialogs, reply CER / slot recall, the user's words |
# the judge's transcripts: none 0.134 / 0.847 | 0.161 / 0.658; 0.5 0.133 / 0.884 | 0.160 /
# 0.684; 0.75 0.134 / 0.895 | 0.161 / 0.692; 1.0 0.134 / 0.900 | 0.162 / 0.695; 1.5 0.144 /
# 0.895 | 0.171 / 0.689 (session 23).
RECALLED_WEIGHT = 1.0


def _complete(template: str, values: dict[str, str]) -> bool:
    """Whether every slot of `template` has a value."""
    return all(name in values for name in slot_names(template))


@dataclass
class Plan:
    text: str  # the reply to say, slots filled
    template: str  # the same with `{slot}` names
    slots: dict[str, str]  # every slot value the session knows, this turn's included
    values: list[tuple[str, str]]  # (type, value) the tagger found in the session, in order
    state: int  # the likeliest dialog state (reply set)
    confidence: float  # its posterior probability


class ReplyPlanner:
    """A hidden Markov model over dialog states, read from the training dialogs.

    A state is a set of valid replies (per style, slots named): the turns that may be
    answered alike. Transitions are the counts of consecutive turns' states, mixed with the
    states' overall frequencies at weight `floor`: a user may leave the paths the corpus
    knows (ask back a fact, add a remark) at any turn. The first turn's state has its own
    counts. The emission score of a state mixes the highest cosine similarity between the
    user's words and that state's user turns with the similarity to their centroid (weight
    `centroid_weight`), times `sharpness`. The centroid weighs the words that all of a
    state's phrasings share (ఊరు in "which town did I say?"), so a held-out phrasing is
    not pulled to the state of a turn that shares only its frame ("which name did I say?").
    A state's score also gains the log-probability, under the user's words, of its turns'
    emotion (`emotion`) and of the kind of fact that its replies recall (`recalled`), each
    tempered by its weight (`LabelEvidence`; None: unused).
    """

    def __init__(
        self, replies: list[dict[str, list[str]]], topics: list[str | list[str]], users: list[str],
        user_states: list[int], starts: list[float], transitions: list[tuple[int, int, float]],
        var_types: dict[str, str] | None = None, tagger: SlotValueTagger | None = None,
        sharpness: float = SHARPNESS, floor: float = 0.01,
        centroid_weight: float = CENTROID_WEIGHT,
        state_var_types: list[dict[str, str]] | None = None, risk_states: int = RISK_STATES,
        emotion: LabelEvidence | None = None, recalled: LabelEvidence | None = None,
    ):  # fmt: skip
        S = len(replies)
        if not S or len(topics) != S or not users or len(users) != len(user_states):
            raise ValueError("a reply planner needs states with topics and user turns for them")
        self.replies, self.users = replies, users
        # A state's topics: every topic whose dialogs have it. Openers and recall turns are
        # common to all; labelled with one, a recall was barred from other topics' sessions.
        self.topics = [[t] if isinstance(t, str) else sorted(t) for t in topics]
        self.user_states = np.asarray(user_states, dtype=np.int64)  # (R,)
        self.starts = np.asarray(starts, dtype=np.float64)  # (S,) first-turn counts
        self.transitions = transitions  # (from, to, count)
        self.sharpness, self.floor = sharpness, floor
        self.var_types = var_types or {}  # slot var -> lexicon type, for the tagger's values
        # The same var names another type in another schema (`n`: people or a count), so a
        # state's own types come first.
        self.state_var_types = state_var_types or [{} for _ in range(S)]
        if len(self.state_var_types) != S:
            raise ValueError("a reply planner needs one slot-type map per state")
        self.tagger = tagger
        self._topic_masks: dict[str, np.ndarray | None] = {}
        self.risk_states = risk_states  # 1: the likeliest state's reply; more: least risk
        self.emotion, self.recalled = emotion, recalled
        for what, evidence in (("emotion", emotion), ("recalled kind", recalled)):
            if evidence is not None and len(evidence) != S:
                raise ValueError(f"a reply planner's {what} model needs label counts per state")
        start = self.starts + 1e-3
        self.log_start = np.log(start / start.sum())  # (S,)
        seen = np.bincount(self.user_states, minlength=S) + 1.0  # (S,) how often each state is
        self.marginal = seen / seen.sum()  # where a session that left its path may land
        rows, cols, counts = zip(*transitions, strict=True) if transitions else ((), (), ())
        from scipy import sparse

        matrix = sparse.csr_matrix((counts, (rows, cols)), shape=(S, S), dtype=np.float64)
        totals = np.asarray(matrix.sum(axis=1)).ravel()
        self.next_state = sparse.diags(1.0 / np.maximum(totals, 1e-9)) @ matrix  # rows sum to 1
        self.index = TrigramIndex(users)
        self.centroid_weight = centroid_weight
        members = sparse.csr_matrix(
            (np.ones(len(users)), (self.user_states, np.arange(len(users)))), shape=(S, len(users))
        )
        self.centroids = unit_rows(members @ self.index.matrix).tocsr()  # (S, V)
        self.user_vars: list[list[str]] = [[] for _ in range(S)]  # slots its user turns state
        for text, state in zip(users, self.user_states, strict=True):
            for var in slot_names(text):
                if var not in self.user_vars[state]:
                    self.user_vars[state].append(var)

    def state_users(self, state: int) -> list[str]:
        """The distinct user turns (slots named) that the training dialogs answered with `state`."""
        return list(dict.fromkeys(self.users[i] for i in np.flatnonzero(self.user_states == state)))

    @property
    def num_states(self) -> int:
        return len(self.replies)

    def prior(self, belief: np.ndarray | None) -> np.ndarray:
        """log P(state) (S,) before the user's turn, from the previous turn's posterior."""
        if belief is None:
            return self.log_start
        moved = self.next_state.T @ belief  # (S,)
        return np.log((1.0 - self.floor) * moved + self.floor * self.marginal)

    def step(
        self, belief: np.ndarray | None, user_text: str, style: str,
        known: dict[str, str] | None = None, topic: str | None = None,
        values: list[tuple[str, str]] | None = None,
    ) -> tuple[np.ndarray, Plan]:  # fmt: skip
        """The posterior (S,) after `user_text` and the reply to say, in `style` (formal,
        casual; a state without it gives its first style), with the session's `known`
        slot values and tagged `values`; `topic` (the session's, when known) keeps that
        topic's states."""
        known = dict(known or {})
        query = self.index.vectors([delexicalize_known(user_text, known)])  # (1, V)
        similarity = (query @ self.index.matrix.T).toarray()[0]  # (R,)
        emission = np.zeros(self.num_states)
        np.maximum.at(emission, self.user_states, similarity)
        central = (query @ self.centroids.T).toarray()[0]  # (S,)
        emission = (1 - self.centroid_weight) * emission + self.centroid_weight * central
        log_post = self.prior(belief) + self.sharpness * emission  # (S,)
        for evidence in (self.emotion, self.recalled):
            if evidence is not None:
                log_post = log_post + evidence(user_text)
        keep = self._topic_mask(topic)
        if keep is not None:
            log_post = np.where(keep, log_post, -np.inf)
        posterior = np.exp(log_post - log_post.max())
        posterior /= posterior.sum()
        state = int(posterior.argmax())
        # Slot values: read with the chosen state's user turns and the most similar ones of
        # any state (a held-out phrasing may share its words with another schema's turn).
        similar = [self.users[i] for i in np.argsort(-similarity)[:SIMILAR_TURNS]]
        templates = list(dict.fromkeys(self.state_users(state) + similar))
        aligned = extract_slots(templates, user_text)
        if self.tagger is not None:  # a misaligned span is made of ordinary words
            aligned = {k: self.tagger.canonical(v) for k, v in aligned.items()
                       if self.tagger.could_be_value(v)}  # fmt: skip
        said = self.tagger.tag(user_text) if self.tagger else []
        aligned = self._one_word_open(state, aligned, said)
        slots = {**self._bind(state, said, aligned), **aligned, **known}  # first mention stands
        values = list(values or []) + said
        choice = self._complete_reply(posterior, state, style, slots, values)
        if self.risk_states > 1:
            choice = self._least_risk(posterior, style, slots, values, choice)
        template, resolved = choice
        plan = Plan(
            fill(template, resolved), template, slots, values, state, float(posterior[state])
        )
        return posterior, plan

    def _complete_reply(self, posterior: np.ndarray, state: int, style: str,
                        slots: dict[str, str],
                        values: list[tuple[str, str]]) -> tuple[str, dict[str, str]]:  # fmt: skip
        """The likeliest state's first reply whose slots are all known; else the complete
        reply of the likeliest state that is nearly as likely (COMPLETE_RATIO); else the
        likeliest state's first reply. A reply with a value missing says a broken sentence
        ("మర్చిపోలేదండి, మీది "); with another state nearly as likely, the state is often wrong:
        "will you forget my name?" taken for "will you forget my town?" in a session that
        never told the town."""
        filled = self._options(state, style, slots, values)
        # Below the ratio the state is sure: its value was misheard, not the state.
        nearly = (int(s) for s in np.argsort(-posterior)[:COMPLETE_STATES]
                  if s != state and posterior[s] >= COMPLETE_RATIO * posterior[state])  # fmt: skip
        options = chain([filled], (self._options(s, style, slots, values) for s in nearly))
        return next(((t, v) for replies in options for t, v in replies if _complete(t, v)),
                    filled[0])  # fmt: skip

    def _options(self, state: int, style: str, slots: dict[str, str],
                 values: list[tuple[str, str]]) -> list[tuple[str, dict[str, str]]]:  # fmt: skip
        """`state`'s replies in `style` (else its first style), each with its slot values."""
        options = self.replies[state].get(style) or next(iter(self.replies[state].values()))
        return [(t, self._resolve(t, state, slots, values)) for t in options]

    def _least_risk(self, posterior: np.ndarray, style: str, slots: dict[str, str],
                    values: list[tuple[str, str]],
                    likeliest: tuple[str, dict[str, str]]) -> tuple[str, dict[str, str]]:  # fmt: skip
        """Minimum Bayes risk: of the likeliest state's reply (`likeliest`) and the
        `risk_states` likeliest states' replies whose slots are all known, the one with the
        fewest expected edits to the nearest reply of a state drawn from the posterior. When
        the words do not tell two states apart (an opening greeting), this says what their
        replies share instead of betting on one."""
        top = np.argsort(-posterior)[: self.risk_states]  # (K,)
        weights = posterior[top] / posterior[top].sum()  # (K,)
        options = [self._options(int(s), style, slots, values) for s in top]
        references = [[fill(t, v) for t, v in state] for state in options]
        candidates = [likeliest] + [
            (t, v) for state in options for t, v in state if _complete(t, v)
        ]
        risks = []
        for text in (fill(t, v) for t, v in candidates):
            risks.append(sum(w * min(edit_distance(text, r) for r in refs)
                             for w, refs in zip(weights, references, strict=True)))  # fmt: skip
        return candidates[int(np.argmin(risks))]

    def _topic_mask(self, topic: str | None) -> np.ndarray | None:
        """(S,) the states that `topic`'s dialogs have; None: keep all (no topic, or one
        that no state has)."""
        if topic is None:
            return None
        if topic not in self._topic_masks:
            mask = np.array([topic in ts for ts in self.topics])
            self._topic_masks[topic] = mask if mask.any() else None
        return self._topic_masks[topic]

    def _one_word_open(self, state: int, aligned: dict[str, str],
                       said: list[tuple[str, str]]) -> dict[str, str]:  # fmt: skip
        """A name or a town is one word: a longer aligned span ran on past it ("హారిక
        సూర్యాపేట నుంచి"). It keeps the word of it that the tagger read as the slot's type,
        else the slot is left to the tagger's values; so too a word that reads as an ordinary
        one (`SlotValueTagger.could_be_open`)."""
        out = {}
        for var, value in aligned.items():
            kind = self.slot_type(state, var)
            if kind in OPEN_TYPES and len(value.split()) > 1:
                inside = [v for k, v in said if k == kind and v in value.split()]
                if not inside:
                    continue
                value = inside[0]
            tagger = self.tagger
            if kind in OPEN_TYPES and tagger is not None and not tagger.could_be_open(value):
                continue  # an ordinary word misheard, or a new phrasing's word
            out[var] = value
        return out

    def slot_type(self, state: int, var: str) -> str | None:
        """The lexicon type of slot `var` in `state`'s turns (else its commonest type)."""
        return self.state_var_types[state].get(var) or self.var_types.get(var)

    def _bind(self, state: int, said: list[tuple[str, str]], aligned: dict[str, str]):
        """This turn's tagged values (type, value) given to the slots that the chosen state's
        user turns state, in their order, by type. A held-out name or town may be tagged
        with the wrong open type (a town as a name), so an open slot takes any open value."""
        out, used = {}, set(aligned.values())
        for var in self.user_vars[state]:
            if var in aligned:
                continue
            kind = self.slot_type(state, var)
            fits = [v for k, v in said if k == kind and v not in used]
            if not fits and kind in OPEN_TYPES:
                fits = [v for k, v in said if k in OPEN_TYPES and v not in used]
            if fits:
                out[var] = fits[0]
                used.add(fits[0])
        return out

    def _resolve(self, template: str, state: int, slots: dict[str, str],
                 values: list[tuple[str, str]]):  # fmt: skip
        """The template's slot values: read ones first, else the first tagged value of the
        slot's type (a fact is stated before it is asked back)."""
        out = {}
        for name in slot_names(template):
            if name in slots:
                out[name] = slots[name]
            else:
                kind = self.slot_type(state, name)
                found = next((v for k, v in values if k == kind), None)
                if found is not None:
                    out[name] = found
        return out

    def save(self, directory: str | Path) -> Path:
        state = {"replies": self.replies, "topics": self.topics,
                 "users": self.users, "user_states": self.user_states.tolist(),
                 "starts": self.starts.tolist(), "transitions": self.transitions,
                 "var_types": self.var_types,
                 "tagger": None if self.tagger is None else self.tagger.state(),
                 "sharpness": self.sharpness, "floor": self.floor,
                 "centroid_weight": self.centroid_weight,
                 "state_var_types": self.state_var_types,
                 "risk_states": self.risk_states,
                 "emotions": None if self.emotion is None else self.emotion.model.state(),
                 "state_emotions": None if self.emotion is None else self.emotion.state_counts,
                 "emotion_weight": None if self.emotion is None else self.emotion.weight,
                 "recalled": None if self.recalled is None else self.recalled.state()}  # fmt: skip
        return save_json_export(Path(directory) / MODEL_FILE, FORMAT, state)

    @classmethod
    def load(cls, directory: str | Path) -> ReplyPlanner:
        state = load_json_export(Path(directory) / MODEL_FILE, FORMAT, "reply planner",
                                 "python -m telugu_s2s.reply_planner train")  # fmt: skip
        return cls(
            state["replies"], state["topics"], state["users"], state["user_states"],
            state["starts"], [tuple(t) for t in state["transitions"]], state["var_types"],
            None if state["tagger"] is None else SlotValueTagger.from_state(state["tagger"]),
            state["sharpness"], state["floor"], state.get("centroid_weight", 0.0),
            state.get("state_var_types"), state.get("risk_states", 1),
            None if state.get("emotions") is None else LabelEvidence(
                NaiveBayesTopics.from_state(state["emotions"]), state["state_emotions"],
                state.get("emotion_weight", EMOTION_WEIGHT),
            ),
            None if state.get("recalled") is None else LabelEvidence.from_state(state["recalled"]),
        )  # fmt: skip
