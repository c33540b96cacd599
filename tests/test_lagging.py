"""AL, LAAL, StartOffset, EndOffset and their computation-aware values, on hand-worked cases
from the papers' definitions."""

import pytest

from eval import lagging


def test_wait_k_has_an_average_lagging_of_k():
    # Ma et al. (2019): wait-k on |X| = |Y| lags k source units; here a unit is 0.5 s, k = 3.
    units = [min(3 + i, 10) for i in range(10)]  # source units read before each word
    delays = [0.5 * u for u in units]
    assert lagging.average_lagging(delays, 5.0, 10) == pytest.approx(1.5)
    assert lagging.length_adaptive_average_lagging(delays, 5.0, 10) == pytest.approx(1.5)


def test_an_over_long_hypothesis_lowers_al_but_not_laal():
    delays, source_s, reference = [2, 4, 6, 8, 10, 10], 10.0, 3
    # tau = 5 (d_5 = |X|). AL's ideal emits a word each 10/3 s: (2 + 0.667 - 0.667 - 2 - 3.333)/5
    assert lagging.average_lagging(delays, source_s, reference) == pytest.approx(-2 / 3)
    # LAAL's ideal spreads max(6, 3) words: each 10/6 s: (2 + 2.333 + 2.667 + 3 + 3.333)/5
    assert lagging.length_adaptive_average_lagging(delays, source_s, reference) == pytest.approx(
        8 / 3
    )


def test_a_first_word_after_the_source_ends_is_the_lag():
    assert lagging.average_lagging([3.0, 3.5], 2.0, 2) == 3.0


def test_words_out_after_the_source_end_are_not_averaged_beyond_tau():
    # tau = 2: the third word (at 4 s) is not counted
    assert lagging.average_lagging([1.0, 2.0, 4.0], 2.0, 2) == pytest.approx((1 + 1) / 2)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError):
        lagging.average_lagging([], 1.0, 1)


@pytest.mark.parametrize(
    ("step_s", "expected"),
    [
        (0.05, 0.85),  # faster than real time: one step after the frame arrives
        (0.10, 1.08),  # slower: the steps queue; 10 steps after the first frame
    ],
)
def test_available_at_real_time_arrival(step_s, expected):
    assert lagging.available_at(0.8, step_s, 0.08) == pytest.approx(expected)
    # the silence prefix shifts the clock, not the result in audio time
    assert lagging.available_at(0.8 - 0.4, step_s, 0.08, prefix_s=0.4) == pytest.approx(
        expected - 0.4
    )


def record(emitted, ref_words, audio_s=2.0):
    return {
        "status": "ok",
        "audio_s": audio_s,
        "words": [{"word": f"w{i}", "emitted": e} for i, e in enumerate(emitted)],
        "ref_words": ref_words,
        "reference_words": len(ref_words),
    }


def test_one_utterance_and_its_computation_aware_values():
    refs = [{"word": "a", "start": 0.2, "end": 0.5}, {"word": "b", "start": 0.6, "end": 1.1}]
    found = lagging.utterance_lagging(record([0.96, 1.6], refs))
    assert found["al"] == pytest.approx((0.96 + 1.6 - 1.0) / 2)
    assert found["start_offset"] == pytest.approx(0.76)
    assert found["end_offset"] == pytest.approx(0.5)
    slow = lagging.utterance_lagging(record([0.96, 1.6], refs), step_s=0.1, frame_s=0.08)
    assert slow["start_offset"] == pytest.approx(0.08 + 12 * 0.1 - 0.2)
    assert slow["al"] > found["al"]


def test_summary_names_each_metric_with_an_interval():
    refs = [{"word": "a", "start": 0.2, "end": 0.5}, {"word": "b", "start": 0.6, "end": 1.1}]
    records = [record([0.32 + 0.08 * k, 1.92], refs) for k in range(10)]
    records.append({"status": "failed", "words": []})
    summary = lagging.lagging_summary(records, 0.05, 0.08, 0.0)
    low, high = summary["al_mean_s_ci95"]
    assert low <= summary["al_mean_s"] <= high and low < high
    assert summary["al_utterances"] == 10
    assert summary["ca_al_mean_s"] == pytest.approx(summary["al_mean_s"] + 0.05, abs=1e-3)
    assert "ca_al_mean_s" not in lagging.lagging_summary(records, None, 0.08, 0.0)


def test_no_word_out_or_no_word_times_leave_the_metric_undefined():
    assert lagging.utterance_lagging(record([], [])) == dict.fromkeys(lagging.NAMES)
    found = lagging.utterance_lagging(record([0.5], []) | {"reference_words": 1})
    assert found["al"] == 0.5 and found["start_offset"] is None
