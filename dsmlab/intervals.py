"""95% bootstrap intervals over utterances, and paired intervals of differences: the one
implementation that evaluation and the recipe's scores share.

The utterance is the unit that is resampled: a corpus WER is recomputed from resampled
utterances' error and word counts, a pooled word-level figure (a median timestamp error, a
word latency) from the resampled utterances' words together (words of one utterance are not
independent). A difference between two runs on the same utterances resamples the same
utterances for both (paired), so it is tighter than two separate intervals, and a difference
whose interval excludes 0 is one the data supports. Percentile intervals, RESAMPLES draws,
seeded: the same records give the same interval.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

RESAMPLES = 2000
SEED = 20261124
LEVEL = 0.95


def draws(n: int, seed: int = SEED, resamples: int = RESAMPLES) -> np.ndarray:
    """[resamples, n] utterance indices drawn with replacement."""
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def ratio(numerators: Sequence[float], denominators: Sequence[float], seed: int = SEED):
    """(sum num / sum den, low, high): a corpus rate (WER: errors over reference words)."""
    num, den = np.asarray(numerators, float), np.asarray(denominators, float)
    if not len(num) or den.sum() == 0:
        return None
    picks = draws(len(num), seed)
    sampled = num[picks].sum(1) / np.maximum(den[picks].sum(1), 1e-12)
    return _summary(num.sum() / den.sum(), sampled)


def mean(values: Sequence[float], seed: int = SEED):
    """(mean, low, high) of one value per utterance."""
    v = np.asarray(values, float)
    if not len(v):
        return None
    return _summary(v.mean(), v[draws(len(v), seed)].mean(1))


def pooled(
    groups: Sequence[Sequence[float]],
    statistic: Callable[[np.ndarray], float] = np.median,
    seed: int = SEED,
):
    """(statistic, low, high) of values pooled over utterances (one group each); utterances
    are resampled, their values pooled again."""
    groups = [np.asarray(g, float) for g in groups if len(g)]
    if not groups:
        return None
    everything = np.concatenate(groups)
    sampled = [
        statistic(np.concatenate([groups[i] for i in pick]))
        for pick in draws(len(groups), seed, RESAMPLES // 4)
    ]
    return _summary(statistic(everything), np.asarray(sampled))


def paired_ratio_difference(
    a: tuple[Sequence[float], Sequence[float]],
    b: tuple[Sequence[float], Sequence[float]],
    seed: int = SEED,
):
    """(rate_b - rate_a, low, high) on the same utterances, resampled together; `a` and `b` are
    (numerators, denominators) in the same utterance order."""
    num_a, den_a = (np.asarray(x, float) for x in a)
    num_b, den_b = (np.asarray(x, float) for x in b)
    if len(num_a) != len(num_b):
        raise ValueError("paired rates need the same utterances on both sides")
    picks = draws(len(num_a), seed)
    sampled = num_b[picks].sum(1) / den_b[picks].sum(1) - num_a[picks].sum(1) / den_a[picks].sum(1)
    return _summary(num_b.sum() / den_b.sum() - num_a.sum() / den_a.sum(), sampled)


def _summary(value: float, sampled: np.ndarray) -> tuple[float, float, float]:
    tail = 100 * (1 - LEVEL) / 2
    low, high = np.percentile(sampled, [tail, 100 - tail])
    return float(value), float(low), float(high)
