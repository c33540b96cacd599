"""Word confidences: read from the LM as it decodes, judged against the WER alignment."""

import json

import numpy as np
import pytest

import dsmlab
from eval import confidence, wer

NORMALIZE = dsmlab.get_normalizer("whisper", "en")


def record(reference, words):
    return {
        "status": "ok",
        "ref_norm": NORMALIZE(reference),
        "words": [{"word": w, "confidence": c} for w, c in words],
    }


def test_a_word_is_correct_when_the_alignment_pairs_it_with_an_equal_reference_word():
    found = confidence.word_outcomes(
        record("the cat sat down", [("The", 0.9), ("bat", 0.4), ("sat", 0.8), ("up", 0.3)]),
        NORMALIZE,
    )
    # "down" was deleted: it has no confidence and is not counted
    assert found == [(0.9, True), (0.4, False), (0.8, True), (0.3, False)]


def test_a_word_normalizing_to_several_tokens_is_right_only_if_all_are():
    found = confidence.word_outcomes(
        record("it is fine", [("it's", 0.6), ("fine", 0.9), ("now", 0.2)]), NORMALIZE
    )
    assert found == [(0.6, True), (0.9, True), (0.2, False)]


def test_records_without_confidences_are_left_out():
    assert confidence.word_outcomes(record("a b", [("a", None), ("b", 0.5)]), NORMALIZE) == []
    assert confidence.confidence_metrics([record("a", [("a", None)])], NORMALIZE) == ({}, {})


def test_calibration_by_hand():
    # two bins: 0.95 (4 words, 3 right) and 0.25 (4 words, 1 right)
    pairs = np.array([[0.95, 1]] * 3 + [[0.95, 0]] + [[0.25, 1]] + [[0.25, 0]] * 3, float)
    found = confidence.calibration(pairs)
    # |0.75 - 0.95| * 4/8 + |0.25 - 0.25| * 4/8
    assert found["ece"] == pytest.approx(0.1)
    assert found["word_accuracy"] == pytest.approx(0.5)
    assert found["brier"] == pytest.approx(
        np.mean([(0.95 - 1) ** 2] * 3 + [0.95**2] + [0.75**2] + [0.25**2] * 3)
    )
    assert [b["words"] for b in found["bins"]] == [4, 4]
    # keeping words of confidence >= 0.3 keeps the 0.95 bin: 4 of 8 words, 1 of them wrong
    kept = {r["threshold"]: r for r in found["retention"]}
    assert kept[0.0] == {"threshold": 0.0, "kept": 1.0, "kept_error": 0.5}
    assert kept[0.3] == {"threshold": 0.3, "kept": 0.5, "kept_error": 0.25}


def test_confidences_from_the_model_are_probabilities_that_tell_right_from_wrong(tmp_path):
    out = tmp_path / "run"
    assert wer.main(["--model", "synth-d8", "--max-samples", "40", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    summary = results["metrics"]
    assert 0 <= summary["ece_ci95"][0] <= summary["ece"] <= summary["ece_ci95"][1] <= 1
    assert summary["confidence_words"] > 100
    records = [json.loads(line) for line in (out / "utterances.jsonl").read_text().splitlines()]
    pairs = [p for r in records for p in confidence.word_outcomes(r, NORMALIZE)]
    assert all(0 <= c <= 1 for c, _ in pairs)
    right = [c for c, ok in pairs if ok]
    wrong = [c for c, ok in pairs if not ok]
    assert np.mean(right) > np.mean(wrong)  # the model is surer of the words it gets right
    assert sum(b["words"] for b in results["reliability"]) == summary["confidence_words"]
    # dropping the least sure words leaves fewer errors among those kept
    retention = [r for r in results["retention"] if r["kept"] > 0.2]
    assert retention[-1]["kept_error"] < retention[0]["kept_error"]
    assert (out / "reliability.png").stat().st_size > 10_000
