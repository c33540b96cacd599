"""Bootstrap intervals, checked on cases whose answer is known."""

import numpy as np
import pytest

from dsmlab import intervals


def test_identical_utterances_give_a_point_interval():
    assert intervals.ratio([1, 1, 1, 1], [4, 4, 4, 4]) == (0.25, 0.25, 0.25)
    assert intervals.mean([0.3] * 10) == pytest.approx((0.3, 0.3, 0.3))


def test_the_corpus_rate_is_errors_over_words_and_its_interval_contains_it():
    errors, words = [0, 1, 2, 5, 0, 3], [5, 4, 6, 5, 7, 3]
    value, low, high = intervals.ratio(errors, words)
    assert value == pytest.approx(11 / 30)
    assert low < value < high and 0 <= low and high <= 1


def test_intervals_are_seeded_and_narrow_with_more_utterances():
    rng = np.random.default_rng(1)
    few = rng.binomial(10, 0.2, size=20)
    many = rng.binomial(10, 0.2, size=2000)
    first, again = intervals.ratio(few, [10] * 20), intervals.ratio(few, [10] * 20)
    assert first == again  # same records, same seed, same interval
    width = lambda found: found[2] - found[1]  # noqa: E731
    assert width(intervals.ratio(many, [10] * 2000)) < width(first) / 5


def test_a_binomial_rate_gets_the_textbook_width():
    """p = 0.2 over 400 utterances of 10 words: the normal approximation's 95% interval is
    p +- 1.96 sqrt(p (1 - p) / 4000) = +- 0.0124."""
    rng = np.random.default_rng(3)
    errors = rng.binomial(10, 0.2, size=400)
    value, low, high = intervals.ratio(errors, [10] * 400)
    assert (high - low) / 2 == pytest.approx(1.96 * np.sqrt(0.2 * 0.8 / 4000), rel=0.15)


def test_paired_differences_see_what_separate_intervals_cannot():
    """b makes one more error than a on every utterance: the separate intervals overlap, the
    paired difference is exactly +1 error per utterance."""
    rng = np.random.default_rng(5)
    a = rng.integers(0, 6, size=30)
    b = a + 1
    words = [10] * 30
    _, a_low, a_high = intervals.ratio(a, words)
    _, b_low, b_high = intervals.ratio(b, words)
    assert b_low < a_high  # the separate intervals overlap
    assert intervals.paired_ratio_difference((a, words), (b, words)) == pytest.approx(
        (0.1, 0.1, 0.1)
    )
    same = intervals.paired_ratio_difference((a, words), (a, words))
    assert same == (0.0, 0.0, 0.0)


def test_pooled_values_resample_whole_utterances():
    groups = [[0.01, 0.02, 0.03], [0.5, 0.5], [0.02]]
    value, low, high = intervals.pooled(groups)
    assert value == pytest.approx(np.median([0.01, 0.02, 0.03, 0.5, 0.5, 0.02]))
    assert low <= value <= high
    assert intervals.pooled([]) is None and intervals.ratio([], []) is None
