"""Word confidence and its calibration: is a word the model is 90% sure of right 90% of the time?

A word's confidence is the probability the model gave its text tokens (the product over the
word's tokens, read from the LM's text logits as it decoded; see `dsmlab.Word.confidence`).
A hypothesis word is correct when the WER alignment (normalized text) pairs every one of its
normalized tokens with an equal reference word; substituted and inserted words are wrong.
Deleted reference words have no confidence and are not counted.

- ECE (expected calibration error): words binned by confidence into BINS equal-width bins;
  the word-weighted mean over bins of |accuracy - mean confidence|;
- Brier score: the mean of (confidence - correct)^2;
- accuracy and mean confidence; a reliability diagram (accuracy against confidence per bin);
- retention: for each threshold, the share of hypothesis words kept (confidence >= it) and
  the share of those that are wrong: what dropping unsure words buys.
Each with a 95% bootstrap interval over utterances.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jiwer
import numpy as np

from dsmlab import intervals

from .metrics import word_tokens

BINS = 10
SCORES = ("ece", "brier", "word_accuracy", "mean_confidence")


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
    found = dict(zip(SCORES, scores(pairs), strict=True))
    confidence, correct = pairs[:, 0], pairs[:, 1]
    which = np.minimum((confidence * BINS).astype(int), BINS - 1)
    found["bins"] = [
        {
            "low": b / BINS,
            "high": (b + 1) / BINS,
            "words": int((which == b).sum()),
            "confidence": round(float(confidence[which == b].mean()), 4),
            "accuracy": round(float(correct[which == b].mean()), 4),
        }
        for b in range(BINS)
        if (which == b).any()
    ]
    found["retention"] = [
        {
            "threshold": t / BINS,
            "kept": round(float(kept.mean()), 4),
            "kept_error": round(float(1 - correct[kept].mean()), 4) if kept.any() else None,
        }
        for t in range(BINS)
        for kept in [confidence >= t / BINS]
    ]
    return found


def scores(pairs: np.ndarray) -> np.ndarray:
    """[ece, brier, word_accuracy, mean_confidence] of [N, 2] pairs, vectorized (the bootstrap
    calls it once per resample)."""
    confidence, correct = pairs[:, 0], pairs[:, 1]
    which = np.minimum((confidence * BINS).astype(int), BINS - 1)
    gaps = np.abs(
        np.bincount(which, correct, minlength=BINS) - np.bincount(which, confidence, BINS)
    )
    ece = gaps.sum() / len(pairs)  # sum over bins of (n_b / N) * |acc_b - conf_b|
    return np.array([ece, np.mean((confidence - correct) ** 2), correct.mean(), confidence.mean()])


def confidence_metrics(
    records: Sequence[dict], normalize: Callable[[str], str]
) -> tuple[dict, dict]:
    """The calibration of the run's word confidences, with 95% intervals, and the curves
    (`reliability` bins, `retention`); ({}, {}) when the run has none."""
    groups = [word_outcomes(r, normalize) for r in records if r["status"] == "ok"]
    groups = [g for g in groups if g]
    if not groups:
        return {}, {}
    everything = np.asarray([p for g in groups for p in g], float)
    found = calibration(everything)
    curves = {"reliability": found.pop("bins"), "retention": found.pop("retention")}
    summary: dict = {"confidence_words": len(everything)}
    arrays = [np.asarray(g, float) for g in groups]
    sampled = np.array(
        [scores(np.concatenate([arrays[i] for i in pick])) for pick in intervals.draws(len(arrays))]
    )
    low, high = np.percentile(sampled, [2.5, 97.5], axis=0)
    for k, name in enumerate(SCORES):
        summary[name] = round(found[name], 6)
        summary[f"{name}_ci95"] = [round(float(low[k]), 6), round(float(high[k]), 6)]
    return summary, curves
