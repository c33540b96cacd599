"""eval.turns: conversations with known turn ends, events scored against them, three detectors."""

import json

import numpy as np
import pytest
import torch

from dsmlab.conversations import (
    END_OF_TURN,
    FINISHED,
    HESITATION,
    UNFINISHED,
    Boundary,
    Conversation,
)
from eval import turns
from eval.turn_streams import best_per_detector, latency_at_f1, rates, score_events


def test_events_are_scored_against_the_latest_boundary():
    boundaries = [
        Boundary(1.0, UNFINISHED, 0.8),
        Boundary(2.5, FINISHED, 0.4),
        Boundary(3.0, END_OF_TURN, 3.0),
        Boundary(9.0, END_OF_TURN, 3.0),
    ]
    events = [0.5, 1.4, 1.5, 2.6, 3.6, 3.9, 11.9]  # speech, 2 unfinished, finished, hit, ...
    score = score_events(events, boundaries, tolerance_s=2.5)  # ... second event, too late
    assert (score.events, score.hits, score.ends) == (7, 1, 2)
    assert score.triggers == {UNFINISHED: 2, FINISHED: 1}
    assert score.latencies == [pytest.approx(0.6)]
    assert rates(score) == {
        "precision": pytest.approx(1 / 7),
        "recall": 0.5,
        "f1": pytest.approx(2 / 9),
        "semantic_precision": pytest.approx(1 / 6),  # the finished pause's trigger set aside
        "semantic_f1": pytest.approx(1 / 4),
        "mid_turn_triggers_per_pause": 1.5,
        "unfinished_triggers_per_pause": 2.0,
        "hesitation_triggers_per_pause": None,  # no pause of that kind: no rate, not 0
        "finished_triggers_per_pause": 1.0,
    }
    hesitating = [*boundaries[:3], Boundary(7.0, HESITATION, 1.0), boundaries[3]]
    score = score_events([*events, 7.5, 7.9], hesitating, tolerance_s=2.5)
    assert score.triggers == {UNFINISHED: 2, FINISHED: 1, HESITATION: 2}
    assert rates(score)["hesitation_triggers_per_pause"] == 2.0
    assert rates(score)["mid_turn_triggers_per_pause"] == pytest.approx(5 / 3)


def test_the_semantic_f1_forgives_only_pauses_after_finished_sentences():
    boundaries = [
        Boundary(1.0, FINISHED, 1.0),
        Boundary(2.5, END_OF_TURN, 3.0),
        Boundary(7.0, UNFINISHED, 1.0),
        Boundary(9.0, END_OF_TURN, 3.0),
    ]
    waits_out_the_silence = rates(score_events([1.5, 2.8, 9.3], boundaries, tolerance_s=2.5))
    assert waits_out_the_silence["f1"] == pytest.approx(0.8)
    assert waits_out_the_silence["semantic_f1"] == 1.0
    hears_no_words = rates(score_events([2.8, 7.5, 9.3], boundaries, tolerance_s=2.5))
    assert hears_no_words["f1"] == hears_no_words["semantic_f1"] == pytest.approx(0.8)


def test_the_summary_keeps_the_best_setting_and_only_the_pause_kinds_there_are():
    kinds = {"unfinished_triggers_per_pause": 0.1, "hesitation_triggers_per_pause": None}
    rows = [
        {"detector": "a", "threshold": 0.5, "f1": 0.9, **kinds},
        {"detector": "a", "threshold": 0.3, "f1": 0.7, **kinds},
        {"detector": "b", "threshold": 1.0, "f1": 0.8, **kinds},
    ]
    best = best_per_detector(rows)
    assert [(r["detector"], r["threshold"]) for r in best] == [("a", 0.5), ("b", 1.0)]
    assert "unfinished_triggers_per_pause" in best[0]
    assert "hesitation_triggers_per_pause" not in best[0]
    rows[2]["hesitation_triggers_per_pause"] = 0.0  # one detector's rate: the column stays
    assert all("hesitation_triggers_per_pause" in r for r in best_per_detector(rows))


def test_detectors_are_compared_at_equal_f1_by_their_fastest_setting():
    rows = [
        {"detector": "a", "threshold": 0.5, "f1": 0.95, "latency_median_s": 0.4},
        {"detector": "a", "threshold": 0.3, "f1": 0.85, "latency_median_s": 0.2},
        {"detector": "b", "threshold": 1.0, "f1": 0.82, "latency_median_s": 1.0},
        {"detector": "b", "threshold": 0.2, "f1": 0.5, "latency_median_s": 0.2},
    ]
    a, b = latency_at_f1(rows, levels=(0.8, 0.9))
    assert (a["latency_s_at_f1_0.8"], a["setting_at_f1_0.8"]) == (0.2, 0.3)
    assert (a["latency_s_at_f1_0.9"], a["setting_at_f1_0.9"]) == (0.4, 0.5)
    assert (b["latency_s_at_f1_0.8"], b["latency_s_at_f1_0.9"]) == (1.0, None)
    for row, semantic in zip(rows, (0.95, 0.95, 0.9, 0.5), strict=True):
        row["semantic_f1"] = semantic
    a, b = latency_at_f1(rows, levels=(0.9,), f1="semantic_f1")
    assert (a["latency_s_at_semantic_f1_0.9"], a["setting_at_semantic_f1_0.9"]) == (0.2, 0.3)
    assert b["latency_s_at_semantic_f1_0.9"] == 1.0


def test_unmute_policy_resets_on_the_first_word_and_fires_once_per_turn():
    times = (np.arange(40) + 1) * 0.08
    probs = np.full(40, 0.9)
    probs[15:25] = 0.1  # speaking
    words = [(1.3, 1.0), (1.6, 1.3)]  # (time out, start)
    events = turns.unmute_events(times, probs, words, threshold=0.6)
    # warm-up: no update for 12 steps; the first word (1.3 s) resets the average to 0; the
    # probability rises again at step 25 (2.08 s): one event, not one per frame
    assert events == [pytest.approx(times[25])]
    assert turns.unmute_events(times, probs, [], threshold=0.6) == []


def test_only_new_speech_rearms_the_policy_when_asked():
    times = (np.arange(60) + 1) * 0.08
    probs = np.full(60, 0.9)
    probs[15:20] = 0.1
    # a word out at 1.3 s; the turn's last word comes out at 2.4 s, a delay after it was
    # spoken (start 1.5 s), after the policy fired at 1.68 s; new speech starts at 3.5 s
    words = [(1.3, 1.0), (2.4, 1.5), (4.0, 3.5)]
    fired = turns.unmute_events(times, probs, words, threshold=0.6)
    assert fired == [pytest.approx(1.68), pytest.approx(2.48), pytest.approx(4.08)]
    by_start = turns.unmute_events(times, probs, words, threshold=0.6, by_start=True)
    assert by_start == [pytest.approx(1.68), pytest.approx(4.08)]


def test_the_words_oracle_waits_after_finished_sentences_only_while_silence_lasts():
    boundaries = [
        Boundary(1.0, UNFINISHED, 2.0),  # never: the sentence goes on
        Boundary(4.0, FINISHED, 0.5),  # speech resumes before the wait is over
        Boundary(6.0, FINISHED, 1.5),
        Boundary(9.0, END_OF_TURN, 3.0),
    ]
    talk = Conversation(np.zeros(10, np.float32), 16000, boundaries)
    assert turns.oracle_events(talk, 1.0) == [7.0, 10.0]
    assert turns.oracle_events(talk, 0.4) == [pytest.approx(4.4), 6.4, 9.4]


def test_silero_events_need_the_pause_rule_of_silence():
    chunk = 512 / 16000
    speech = torch.tensor([0.9] * 10 + [0.1] * 5 + [0.9] * 5 + [0.1] * 40)
    found = turns.silero_events(speech, pause_s=0.3)
    # 5 silent chunks (0.16 s) is not a pause of 0.3 s; the final silence is, 10 chunks in
    assert found == [pytest.approx((20 + 10) * chunk)]


@pytest.mark.slow
def test_eval_turns_end_to_end(tmp_path):
    out = tmp_path / "turns"
    args = ["--model", "synth-d2", "--conversations", "2", "--turns", "2"]
    args += ["--thresholds", "0.5", "--pauses", "0.5", "--out", str(out)]
    assert turns.main(args) == 0
    report = json.loads((out / "turns.json").read_text())
    rows = {r["detector"]: r for r in report["rows"]}
    heads = {"head 0", "head 1", "head 2", "head 3"}
    assert set(rows) == {*heads, "unmute", turns.UNMUTE_BY_START, "silero", "words oracle"}
    assert report["ends_of_turn"] == 4
    assert report["unfinished_pauses"] + report["finished_pauses"] > 0
    assert [r["detector"] for r in report["latency_at_f1"]] == list(rows)
    # silero on exact silence finds every end, half a second of pause rule (+ its chunking) late
    assert rows["silero"]["recall"] == 1.0
    assert 0.5 <= rows["silero"]["latency_median_s"] < 0.8
    low, high = rows["silero"]["f1_ci95"]
    assert low <= rows["silero"]["f1"] <= high
    oracle = rows["words oracle"]  # never inside a sentence, every end half a second late
    assert oracle["recall"] == 1.0 and oracle["latency_median_s"] == pytest.approx(0.5)
    assert oracle["unfinished_triggers_per_pause"] in (0.0, None)
    assert oracle["semantic_f1"] == 1.0  # its triggers are all after finished sentences
    low, high = oracle["semantic_f1_ci95"]
    assert low <= 1.0 == high
    semantic = {r["detector"]: r for r in report["latency_at_semantic_f1"]}
    assert semantic["words oracle"]["latency_s_at_semantic_f1_0.95"] == pytest.approx(0.5)
    for name in ("turns_pr.png", "turns_latency.png", "turns.csv"):
        assert (out / name).stat().st_size > 100


@pytest.mark.slow
def test_eval_turns_scores_hesitation_pauses_apart_on_the_hesitation_probe(tmp_path):
    """The bundled hesitation split: a pause after "uh"/"um" is its own kind, with its own rate
    of false triggers; the test split has none of them, so no rate at all."""
    args = ["--model", "synth-d2", "--conversations", "3", "--turns", "2"]
    args += ["--thresholds", "0.5", "--pauses", "0.5"]
    for split in ("hesitation", "test"):
        out = tmp_path / split
        assert turns.main([*args, "--split", split, "--out", str(out)]) == 0
        report = json.loads((out / "turns.json").read_text())
        rates = {r["detector"]: r["hesitation_triggers_per_pause"] for r in report["rows"]}
        if split == "hesitation":
            assert report["hesitation_pauses"] > 0
            assert all(rate is not None and rate >= 0 for rate in rates.values())
        else:
            assert report["hesitation_pauses"] == 0 and set(rates.values()) == {None}
