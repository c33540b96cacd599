"""Conversations whose turn ends are known, and how end-of-turn events are scored against them.

A conversation joins utterances of a dataset with word times, one utterance per turn, with
`turn_gap_s` of silence between turns. Inside each turn of three words or more, silence of
one of `mid_pauses_s` is inserted at a word boundary in its middle: a pause where the
sentence is not finished. The ground truth is exact, from the word times:

- end of turn: the end of a turn's last word;
- mid-turn pause: the end of the word before an inserted pause.

An event (a detector saying "the turn ended" at stream time t) belongs to the latest boundary
at or before t. It is a hit when that boundary is an end of turn not yet detected and
t - end <= tolerance (latency = t - end); a false trigger in a mid-turn pause when the
boundary is a mid-turn pause; any other event (during speech, a second event for one end, or
later than the tolerance) is a false alarm. Precision = hits / events, recall = hits / ends.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

END_OF_TURN, MID_TURN = "end_of_turn", "mid_turn"


@dataclass(frozen=True)
class Boundary:
    time: float  # stream seconds where the speech stops
    kind: str  # END_OF_TURN or MID_TURN
    pause_s: float  # how long the silence lasts until speech resumes (or the stream ends)


@dataclass
class Conversation:
    audio: np.ndarray  # float32 at the dataset's (the model's) sample rate
    sample_rate: int
    boundaries: list[Boundary] = field(default_factory=list)
    source_ids: list[str] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return len(self.audio) / self.sample_rate


def build_conversation(
    utterances: Sequence,
    sample_rate: int,
    turn_gap_s: float,
    mid_pauses_s: Sequence[float],
    rng: random.Random,
) -> Conversation:
    """One conversation from `utterances` (each with .audio, .words, .id), in order."""
    pieces: list[np.ndarray] = []
    marks: list[tuple[float, str]] = []  # (time, kind); pauses come from the next speech
    starts: list[float] = []  # where speech (re)starts, in order
    clock = 0.0

    def silence(seconds: float) -> np.ndarray:
        return np.zeros(round(seconds * sample_rate), dtype=np.float32)

    for turn, utt in enumerate(utterances):
        if turn:
            pieces.append(silence(turn_gap_s))
            clock += turn_gap_s
        words = utt.words
        audio = np.asarray(utt.audio, dtype=np.float32)
        cut = None
        if len(words) >= 3 and mid_pauses_s:
            k = rng.randrange(1, len(words) - 1)  # a boundary inside the sentence
            cut = (k, round((words[k - 1]["end"] + words[k]["start"]) / 2 * sample_rate))
        if cut is None:
            pieces.append(audio)
            starts.append(clock + words[0]["start"])
        else:
            k, at = cut
            pause = rng.choice(list(mid_pauses_s))
            pieces += [audio[:at], silence(pause), audio[at:]]
            starts += [clock + words[0]["start"], clock + words[k]["start"] + pause]
            marks.append((clock + words[k - 1]["end"], MID_TURN))
        shift = 0.0 if cut is None else pause
        marks.append((clock + words[-1]["end"] + shift, END_OF_TURN))
        clock += len(audio) / sample_rate + shift
    audio = np.concatenate(pieces + [silence(turn_gap_s)])
    end = len(audio) / sample_rate
    resumes = [*starts[1:], end]
    boundaries = [
        Boundary(round(t, 4), kind, round(r - t, 4))
        for (t, kind), r in zip(marks, resumes, strict=True)
    ]
    return Conversation(audio, sample_rate, boundaries, [str(u.id) for u in utterances])


@dataclass
class Score:
    """How one detector's events on one conversation went."""

    events: int
    hits: int
    ends: int
    mid_turn_triggers: int
    mid_turn_pauses: int
    latencies: list[float]

    def __add__(self, other: Score) -> Score:
        return Score(
            self.events + other.events,
            self.hits + other.hits,
            self.ends + other.ends,
            self.mid_turn_triggers + other.mid_turn_triggers,
            self.mid_turn_pauses + other.mid_turn_pauses,
            self.latencies + other.latencies,
        )


def score_events(
    events: Sequence[float], boundaries: Sequence[Boundary], tolerance_s: float
) -> Score:
    """See the module docstring."""
    times = np.array([b.time for b in boundaries])
    detected: set[int] = set()
    hits, mid, latencies = 0, 0, []
    for t in sorted(events):
        owner = int(np.searchsorted(times, t + 1e-9)) - 1  # latest boundary at or before t
        if owner < 0:
            continue  # during the first speech: a false alarm
        boundary = boundaries[owner]
        late = t - boundary.time
        if boundary.kind == MID_TURN:
            mid += 1
        elif owner not in detected and late <= tolerance_s:
            detected.add(owner)
            hits += 1
            latencies.append(late)
    ends = sum(b.kind == END_OF_TURN for b in boundaries)
    pauses = sum(b.kind == MID_TURN for b in boundaries)
    return Score(len(events), hits, ends, mid, pauses, latencies)


def rates(score: Score) -> dict:
    precision = score.hits / score.events if score.events else 0.0
    recall = score.hits / score.ends if score.ends else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


SUMMARY = [
    "detector",
    "threshold",
    "precision",
    "recall",
    "f1",
    "latency_median_s",
    "mid_turn_triggers_per_pause",
]


def best_per_detector(rows: Sequence[dict]) -> list[dict]:
    """The SUMMARY columns of each detector's row with the highest F1 (first detector first)."""
    best: dict[str, dict] = {}
    for row in rows:
        if row["detector"] not in best or row["f1"] > best[row["detector"]]["f1"]:
            best[row["detector"]] = row
    return [{k: row.get(k) for k in SUMMARY} for row in best.values()]
