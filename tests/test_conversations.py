"""dsmlab.conversations: turns between two voices, pauses of each kind, exact boundaries."""

import random
from types import SimpleNamespace

import numpy as np
import pytest

from dsmlab.conversations import (
    END_OF_TURN,
    FINISHED,
    HESITATION,
    MARGIN_S,
    MID_TURN,
    UNFINISHED,
    build_conversation,
    plan_turns,
)

RATE = 100  # samples per second: times are easy to read


def utterance(name, words, speaker=None):
    """Audio of ones where words are spoken, zeros elsewhere, 0.3 s after the last word."""
    length = round((words[-1][2] + 0.3) * RATE)
    audio = np.zeros(length, np.float32)
    for _, start, end in words:
        audio[round(start * RATE) : round(end * RATE)] = 1.0
    words = [{"word": w, "start": s, "end": e} for w, s, e in words]
    return SimpleNamespace(id=name, audio=audio, words=words, speaker=speaker)


def test_pauses_of_each_kind_sit_where_the_words_say():
    a = utterance("a", [("i", 0.5, 0.7), ("want", 0.7, 1.0), ("the", 1.0, 1.2), ("cake", 1.2, 1.6)])
    b = utterance("b", [("yes", 0.4, 0.9)])
    c = utterance("c", [("fine", 0.3, 0.8), ("thanks", 0.8, 1.3)])
    turns = [[a, b], [c]]
    found = build_conversation(turns, RATE, [2.0], [0.7], random.Random(0), unfinished_share=1.0)
    kinds = [x.kind for x in found.boundaries]
    # "a" pauses after "the" (a sentence cannot end there), "b" has one word: no inner pause
    assert kinds == [UNFINISHED, FINISHED, END_OF_TURN, UNFINISHED, END_OF_TURN]
    spoken = [w["word"] for w in found.words]
    assert spoken == ["i", "want", "the", "cake", "yes", "fine", "thanks"]
    ends = {w["word"]: w["end"] for w in found.words}
    assert found.boundaries[0].time == pytest.approx(ends["the"])
    assert found.boundaries[1].time == pytest.approx(ends["cake"])
    # every silence lasts what was asked, up to the margins kept around the words
    for boundary, asked in zip(found.boundaries[:-1], [0.7, 0.7, 2.0, 0.7], strict=True):
        assert boundary.pause_s == pytest.approx(asked, abs=MARGIN_S + 1e-6)
    # the audio is silent exactly inside each pause, speech right before it
    for x in found.boundaries:
        inside = found.audio[round(x.time * RATE) + 1 : round((x.time + x.pause_s) * RATE) - 1]
        assert inside.max() == 0.0
        assert found.audio[round(x.time * RATE) - 1] == 1.0
    # word times are the audio's: ones inside every word
    for w in found.words:
        assert found.audio[round(w["start"] * RATE) + 1 : round(w["end"] * RATE) - 1].min() == 1
    assert found.source_ids == ["a", "b", "c"]


def test_a_pause_after_a_filler_is_a_hesitation_whatever_precedes_it():
    """The filler wins over a word a sentence cannot end on ("the"): the pause is the
    speaker's, after "uh", and scored as its own kind."""
    words = [("i", 0.2, 0.4), ("want", 0.4, 0.7), ("the", 0.7, 0.9), ("uh,", 0.9, 1.3)]
    a = utterance("a", [*words, ("cake", 1.3, 1.7)])
    found = build_conversation([[a]], RATE, [1.0], [0.8], random.Random(3), unfinished_share=1.0)
    assert [x.kind for x in found.boundaries] == [HESITATION, END_OF_TURN]
    ends = {w["word"]: w["end"] for w in found.words}
    assert found.boundaries[0].time == pytest.approx(ends["uh,"])
    assert found.boundaries[0].pause_s == pytest.approx(0.8, abs=MARGIN_S + 1e-6)
    assert HESITATION in MID_TURN


def test_without_a_word_a_sentence_cannot_end_on_the_pause_goes_at_an_inner_boundary():
    a = utterance("a", [("dogs", 0.1, 0.4), ("bark", 0.4, 0.8)])
    found = build_conversation([[a]], RATE, [1.0], [0.5], random.Random(0), unfinished_share=1.0)
    assert [x.kind for x in found.boundaries] == [UNFINISHED, END_OF_TURN]
    assert found.boundaries[0].time == pytest.approx(found.words[0]["end"])


def test_turns_alternate_between_two_speakers_with_distinct_sentences():
    pool = [utterance(f"{s}{k}", [("w", 0.1, 0.2)], speaker=s) for s in "xyz" for k in range(3)]
    plans = plan_turns(pool, conversations=20, turns=4, max_sentences=3, rng=random.Random(1))
    for plan in plans:
        speakers = [{u.speaker for u in turn} for turn in plan]
        assert all(len(s) == 1 for s in speakers)  # one voice per turn
        assert speakers[0] == speakers[2] != speakers[1] == speakers[3]
        assert all(len({u.id for u in turn}) == len(turn) for turn in plan)
        assert all(1 <= len(turn) <= 3 for turn in plan)
    assert {len(turn) for plan in plans for turn in plan} == {1, 2, 3}
