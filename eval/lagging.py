"""Latency metrics of simultaneous translation, adapted to streaming ASR (seconds of stream time).

For one utterance: the source X is its audio, |X| its duration in seconds; the delays d_1..d_n
are the emission times of the hypothesis words in order (the stream time at which each word's
last text token came out, counted from the start of the audio); |Y*| is the number of reference
words. As in SimulEval (the reference implementation; its package pins tqdm 4.64.1 and
bitarray 2.6.0 and pulls yt-dlp, so these few lines are written here and tested on the papers'
definitions):

    AL   = 1/tau * sum_{i=1..tau} (d_i - (i - 1) * |X| / |Y*|)         (Ma et al., 2019)
    LAAL = 1/tau * sum_{i=1..tau} (d_i - (i - 1) * |X| / max(n, |Y*|))  (Papi et al., 2022)

tau is the first i with d_i >= |X| (n when none is); when d_1 >= |X| both are d_1. AL's ideal
policy emits the reference words evenly over the audio; LAAL takes the longer of hypothesis
and reference, so an over-long hypothesis cannot lower its lag. Every hypothesis word counts
(an inserted word is an emitted word); a deleted reference word counts only through |Y*|.

    StartOffset = d_1 - start of the first reference word
    EndOffset   = d_n - end of the last reference word (the end of speech)

These two need the dataset's word times; AL and LAAL need only the reference text.
Computation-aware variants replace each d_i by the time the word is available when frames
arrive in real time and each step costs its measured wall time (`available_at`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dsmlab import intervals

NAMES = ("al", "laal", "start_offset", "end_offset")


def average_lagging(delays: Sequence[float], source_s: float, reference_words: int) -> float:
    """AL: the mean lag of the words emitted until the source ended, behind an ideal policy
    that emits the `reference_words` evenly over `source_s`."""
    return _lagging(delays, source_s, reference_words)


def length_adaptive_average_lagging(
    delays: Sequence[float], source_s: float, reference_words: int
) -> float:
    """LAAL: AL whose ideal policy spreads max(hypothesis, reference) words over the source."""
    return _lagging(delays, source_s, max(len(delays), reference_words))


def _lagging(delays: Sequence[float], source_s: float, words: int) -> float:
    if not delays or source_s <= 0 or words <= 0:
        raise ValueError("lagging needs emitted words, a source duration and a reference length")
    if delays[0] >= source_s:
        return float(delays[0])
    rate = words / source_s  # words per second of the ideal policy
    total, tau = 0.0, 0
    for i, d in enumerate(delays):
        total += d - i / rate
        tau = i + 1
        if d >= source_s:
            break
    return total / tau


def available_at(emitted: float, step_s: float, frame_s: float, prefix_s: float = 0.0) -> float:
    """Stream time at which a word emitted at `emitted` is out when the frames arrive in real
    time (frame k is complete at (k + 1) * frame_s) and each step takes `step_s` of compute,
    steps running one after the other: the step of frame k ends at
    max((k + 1) * frame_s + step_s, frame_s + (k + 1) * step_s). Times exclude the stream's
    silence prefix of `prefix_s`, as `emitted` does."""
    frames = round((emitted + prefix_s) / frame_s)  # k + 1: frames stepped when it came out
    finished = max(frames * frame_s + step_s, frame_s + frames * step_s)
    return finished - prefix_s


def utterance_lagging(
    record: dict, step_s: float | None = None, frame_s: float = 0.08, prefix_s: float = 0.0
) -> dict:
    """AL, LAAL, StartOffset and EndOffset of one record (None where undefined: no words out,
    or no reference word times); with `step_s`, their computation-aware values instead."""
    delays = [w["emitted"] for w in record["words"]]
    if step_s is not None:
        delays = [available_at(d, step_s, frame_s, prefix_s) for d in delays]
    found: dict = dict.fromkeys(NAMES)
    if not delays or not record.get("reference_words"):
        return found
    found["al"] = average_lagging(delays, record["audio_s"], record["reference_words"])
    found["laal"] = length_adaptive_average_lagging(
        delays, record["audio_s"], record["reference_words"]
    )
    if record.get("ref_words"):
        found["start_offset"] = delays[0] - record["ref_words"][0]["start"]
        found["end_offset"] = delays[-1] - record["ref_words"][-1]["end"]
    return found


def lagging_summary(
    records: Sequence[dict], step_s: float | None, frame_s: float, prefix_s: float
) -> dict:
    """Each metric's mean over utterances with its 95% bootstrap interval, and median; then
    the same computation-aware (`ca_` names) when the step cost `step_s` is known."""
    ok = [r for r in records if r["status"] == "ok"]
    summary: dict = {}
    for prefix, cost in (("", None), ("ca_", step_s)):
        if prefix and cost is None:
            continue
        per_utterance = [utterance_lagging(r, cost, frame_s, prefix_s) for r in ok]
        for name in NAMES:
            values = [u[name] for u in per_utterance if u[name] is not None]
            found = intervals.mean(values)
            if found is None:
                continue
            summary[f"{prefix}{name}_mean_s"] = round(found[0], 4)
            summary[f"{prefix}{name}_mean_s_ci95"] = [round(found[1], 4), round(found[2], 4)]
            summary[f"{prefix}{name}_median_s"] = round(float(np.median(values)), 4)
            summary[f"{prefix}{name}_utterances"] = len(values)
    return summary
