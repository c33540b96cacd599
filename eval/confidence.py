"""Word confidence and its calibration: is a word the model is 90% sure of right 90% of the time?

A word's confidence is the probability the model gave its text tokens (the product over the
word's tokens, read from the LM's text logits as it decoded; see `dsmlab.Word.confidence`).
A hypothesis word is correct when the WER alignment (normalized text) pairs every one of its
normalized tokens with an equal reference word; substituted and inserted words are wrong.
Deleted reference words have no confidence and are not counted.

- ECE (expected calibration error): words binned by confidence into BINS equal-width bins;
  the word-weighted mean over bins of |accuracy - mean confidence|;
- Brier score: the mean of (confidence - correct)^2;
- accuracy and mean confidence; a reliability diagram (accuracy against confidence per bin).
Each with a 95% bootstrap interval over utterances.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jiwer
import numpy as np

from . import intervals
from .metrics import word_tokens

BINS = 10


def word_outcomes(record: dict, normalize: Callable[[str], str]) -> list[tuple[float, bool]]:
    """(confidence, correct) of each hypothesis word of one record that has a confidence."""
    words = [w for w in record.get("words", []) if w.get("confidence") is not None]
    if len(words) != len(record.get("words", [])):
        return []  # a model run without confidences
    tokens = word_tokens([{**w, "position": i} for i, w in enumerate(words)], normalize)
    if not tokens:
        return []
    correct = [True] * len(words)
    reference = record["ref_norm"]
    if not reference.strip():
        correct = [False] * len(words)
    else:
        output = jiwer.process_words(reference, " ".join(t["word"] for t in tokens))
        hits = set()
        for chunk in output.alignments[0]:
            if chunk.type == "equal":
                hits.update(range(chunk.hyp_start_idx, chunk.hyp_end_idx))
        for k, token in enumerate(tokens):
            if k not in hits:
                correct[token["position"]] = False
    spoken = {t["position"] for t in tokens}  # words that normalize to nothing are left out
    return [(w["confidence"], correct[i]) for i, w in enumerate(words) if i in spoken]


def calibration(pairs: np.ndarray) -> dict:
    """ECE, Brier score, accuracy, mean confidence and the reliability bins of [N, 2] pairs
    (confidence, correct)."""
    confidence, correct = pairs[:, 0], pairs[:, 1]
    which = np.minimum((confidence * BINS).astype(int), BINS - 1)
    bins = []
    ece = 0.0
    for b in range(BINS):
        inside = which == b
        if inside.any():
            gap = abs(correct[inside].mean() - confidence[inside].mean())
            ece += inside.mean() * gap
            bins.append(
                {
                    "low": b / BINS,
                    "high": (b + 1) / BINS,
                    "words": int(inside.sum()),
                    "confidence": round(float(confidence[inside].mean()), 4),
                    "accuracy": round(float(correct[inside].mean()), 4),
                }
            )
    return {
        "ece": float(ece),
        "brier": float(np.mean((confidence - correct) ** 2)),
        "word_accuracy": float(correct.mean()),
        "mean_confidence": float(confidence.mean()),
        "bins": bins,
    }


def confidence_metrics(
    records: Sequence[dict], normalize: Callable[[str], str]
) -> tuple[dict, list[dict]]:
    """The calibration of the run's word confidences, with 95% intervals, and the reliability
    bins; ({}, []) when the run has none."""
    groups = [word_outcomes(r, normalize) for r in records if r["status"] == "ok"]
    groups = [g for g in groups if g]
    if not groups:
        return {}, []
    everything = np.asarray([p for g in groups for p in g], float)
    found = calibration(everything)
    bins = found.pop("bins")
    summary: dict = {"confidence_words": len(everything)}
    for name, value in found.items():
        summary[name] = round(value, 6)
        interval = intervals.pooled(groups, lambda pairs, n=name: calibration(pairs)[n])
        summary[f"{name}_ci95"] = [round(interval[1], 6), round(interval[2], 6)]
    return summary, bins
