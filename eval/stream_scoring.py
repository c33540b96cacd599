"""How a long stream was transcribed: WER of the whole stream, by position, where it collapses,
and against the same sentences transcribed alone.

A stitched stream is scored sentence by sentence: each hypothesis word goes to the sentence
whose stretch of the stream holds its start (the stretches meet halfway between one sentence's
last reference word and the next one's first), and each sentence becomes a record with the
runner's fields (`runner.utterance_record`), so every metric of `metrics.py` applies, and the
paired difference against the sentences transcribed alone (`metrics.paired_wer_difference`)
pairs them one by one. A recording without segment times is aligned whole (Levenshtein over
normalized words); each reference word takes the time of the hypothesis word it is aligned
to (a deleted word, its neighbours'), and its errors count where they fall.

Windows: WER per WINDOW_S of the stream, of the sentences that start in it. Collapse: the
point after which the model writes nothing or only wrong words: the earliest window from
which every window to the end has fewer than COLLAPSE_HIT_SHARE of its reference words right,
walked back to a sentence (word): the first of the sentences just before that window that fail
too. None when there is none, or when that stretch lasts less than a window.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jiwer
import numpy as np

import dsmlab
from dsmlab import intervals
from dsmlab.data import Utterance

from . import metrics
from .runner import utterance_record
from .streams import WINDOW_S, Stream

# A window where fewer than this share of the reference words come out right has collapsed: a
# model writing garbage from a small vocabulary still hits a word now and then.
COLLAPSE_HIT_SHARE = 0.1


def split_by_sentence(stream: Stream, words: Sequence[dsmlab.Word]) -> list[list[dsmlab.Word]]:
    """The hypothesis words of each sentence of a stitched stream, by their start times."""
    spans = [_speech(s) for s in stream.sentences]
    bounds = [(spans[k - 1][1] + spans[k][0]) / 2 for k in range(1, len(spans))]
    groups: list[list[dsmlab.Word]] = [[] for _ in spans]
    for word in words:
        groups[int(np.searchsorted(bounds, word.start, side="right"))].append(word)
    return groups


def _speech(sentence) -> tuple[float, float]:
    if sentence.words:
        return sentence.words[0]["start"], sentence.words[-1]["end"]
    return sentence.offset_s, sentence.offset_s + sentence.duration_s


def sentence_records(
    stream: Stream,
    transcripts: Sequence[dsmlab.Transcript],
    normalize: Callable[[str], str],
    in_stream: bool,
    merge_compounds: bool = False,
) -> list[dict]:
    """One record per sentence of the stream (index: its position in the stream), from its
    transcript in the stream (times in the stream) or alone (times in the utterance)."""
    records = []
    for position, (sentence, transcript) in enumerate(
        zip(stream.sentences, transcripts, strict=True)
    ):
        words = sentence.words
        if words and not in_stream:  # alone: the reference times of the utterance itself
            words = [w | {"start": w["start"] - sentence.offset_s,
                          "end": w["end"] - sentence.offset_s} for w in words]  # fmt: skip
        utt = Utterance(index=position, id=sentence.id, text=sentence.text, audio=None, words=words)
        record = utterance_record(utt, transcript, normalize, merge_compounds)
        record |= {"row": sentence.index, "start_s": round(sentence.offset_s, 4)}
        record["audio_s"] = round(sentence.duration_s, 4)
        record["hits"] = _hits(record["ref_norm"], record["hyp_norm"])
        records.append(record)
    return records


def in_stream_transcripts(
    stream: Stream, words: Sequence[dsmlab.Word], model: dsmlab.DSMModel
) -> list[dsmlab.Transcript]:
    """The stream's words cut into one transcript per sentence, times in the stream."""
    return [
        dsmlab.Transcript(
            text=" ".join(w.word for w in group),
            words=list(group),
            tokens=[],
            end_of_turn=None,
            audio_s=stream.duration_s,
            model=model.name,
            delay_s=model.delay_s,
            prefix_s=model.prefix_s,
        )
        for group in split_by_sentence(stream, words)
    ]


def _hits(reference: str, hypothesis: str) -> int:
    if not reference:
        return 0
    return int(dsmlab.error_rates([reference], [hypothesis])["hits"])


def recording_units(
    reference: str, words: Sequence[dict], normalize: Callable[[str], str]
) -> list[dict]:
    """A recording's errors placed in time (`words`: the hypothesis, {word, start, ...}): one
    unit per aligned word (start_s, reference_words 0 or 1, word_errors 0 or 1, hits 0 or 1)."""
    ref = normalize(reference).split()
    hyp = metrics.word_tokens(words, normalize)
    if not ref:
        return []
    if not hyp:  # nothing written: every word deleted, placed as a deletion with no neighbours
        return [{"start_s": 0.0, "reference_words": 1, "word_errors": 1, "hits": 0} for _ in ref]
    alignment = jiwer.process_words(" ".join(ref), " ".join(h["word"] for h in hyp))
    units: list[dict] = []
    for chunk in alignment.alignments[0]:
        if chunk.type in ("equal", "substitute"):
            for k in range(chunk.ref_end_idx - chunk.ref_start_idx):
                wrong = int(chunk.type == "substitute")
                start = hyp[chunk.hyp_start_idx + k]["start"]
                units.append({"start_s": start, "reference_words": 1, "word_errors": wrong,
                              "hits": 1 - wrong})  # fmt: skip
        elif chunk.type == "delete":
            units += [
                {"start_s": None, "reference_words": 1, "word_errors": 1, "hits": 0}
                for _ in range(chunk.ref_end_idx - chunk.ref_start_idx)
            ]
        else:  # insert
            units += [
                {"start_s": hyp[j]["start"], "reference_words": 0, "word_errors": 1, "hits": 0}
                for j in range(chunk.hyp_start_idx, chunk.hyp_end_idx)
            ]
    known = [k for k, u in enumerate(units) if u["start_s"] is not None]
    for k, unit in enumerate(units):  # a deleted word between its neighbours' times
        if unit["start_s"] is None:
            before = [units[j]["start_s"] for j in known if j < k]
            after = [units[j]["start_s"] for j in known if j > k]
            unit["start_s"] = (before[-1:] or after[:1] or [0.0])[0]
    return sorted(units, key=lambda u: u["start_s"])


def by_window(
    units: Sequence[dict], duration_s: float, alone: Sequence[dict] | None = None,
    window_s: float = WINDOW_S,
) -> list[dict]:  # fmt: skip
    """WER per window of the stream, of the units (sentence records or aligned words) that
    start in it; with `alone` (the same sentences transcribed alone, same order), theirs too."""
    count = max(1, int(np.ceil(duration_s / window_s)))
    rows = []
    for k in range(count):
        inside = [i for i, u in enumerate(units) if int(u["start_s"] // window_s) == k]
        inside = inside if k < count - 1 else [
            i for i, u in enumerate(units) if u["start_s"] >= k * window_s
        ]  # fmt: skip
        words = sum(units[i]["reference_words"] for i in inside)
        errors = sum(units[i]["word_errors"] for i in inside)
        row = {"start_s": k * window_s, "units": len(inside), "reference_words": words}
        row["word_errors"] = errors
        row["wer"] = _rate(units, inside)
        if alone is not None:
            row["alone_wer"] = _rate(alone, inside)
        rows.append(row)
    return rows


def _rate(units: Sequence[dict], inside: Sequence[int]) -> float | None:
    words = sum(units[i]["reference_words"] for i in inside)
    return round(sum(units[i]["word_errors"] for i in inside) / words, 6) if words else None


def by_third(records: Sequence[dict], alone: Sequence[dict] | None = None) -> list[dict]:
    """WER of the first, middle and last third of the sentences (and alone)."""
    n = len(records)
    thirds = [range(k * n // 3, (k + 1) * n // 3) for k in range(3)]
    return [
        {"part": part, "wer": _rate(records, list(r))}
        | ({"alone_wer": _rate(alone, list(r))} if alone is not None else {})
        for part, r in zip(("first", "middle", "last"), thirds, strict=True)
    ]


def collapse_point(
    units: Sequence[dict], duration_s: float, window_s: float = WINDOW_S
) -> float | None:
    """Where the model stops writing correct words for good (see the module docstring)."""
    scored = sorted((u for u in units if u["reference_words"]), key=lambda u: u["start_s"])
    windows: dict[int, list[int]] = {}
    for k, u in enumerate(scored):
        windows.setdefault(int(u["start_s"] // window_s), []).append(k)
    order = sorted(windows)
    first = len(order)
    while first and _hit_share([scored[k] for k in windows[order[first - 1]]]) < COLLAPSE_HIT_SHARE:
        first -= 1
    if first == len(order):
        return None
    window_start = start = windows[order[first]][0]
    while start > 0 and _hit_share(scored[start - 1 : window_start]) < COLLAPSE_HIT_SHARE:
        start -= 1  # it began before that window: the units just before it fail too
    at = scored[start]["start_s"]
    return round(at, 3) if duration_s - at >= window_s else None


def _hit_share(units: Sequence[dict]) -> float:
    return sum(u["hits"] for u in units) / max(1, sum(u["reference_words"] for u in units))


def stream_summary(
    units: Sequence[dict],
    duration_s: float,
    alone: Sequence[dict] | None = None,
    window_s: float = WINDOW_S,
) -> dict:
    """Whole-stream WER with its interval (over sentences, or over windows for a recording),
    WER by window and by third, the worst window against alone, the collapse point, and the
    paired difference against alone."""
    windows = by_window(units, duration_s, alone, window_s)
    words = sum(u["reference_words"] for u in units)
    sentence_level = "index" in (units[0] if units else {})
    summary = {
        **pooled_wer(units if sentence_level else windows),
        "reference_words": words,
        "collapse_s": collapse_point(units, duration_s, window_s),
        "windows": windows,
    }
    if sentence_level:
        summary["thirds"] = by_third(units, alone)
    if alone is not None:
        summary["alone_corpus_wer"] = pooled_wer(alone)["corpus_wer"]
        summary["in_stream_minus_alone"] = metrics.paired_wer_difference(alone, units)
        gaps = [w["wer"] - w["alone_wer"] for w in windows if w["wer"] is not None]
        summary["worst_window_minus_alone"] = round(max(gaps), 6) if gaps else None
    return summary


def pooled_wer(groups: Sequence[dict]) -> dict:
    """corpus_wer and its 95% interval, resampling `groups` (sentences, or a recording's
    windows: its aligned words are not independent, the windows nearly so)."""
    found = intervals.ratio(*([g[k] for g in groups] for k in ("word_errors", "reference_words")))
    if found is None:
        return {"corpus_wer": None, "corpus_wer_ci95": None}
    return {"corpus_wer": round(found[0], 6), "corpus_wer_ci95": [round(v, 6) for v in found[1:]]}


def collapses(row: dict) -> str:
    """Each stream's collapse point, or 'none' where it kept listening to the end."""
    return ", ".join("none" if c is None else f"at {c:.1f} s" for c in row["collapses_s"])
