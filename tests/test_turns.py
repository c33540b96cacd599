"""eval.turns: conversations with known turn ends, events scored against them, three detectors."""

import json
import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from eval import turns
from eval.turn_streams import (
    END_OF_TURN,
    MID_TURN,
    Boundary,
    build_conversation,
    rates,
    score_events,
)

RATE = 100  # samples per second: times are easy to read


def utterance(name, words):
    """Audio of ones where words are spoken, zeros elsewhere, 0.3 s after the last word."""
    length = round((words[-1][2] + 0.3) * RATE)
    audio = np.zeros(length, np.float32)
    for _, start, end in words:
        audio[round(start * RATE) : round(end * RATE)] = 1.0
    return SimpleNamespace(
        id=name, audio=audio, words=[{"word": w, "start": s, "end": e} for w, s, e in words]
    )


def test_a_conversation_knows_its_turn_ends_and_mid_turn_pauses():
    first = utterance("a", [("one", 0.1, 0.4), ("two", 0.5, 0.8), ("three", 0.9, 1.2)])
    second = utterance("b", [("four", 0.2, 0.6)])  # too short for a mid-turn pause
    rng = random.Random(0)
    found = build_conversation([first, second], RATE, 2.0, [0.7], rng)
    # the pause goes at the only inner boundary of "a" (after "two"... or "one")
    mid, end_a, end_b = found.boundaries
    assert mid.kind == MID_TURN and end_a.kind == END_OF_TURN and end_b.kind == END_OF_TURN
    assert mid.time in (0.4, 0.8) and mid.pause_s == pytest.approx(0.1 + 0.7)
    assert end_a.time == pytest.approx(1.2 + 0.7)
    # "a" lasts 1.5 s + 0.7 s of pause, then 2 s of gap, then "b" starts speaking at 0.2 s
    assert end_a.pause_s == pytest.approx(0.3 + 2.0 + 0.2)
    assert end_b.time == pytest.approx(1.5 + 0.7 + 2.0 + 0.6)
    assert found.duration_s == pytest.approx(1.5 + 0.7 + 2.0 + 0.9 + 2.0)
    # the audio is speech exactly where the boundaries say it is not
    for b in found.boundaries:
        gap = found.audio[round(b.time * RATE) + 1 : round((b.time + b.pause_s) * RATE) - 1]
        assert gap.max() == 0.0
        assert found.audio[round(b.time * RATE) - 2] == 1.0
    assert found.source_ids == ["a", "b"]


def test_events_are_scored_against_the_latest_boundary():
    boundaries = [
        Boundary(1.0, MID_TURN, 0.8),
        Boundary(3.0, END_OF_TURN, 3.0),
        Boundary(9.0, END_OF_TURN, 3.0),
    ]
    events = [0.5, 1.4, 3.6, 3.9, 11.9]  # speech, mid-turn, hit, second event, too late
    score = score_events(events, boundaries, tolerance_s=2.5)
    assert (score.events, score.hits, score.ends) == (5, 1, 2)
    assert score.mid_turn_triggers == 1 and score.mid_turn_pauses == 1
    assert score.latencies == [pytest.approx(0.6)]
    assert rates(score) == {"precision": 0.2, "recall": 0.5, "f1": pytest.approx(2 / 7)}


def test_unmute_policy_resets_on_the_first_word_and_fires_once_per_turn():
    times = (np.arange(40) + 1) * 0.08
    probs = np.full(40, 0.9)
    probs[15:25] = 0.1  # speaking
    events = turns.unmute_events(times, probs, word_times=[1.3, 1.6], threshold=0.6)
    # warm-up: no update for 12 steps; the first word (1.3 s) resets the average to 0; the
    # probability rises again at step 25 (2.08 s): one event, not one per frame
    assert events == [pytest.approx(times[25])]
    assert turns.unmute_events(times, probs, word_times=[], threshold=0.6) == []


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
    assert set(rows) == {"head 0", "head 1", "head 2", "head 3", "unmute", "silero"}
    assert report["ends_of_turn"] == 4
    # silero on exact silence finds every end, half a second of pause rule (+ its chunking) late
    assert rows["silero"]["recall"] == 1.0
    assert 0.5 <= rows["silero"]["latency_median_s"] < 0.8
    low, high = rows["silero"]["f1_ci95"]
    assert low <= rows["silero"]["f1"] <= high
    for name in ("turns_pr.png", "turns_latency.png", "turns.csv"):
        assert (out / name).stat().st_size > 100
