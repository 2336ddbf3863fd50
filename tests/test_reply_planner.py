"""The reply planner: fitted on generated dialogs it answers held-out ones near a valid reply,
its belief over dialog states beats choosing from each turn alone, the user's emotion tells
apart states that the words do not, it reads slot values from phrasings it never saw, it saves
and loads, and the S2S generator says a plan at its own pace."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
import torch

from telugu_s2s.data.generate import GeneratorConfig, generate_dialogs
from telugu_s2s.data.text import BLANK, PAD, TextTokenizer
from telugu_s2s.evaluation.cer import ErrorRate, cer
from telugu_s2s.models.s2s_generation import S2SGenerator
from telugu_s2s.reply_planner import MODEL_FILE, ReplyPlanner, SessionPlanner, fit
from telugu_s2s.reply_planner.__main__ import main
from telugu_s2s.reply_planner.evidence import NO_RECALL, LabelEvidence, recalled_kind
from telugu_s2s.slot_values import extract_slots, fill
from telugu_s2s.text_topics import NaiveBayesTopics
from tests.test_s2s_model import CARD, K, make


@pytest.fixture(scope="module")
def dialogs():
    generated = generate_dialogs(GeneratorConfig(dialogs=400, seed=5))
    return [d for d in generated if d.split == "train"], [
        d for d in generated if d.split == "validation"
    ]


def reply_cer(planner: ReplyPlanner, dialogs, track: bool = True) -> float:
    """Every dialog as one session on its gold words; `track` off forgets the belief."""
    rate = ErrorRate()
    for dialog in dialogs:
        style = dialog.style if dialog.style in ("formal", "casual") else "casual"
        session = SessionPlanner(planner)
        for turn in dialog.turns:
            if not track:
                session.belief = None
            plan = session.reply(turn.user, style, dialog.topic if turn.index else None)
            options = (turn.valid_replies or {}).get(style)
            if options:
                rate.add(plan.text, min(options, key=lambda r: cer(plan.text, r)))
    return rate.value


def test_it_answers_held_out_dialogs_and_its_belief_helps(dialogs):
    train, held_out = dialogs
    planner = fit(train)
    tracked, alone = reply_cer(planner, held_out), reply_cer(planner, held_out, track=False)
    assert tracked < 0.45  # 1,379 states from 5,400 dialogs read 0.23 (benchmarks/reply_planner.py)
    assert tracked < alone - 0.05  # the previous turns say where the dialog is


def test_slot_values_are_read_from_unseen_phrasings():
    templates = ["నమస్తే, నేను {name}, {home}లో ఉంటాను", "నా పేరు {name}, మా ఊరు {home}"]
    said = "నమస్తే, నేను సురేష్, వరంగల్లో ఉంటాను"
    assert extract_slots(templates, said) == {"name": "సురేష్", "home": "వరంగల్"}
    # a lone slot takes the words between its anchors, up to three (values such as a time)
    one = ["నా పేరు {name}, మా ఊరు {home}"]
    assert extract_slots(one, "నా పేరు రవి కుమార్, మా ఊరు గుంటూరు") == {
        "name": "రవి కుమార్", "home": "గుంటూరు"}  # fmt: skip
    assert extract_slots(one, "నా పేరు అది ఇది ఎవరికీ తెలియదు, మా ఊరు గుంటూరు") == {"home": "గుంటూరు"}
    # two slots, one word between the anchors: which one went unsaid is unknown, so none
    assert extract_slots(["నేను {name}, {home}లో ఉంటాను"], "నేను విజయవాడలో ఉంటాను") == {}
    assert extract_slots(templates, "ఈ రోజు వర్షం పడుతుందా") == {}  # nothing aligns
    assert fill("హాయ్ {name}, {home} ఎలా ఉంది", {"name": "రవి"}) == "హాయ్ రవి, ఎలా ఉంది"


def test_a_session_state_is_small_and_plans_on_as_before(dialogs):
    train, held_out = dialogs
    planner = fit(train)
    dialog = held_out[0]
    going, style = SessionPlanner(planner), "formal"
    for turn in dialog.turns[:3]:
        going.reply(turn.user, style)
    state = json.loads(json.dumps(going.state(), ensure_ascii=False))  # as the store keeps it
    assert len(state["belief"]) <= 32 and state["slots"] == going.slots
    resumed = SessionPlanner.from_state(planner, state)
    for turn in dialog.turns[3:6]:
        assert resumed.reply(turn.user, style).text == going.reply(turn.user, style).text
    assert SessionPlanner.from_state(planner, None).belief is None
    foreign = SessionPlanner.from_state(planner, {"belief": {"999999": 1.0}})  # another export
    assert foreign.belief is None


def test_memory_off_forgets_the_slot_values(dialogs):
    planner = fit(dialogs[0])
    remembering, forgetting = SessionPlanner(planner), SessionPlanner(planner, remember=False)
    for session in (remembering, forgetting):
        session.reply("నమస్తే, నా పేరు సురేష్", "casual")
        session.reply("ఈ రోజు వాతావరణం ఎలా ఉంది?", "casual", "weather")
    assert remembering.slots.get("name") == "సురేష్"
    assert "name" not in forgetting.slots


def test_the_centroid_of_a_states_phrasings_helps_on_held_out_ones(dialogs):
    # Held-out dialogs use phrasings no training turn has: the words that all of a state's
    # phrasings share say more than the one nearest training turn.
    nearest_only = reply_cer(fit(dialogs[0], centroid_weight=0.0), dialogs[1])
    assert reply_cer(fit(dialogs[0]), dialogs[1]) < nearest_only - 0.01


class WordTagger:
    """A stand-in tagger: fixed (type, value) tags, every tagged word could be a value."""

    def __init__(self, tags: dict[str, str]):
        self.tags = tags

    def tag(self, text: str) -> list[tuple[str, str]]:
        return [(self.tags[w], w) for w in text.split() if w in self.tags]

    def could_be_value(self, value: str) -> bool:
        return value in self.tags


def test_values_said_are_bound_by_the_chosen_states_own_slot_types():
    # `n` is people in one schema and a count in another; a town no lexicon holds is tagged
    # as a name. Neither phrasing aligns with a training turn, so the tags alone place them.
    users = ["మా ఇంట్లో {n} మంది ఉన్నారు", "నాకు {n} పుస్తకాలు కావాలి", "నేను {home} నుంచి వచ్చాను"]
    replies = [{"casual": ["సరే, {n} మందికి వంట"]}, {"casual": ["సరే, {n} పుస్తకాలు ఇస్తాను"]},
               {"casual": ["{home} ఎలా ఉంది?"]}]  # fmt: skip
    tagger = WordTagger({"ఐదుగురు": "people", "మూడు": "count", "సియాటిల్": "male_name"})
    planner = ReplyPlanner(
        replies, ["food", "books", "travel"], users, [0, 1, 2], [1.0, 1.0, 1.0], [],
        {"n": "people", "home": "place"}, tagger, centroid_weight=0.0,
        state_var_types=[{"n": "people"}, {"n": "count"}, {"home": "place"}],
    )  # fmt: skip
    _, plan = planner.step(None, "పుస్తకాలు మూడు ఇవ్వండి", "casual")
    assert plan.state == 1 and plan.text == "సరే, మూడు పుస్తకాలు ఇస్తాను"
    _, plan = planner.step(None, "వచ్చాను సియాటిల్ నుంచి నేను", "casual")
    assert plan.state == 2 and plan.slots["home"] == "సియాటిల్"
    assert plan.text == "సియాటిల్ ఎలా ఉంది?"
    with pytest.raises(ValueError, match="slot-type map per state"):
        ReplyPlanner(replies, ["a", "b", "c"], users, [0, 1, 2], [1.0] * 3, [],
                     state_var_types=[{}])  # fmt: skip


def test_least_risk_says_what_likely_states_share_when_the_words_cannot_tell_them_apart(tmp_path):
    # Three openings answered alike by the user's words; the likeliest alone (40%) asks
    # about rain, the other two (60%) both offer help: the least-risk reply is one of those.
    replies = [{"casual": ["నమస్తే, ఈ రోజు వర్షం పడుతుంది"]},
               {"casual": ["హాయ్, ఏ విషయంలో సాయం కావాలో చెప్పు"]},
               {"casual": ["హాయ్, ఏ విషయంలో సాయం కావాలి"]}]  # fmt: skip
    users = ["నమస్తే"] * 3

    def planner(risk_states: int) -> ReplyPlanner:
        return ReplyPlanner(replies, ["weather"] * 3, users, [0, 1, 2], [4.0, 3.0, 3.0], [],
                            risk_states=risk_states)  # fmt: skip

    _, likeliest = planner(1).step(None, "నమస్తే", "casual")
    assert likeliest.state == 0 and "వర్షం" in likeliest.text
    _, least_risk = planner(3).step(None, "నమస్తే", "casual")
    assert least_risk.state == 0 and "సాయం" in least_risk.text  # the belief is unchanged
    # a reply whose slot is unknown is no candidate
    replies[1] = {"casual": ["హాయ్ {name}, ఏ విషయంలో సాయం కావాలో చెప్పు"]}
    _, unfilled = planner(3).step(None, "నమస్తే", "casual")
    assert unfilled.text == "హాయ్, ఏ విషయంలో సాయం కావాలి"
    planner(3).save(tmp_path)
    assert ReplyPlanner.load(tmp_path).risk_states == 3


def test_a_likely_state_with_every_value_known_is_said_before_a_broken_reply():
    # "will you forget my name?" is nearer the town question's words, but the session never
    # told its town: the town reply would say "మీది " with nothing after it.
    replies = [{"casual": ["మర్చిపోలేదు, నీది {home}"]}, {"casual": ["మర్చిపోలేదు, నువ్వు {name}"]},
               {"casual": ["సరే"]}]  # fmt: skip
    users = ["మా ఊరు మర్చిపోయారేమో", "నా పేరు మర్చిపోయారేమో", "సరే"]

    def plan(risk_states: int, known: dict[str, str], sharpness: float = 3.0):
        planner = ReplyPlanner(replies, ["greetings"] * 3, users, [0, 1, 2], [1.0] * 3, [],
                               centroid_weight=0.0, risk_states=risk_states,
                               sharpness=sharpness)  # fmt: skip
        return planner.step(None, "మా ఊరి పేరు మర్చిపోయారేమో", "casual", known)[1]

    for risk_states in (1, 2):
        told = plan(risk_states, {"name": "రవి"})
        assert told.state == 0 and told.text == "మర్చిపోలేదు, నువ్వు రవి"
    both = plan(1, {"name": "రవి", "home": "గుంటూరు"})
    assert both.text == "మర్చిపోలేదు, నీది గుంటూరు"
    # sure of the state (the value was misheard, not the state): its reply, as it is
    sure = plan(1, {"name": "రవి"}, sharpness=30.0)
    assert sure.confidence > 0.99 and sure.text == "మర్చిపోలేదు, నీది"


def test_a_state_common_to_all_topics_is_kept_under_each(dialogs, tmp_path):
    planner = fit(dialogs[0])
    common = [s for s, ts in enumerate(planner.topics) if len(ts) > 1]
    recall = next(  # the name-recall turn: it follows dialogs of every topic
        s for s in common if any("{name}" in t for t in planner.replies[s].get("casual", []))
    )  # fmt: skip
    question = planner.state_users(recall)[0]
    for topic in planner.topics[recall]:
        _, plan = planner.step(None, question, "casual", {"name": "జగదీష్"}, topic)
        assert plan.state == recall and "జగదీష్" in plan.text
    # an export from before the topic sets: one topic a state, kept as before
    planner.save(tmp_path)
    path = tmp_path / MODEL_FILE
    state = json.loads(gzip.decompress(path.read_bytes()))
    state["topics"] = [ts[0] for ts in state["topics"]]
    path.write_bytes(gzip.compress(json.dumps(state).encode()))
    assert ReplyPlanner.load(tmp_path).topics[recall] == planner.topics[recall][:1]


def test_saved_and_loaded_and_bad_files_give_clear_errors(dialogs, tmp_path):
    planner = fit(dialogs[0][:40])
    loaded = ReplyPlanner.load(planner.save(tmp_path).parent)
    belief, plan = planner.step(None, "నమస్తే, నా పేరు రవి", "formal")
    belief2, plan2 = loaded.step(None, "నమస్తే, నా పేరు రవి", "formal")
    assert plan == plan2 and np.allclose(belief, belief2)
    bad = tmp_path / "bad"
    bad.mkdir()
    with pytest.raises(FileNotFoundError, match="reply_planner train"):
        ReplyPlanner.load(bad)
    (bad / MODEL_FILE).write_bytes(b"not gzip")
    with pytest.raises(ValueError, match="not a reply planner"):
        ReplyPlanner.load(bad)
    with gzip.open(bad / MODEL_FILE, "wt") as f:
        json.dump({"format": "another"}, f)
    with pytest.raises(ValueError, match="telugu_s2s.reply_planner/1"):
        ReplyPlanner.load(bad)
    with pytest.raises(ValueError, match="valid replies"):
        fit([])


def test_the_cli_trains_and_plans(dialogs, tmp_path, capsys):
    lines = [json.dumps({"dialog_id": d.dialog_id, "topic": d.topic, "split": "train",
                         "style": d.style, "slots": {k: list(v) for k, v in d.slots.items()},
                         "turns": [{"user": t.user, "assistant": t.assistant, "topic": t.topic,
                                    "sentiment": t.sentiment, "emotion": t.emotion,
                                    "valid_replies": {k: list(v) for k, v in t.valid_replies.items()}}
                                   for t in d.turns]}, ensure_ascii=False)
             for d in dialogs[0][:60]]  # fmt: skip
    (tmp_path / "dialogs.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    main(["train", "--dataset-dir", str(tmp_path), "--out", str(tmp_path / "planner")])
    main(["plan", "నమస్తే, నా పేరు రవి", "--model", str(tmp_path / "planner")])
    out = capsys.readouterr().out
    assert "states" in out and out.strip().splitlines()[-1].startswith("నమస్తే, నా పేరు రవి\t")


def said_text(outs, slot: int) -> list[int]:
    return [int(o.text_token[slot]) for o in outs]


def test_the_generator_says_a_plan_at_its_own_pace():
    model = make()
    user = torch.randint(0, CARD, (1, K, 40)).expand(2, -1, -1)
    plan = "రవి గారు"
    runs = []
    for planned in (False, True):
        with S2SGenerator(model, batch_size=2) as gen:
            for slot in range(2):
                gen.join(slot, temperature=1.5, seed=7)
            if planned:
                gen.set_plan(0, plan)
            outs = [gen.step(user[:, :, t]) for t in range(40)]
            runs.append(outs)
            finished = gen.plans[0] is not None and gen.plans[0].said == len(gen.plans[0].ids)
    free, planned = said_text(runs[0], 0), said_text(runs[1], 0)
    speaks = [t not in (PAD, BLANK, 2) for t in free]  # the model's own pace (2: EOS)
    assert sum(speaks) > len(plan) + 1  # a random model talks a lot: the plan runs out
    expected = TextTokenizer().encode(plan) + [3]  # then a space
    said = [t for t in planned if t not in (PAD, BLANK, 2)]
    assert said == expected and finished
    # the plan starts where the model would have started to speak (then its own words differ)
    first = speaks.index(True)
    assert planned[:first] == free[:first] and planned[first] == expected[0]
    assert said_text(runs[0], 1) == said_text(runs[1], 1)  # the other slot is untouched


def test_a_silenced_slot_does_not_use_up_its_plan():
    model = make()
    user = torch.randint(0, CARD, (1, K, 20))
    with S2SGenerator(model, batch_size=1) as gen:
        gen.join(0, temperature=1.5, seed=3)
        gen.set_plan(0, "రవి")
        gen.force_silence(torch.tensor([True]))
        silent = [gen.step(user[:, :, t]) for t in range(10)]
        assert gen.plans[0].said == 0 and all(int(o.text_token[0]) == BLANK for o in silent)
        gen.force_silence(torch.tensor([True]), silent=False)
        outs = [gen.step(user[:, :, t]) for t in range(10, 20)]
    said = [t for t in said_text(outs, 0) if t not in (PAD, BLANK, 2)]
    assert said == TextTokenizer().encode("రవి") + [3]  # the plan and a space


def test_the_tagger_reads_held_out_names_and_known_values(dialogs):
    from telugu_s2s.slot_values import SlotValueTagger
    from telugu_s2s.slot_values import fit as fit_tagger

    tagger = fit_tagger(dialogs[0])
    # a name and a town no training dialog used, typed by their neighbours and case ending
    assert tagger.tag("నమస్తే, నేను జగదీష్, చిత్తూరులో ఉంటాను") == [
        ("name", "జగదీష్"), ("place", "చిత్తూరు")]  # fmt: skip
    assert tagger.tag("శనివారం ఐదు మంది వస్తారు") == [("day", "శనివారం"), ("count", "ఐదు")]
    assert tagger.tag("ఈ రోజు వాతావరణం ఎలా ఉంది") == []  # ordinary words only
    # The same misheard: near ordinary words, they need more evidence of a value than a
    # word unlike any ordinary one does.
    misheard = "నమస్తే, నేను ఎలో ఉంటాను"  # ఎలా
    assert tagger.near_ordinary("ఎలో") and not tagger.near_ordinary("జగదీష్")
    assert tagger.tag(misheard) == []
    tagger.near_margin, tagger.shape = None, None  # as any unknown word, letters aside: a name
    assert tagger.tag(misheard) == [("name", "ఎలో")]
    assert tagger.tag("నమస్తే, నేను జగదీష్, చిత్తూరులో ఉంటాను")[0] == ("name", "జగదీష్")
    assert not tagger.could_be_value("ఉంటున్నాను") and tagger.could_be_value("జగదీష్")
    again = SlotValueTagger.from_state(json.loads(json.dumps(tagger.state())))
    assert again.tag("నమస్తే, నేను జగదీష్, చిత్తూరులో ఉంటాను") == tagger.tag("నమస్తే, నేను జగదీష్, చిత్తూరులో ఉంటాను")


def test_a_misheard_closed_value_is_read_as_the_value_it_is_nearest_to(dialogs):
    from telugu_s2s.slot_values import fit as fit_tagger

    tagger = fit_tagger(dialogs[0])
    assert tagger.gazetteer["గురువారం"] == "day" and "దొరువారం" not in tagger.ordinary
    assert tagger.tag("ఈ దొరువారం వెళ్తాం") == [("day", "గురువారం")]  # two edits in eight
    assert tagger.tag("ఈ దొరుపారం వెళ్తాం") != [("day", "గురువారం")]  # three: too far
    assert tagger.canonical("దొరువారం") == "గురువారం" and tagger.canonical("ఎలా") == "ఎలా"
    # a closed value joined to an ordinary word, either side
    assert "వెళ్తాం" in tagger.ordinary and "గురువారంవెళ్తాం" not in tagger.ordinary
    assert tagger.tag("ఈ గురువారంవెళ్తాం") == [("day", "గురువారం")]
    assert tagger.tag("ఈ వెళ్తాంగురువారం") == [("day", "గురువారం")]
    assert tagger.joined_value("వెళ్తాం") is None
    # a new name near a known one stays itself: names and towns are open
    name = next(v for v, k in tagger.gazetteer.items() if k == "name" and len(v) >= 4)
    assert tagger.closest_value(name[:-1] + "ా") is None


def test_an_aligned_name_or_town_is_one_word(dialogs):
    planner = fit(dialogs[0])
    state = next(s for s in range(planner.num_states) if planner.slot_type(s, "name") == "name")
    said = [("name", "హారిక"), ("place", "సూర్యాపేట")]
    ran_on = {"name": "హారిక సూర్యాపేట నుంచి"}
    assert planner._one_word_open(state, ran_on, said) == {"name": "హారిక"}
    assert planner._one_word_open(state, ran_on, said[1:]) == {}  # no name in it: the tagger's
    assert planner._one_word_open(state, {"name": "హారిక"}, []) == {"name": "హారిక"}


def test_a_fact_said_in_any_phrasing_is_recalled_later(dialogs):
    planner = fit(dialogs[0])
    session = SessionPlanner(planner)
    session.reply("నమస్తే, నేను జగదీష్, చిత్తూరులో ఉంటాను", "casual")
    assert ("name", "జగదీష్") in session.values and ("place", "చిత్తూరు") in session.values
    state = next(  # a recall state whose casual reply names the user's home town
        s for s, r in enumerate(planner.replies)
        if any("{home}" in t and "ఊరు" in t for t in r.get("casual", []))
    )  # fmt: skip
    template = next(t for t in planner.replies[state]["casual"] if "{home}" in t)
    assert "చిత్తూరు" in fill(template, planner._resolve(template, state, {}, session.values))


def test_the_users_emotion_tells_apart_states_that_their_words_do_not(tmp_path):
    # Two states whose user turns read alike; one answers a glad user, the other a sad one.
    from telugu_s2s.text_topics import NaiveBayesTopics

    replies = [{"casual": ["భలే, చాలా హ్యాపీ"]}, {"casual": ["అయ్యో, ఏమైంది?"]}]
    users = ["నేను రవి, ఈ రోజు ఇలా ఉంది"] * 2
    emotions = NaiveBayesTopics([("చాలా సంతోషంగా ఉంది", "happy"), ("భలే హుషారుగా ఉంది", "happy"),
                                 ("చాలా బాధగా ఉంది", "sad"), ("మనసు బాగోలేదు", "sad")])  # fmt: skip

    def planner(model) -> ReplyPlanner:
        evidence = model and LabelEvidence(model, [{"happy": 3}, {"sad": 2}], weight=0.5)
        return ReplyPlanner(replies, ["greetings"] * 2, users, [0, 1], [1.0, 1.0], [],
                            centroid_weight=0.0, risk_states=1, emotion=evidence)  # fmt: skip

    sad = "నేను రవి, ఈ రోజు చాలా బాధగా ఉంది"
    blind, _ = planner(None).step(None, sad, "casual")
    assert np.allclose(blind, 0.5)  # the words alone cannot tell
    posterior, plan = planner(emotions).step(None, sad, "casual")
    assert plan.state == 1 and plan.text == "అయ్యో, ఏమైంది?" and posterior[1] > 0.6
    _, glad = planner(emotions).step(None, "నేను రవి, ఈ రోజు చాలా సంతోషంగా ఉంది", "casual")
    assert glad.state == 0
    planner(emotions).save(tmp_path)
    assert np.allclose(ReplyPlanner.load(tmp_path).step(None, sad, "casual")[0], posterior)
    with pytest.raises(ValueError, match="emotion model needs label counts per state"):
        ReplyPlanner(replies, ["greetings"] * 2, users, [0, 1], [1.0, 1.0], [],
                     emotion=LabelEvidence(emotions, [{"happy": 3}], weight=0.5))  # fmt: skip


def test_the_kind_of_fact_asked_back_tells_a_name_from_a_town(tmp_path):
    # "Have you forgotten my town's name?" in a phrasing that no recall turn has: its words
    # are nearest the name's turn ("...పేరు మర్చిపోయారేమో"), but the kind of fact it asks
    # back is read from every turn that asks back a town, in any state.
    slots = {"name": ("male_name", "రవి"), "home": ("place", "గుంటూరు")}
    replies = [{"casual": ["నీ పేరు {name}"]}, {"casual": ["నీది {home}"]}]
    assert recalled_kind("నా పేరు గుర్తుందా?", replies[0]["casual"], slots) == "name"
    assert recalled_kind("మా ఊరు గుర్తుందా?", replies[1]["casual"], slots) == "place"
    assert recalled_kind("నేను {name}", ["హాయ్ {name}"], slots) == NO_RECALL  # said, not recalled
    users = ["నా పేరు మర్చిపోయారేమో", "నా పేరు గుర్తుందా?", "మా ఊరు గుర్తుందా?"]
    states = [0, 0, 1]
    kinds = NaiveBayesTopics([("నా పేరు మర్చిపోయారేమో", "name"), ("నా పేరు గుర్తుందా?", "name"),
                              ("మా ఊరు గుర్తుందా?", "place"), ("మా ఊరి పేరు చెప్పు", "place"),
                              ("మా ఊరు మర్చిపోయారేమో", "place")])  # fmt: skip
    evidence = LabelEvidence(kinds, [{"name": 2}, {"place": 1}], weight=1.0)

    def planner(recalled) -> ReplyPlanner:
        return ReplyPlanner(replies, ["greetings"] * 2, users, states, [1.0, 1.0], [],
                            sharpness=5.0, centroid_weight=0.0, risk_states=1,
                            recalled=recalled)  # fmt: skip

    known = {"name": "రవి", "home": "గుంటూరు"}
    asked = "మా ఊరి పేరు మర్చిపోయారేమో"
    _, blind = planner(None).step(None, asked, "casual", known)
    assert blind.text == "నీ పేరు రవి"  # the words alone: the name's turn
    _, plan = planner(evidence).step(None, asked, "casual", known)
    assert plan.text == "నీది గుంటూరు"
    planner(evidence).save(tmp_path)
    assert ReplyPlanner.load(tmp_path).step(None, asked, "casual", known)[1].text == plan.text
