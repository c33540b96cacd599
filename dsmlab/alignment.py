"""Reference text + a model's timestamped transcript -> the reference's words with times.

Fine-tuning a DSM model needs each word's start (the text stream is built from it), and most
datasets hold only audio and text. The model's own transcript has timed words; aligning the
reference's words to them (Levenshtein, on normalized words) gives every reference word that
meets a transcript word (equal or substituted) that word's times. A word the model missed
gets times from its neighbours: the gap between the timed words around it is shared evenly
among the missed words in it. No external aligner: the times are as good as the model's own
(`align_words` reports which words were matched, to measure it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import jiwer

from .timing import Word

MISSED_WORD_S = 0.3  # length given to missed words with no timed word after them


@dataclass
class AlignedWord:
    word: str  # as the reference spells it
    start: float
    end: float
    matched: bool  # times from a transcript word (else from its neighbours)


def align_words(
    reference: str,
    transcript: Sequence[Word],
    normalize: Callable[[str], str],
    audio_s: float | None = None,
) -> list[AlignedWord]:
    """Every word of `reference` (split on spaces) with a start and end in seconds.
    `audio_s` bounds the times of missed words at the end."""
    words = reference.split()
    if not words:
        return []
    keys = [normalize(w).split() or [w.lower()] for w in words]
    flat = [(k, token) for k, tokens in enumerate(keys) for token in tokens]
    hyp = [(w, token) for w in transcript for token in normalize(w.word).split()]
    times: list[tuple[float, float] | None] = [None] * len(words)
    if hyp:
        alignment = jiwer.process_words(
            " ".join(token for _, token in flat), " ".join(token for _, token in hyp)
        )
        chunks = alignment.alignments[0]
        for chunk in chunks:
            if chunk.type in ("equal", "substitute"):
                for offset in range(chunk.ref_end_idx - chunk.ref_start_idx):
                    k = flat[chunk.ref_start_idx + offset][0]
                    _widen(times, k, hyp[chunk.hyp_start_idx + offset][0])
        # A transcript word inserted beside a substitution is most often the rest of the same
        # spoken words ("25" heard as "twenty five"): it widens that reference word.
        neighbours = zip([None, *chunks[:-1]], chunks, [*chunks[1:], None], strict=True)
        for before, chunk, after in neighbours:
            if chunk.type != "insert":
                continue
            inserted = [hyp[i][0] for i in range(chunk.hyp_start_idx, chunk.hyp_end_idx)]
            if after is not None and after.type == "substitute":
                k = flat[after.ref_start_idx][0]
            elif before is not None and before.type == "substitute":
                k = flat[before.ref_end_idx - 1][0]
            else:
                continue
            for timed in inserted:
                _widen(times, k, timed)
    return _fill_missed(words, times, audio_s)


def _widen(times: list[tuple[float, float] | None], k: int, timed: Word) -> None:
    start, end = times[k] or (timed.start, timed.end)
    times[k] = (min(start, timed.start), max(end, timed.end))


def _fill_missed(
    words: list[str], times: list[tuple[float, float] | None], audio_s: float | None
) -> list[AlignedWord]:
    """Times for the words with none: their gap between timed neighbours, shared evenly."""
    aligned = []
    k = 0
    while k < len(words):
        if times[k] is not None:
            start, end = times[k]
            aligned.append(AlignedWord(words[k], round(start, 4), round(end, 4), True))
            k += 1
            continue
        first = k
        while k < len(words) and times[k] is None:
            k += 1
        left = times[first - 1][1] if first > 0 else 0.0
        missed = k - first
        if k < len(words):
            right = times[k][0]
        else:
            right = left + MISSED_WORD_S * missed
            if audio_s is not None:
                right = max(left, min(right, audio_s))
        if first == 0 and k < len(words):
            left = max(0.0, right - MISSED_WORD_S * missed)
        step = (right - left) / missed
        for j in range(missed):
            start = left + j * step
            aligned.append(
                AlignedWord(words[first + j], round(start, 4), round(start + step, 4), False)
            )
    return aligned
