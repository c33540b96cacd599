"""How end-of-turn events are scored against a conversation's known boundaries
(`dsmlab.conversations` builds the conversations).

An event (a detector saying "the turn ended" at stream time t) belongs to the latest boundary
at or before t. It is a hit when that boundary is an end of turn not yet detected and
t - end <= tolerance (latency = t - end); a false trigger in a mid-turn pause when the
boundary is one (counted by kind: an unfinished sentence, a hesitation, or a finished sentence
inside a turn); any other event (during speech, a second event for one end, or later than the
tolerance) is a false alarm. Precision = hits / events, recall = hits / ends.

The semantic F1 sets aside the triggers in pauses between a turn's finished sentences (they
count neither as events nor as errors): there nothing in the words tells a pause from an end,
only the silence's length does. What is left is the part a detector that follows the words can
get right: ends of turn against pauses inside unfinished sentences and speech itself.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from dsmlab.conversations import END_OF_TURN, FINISHED, MID_TURN, Boundary


@dataclass
class Score:
    """How one detector's events on one conversation (or several, added) went."""

    events: int
    hits: int
    ends: int
    latencies: list[float]
    triggers: Counter = field(default_factory=Counter)  # false triggers per mid-turn kind
    pauses: Counter = field(default_factory=Counter)  # mid-turn pauses per kind

    def __add__(self, other: Score) -> Score:
        return Score(
            self.events + other.events,
            self.hits + other.hits,
            self.ends + other.ends,
            self.latencies + other.latencies,
            self.triggers + other.triggers,
            self.pauses + other.pauses,
        )


def score_events(
    events: Sequence[float], boundaries: Sequence[Boundary], tolerance_s: float
) -> Score:
    """See the module docstring."""
    times = np.array([b.time for b in boundaries])
    detected: set[int] = set()
    hits, triggers, latencies = 0, Counter(), []
    for t in sorted(events):
        owner = int(np.searchsorted(times, t + 1e-9)) - 1  # latest boundary at or before t
        if owner < 0:
            continue  # during the first speech: a false alarm
        boundary = boundaries[owner]
        late = t - boundary.time
        if boundary.kind in MID_TURN:
            triggers[boundary.kind] += 1
        elif owner not in detected and late <= tolerance_s:
            detected.add(owner)
            hits += 1
            latencies.append(late)
    ends = sum(b.kind == END_OF_TURN for b in boundaries)
    pauses = Counter(b.kind for b in boundaries if b.kind in MID_TURN)
    return Score(len(events), hits, ends, latencies, triggers, pauses)


def rates(score: Score) -> dict:
    """Precision, recall, F1, the semantic precision and F1 (module docstring), and false
    triggers per mid-turn pause (all, and by kind: None for a kind the conversations have no
    pause of)."""
    recall = _ratio(score.hits, score.ends)
    precision = _ratio(score.hits, score.events)
    semantic_precision = _ratio(score.hits, score.events - score.triggers[FINISHED])
    found = {"precision": precision, "recall": recall, "f1": _f1(precision, recall)}
    found["semantic_precision"] = semantic_precision
    found["semantic_f1"] = _f1(semantic_precision, recall)
    total = sum(score.pauses.values())
    found["mid_turn_triggers_per_pause"] = sum(score.triggers.values()) / max(total, 1)
    for kind in MID_TURN:
        pauses = score.pauses[kind]
        found[f"{kind}_triggers_per_pause"] = score.triggers[kind] / pauses if pauses else None
    return found


def _ratio(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


SUMMARY = [
    "detector",
    "threshold",
    "precision",
    "recall",
    "f1",
    "semantic_f1",
    "latency_median_s",
    *(f"{kind}_triggers_per_pause" for kind in MID_TURN),
]
F1_LEVELS = (0.8, 0.9, 0.95)  # "at equal precision/recall": the fastest setting reaching each


def best_per_detector(rows: Sequence[dict]) -> list[dict]:
    """The SUMMARY columns of each detector's row with the highest F1 (first detector first),
    less the pause kinds the conversations have none of."""
    best: dict[str, dict] = {}
    for row in rows:
        if row["detector"] not in best or row["f1"] > best[row["detector"]]["f1"]:
            best[row["detector"]] = row
    there = kinds_present(list(best.values()))
    absent = {f"{k}_triggers_per_pause" for k in MID_TURN if k not in there}
    return [{k: row.get(k) for k in SUMMARY if k not in absent} for row in best.values()]


def kinds_present(rows: Sequence[dict]) -> list[str]:
    """The mid-turn pause kinds the rows' conversations have (a rate that is not None)."""
    return [k for k in MID_TURN if any(r.get(f"{k}_triggers_per_pause") is not None for r in rows)]


def latency_at_f1(
    rows: Sequence[dict], levels: Sequence[float] = F1_LEVELS, f1: str = "f1"
) -> list[dict]:
    """Per detector, the lowest median latency among its settings whose F1 (the column `f1`:
    "f1" or "semantic_f1") reaches each level (None where none does): detectors compared at
    equal accuracy."""
    table = []
    for name in dict.fromkeys(r["detector"] for r in rows):
        mine = [r for r in rows if r["detector"] == name and r.get("latency_median_s") is not None]
        entry: dict = {"detector": name}
        for level in levels:
            good = [r for r in mine if r[f1] >= level]
            fastest = min(good, key=lambda r: r["latency_median_s"]) if good else None
            entry[f"latency_s_at_{f1}_{level}"] = fastest and fastest["latency_median_s"]
            entry[f"setting_at_{f1}_{level}"] = fastest and fastest["threshold"]
        table.append(entry)
    return table
