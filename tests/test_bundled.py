"""The bundled models (data/models) and test split (data/synth-test): the offline default."""

import json

import pytest

import dsmlab
from dsmlab.bundled import bundled_models
from eval import wer
from eval.data import load_eval_data

MAX_UTTERANCE_WER = 0.5  # one bundled utterance, per model (the corpus WERs are in the README)


def test_at_least_four_delays_from_2_to_16_frames_are_bundled():
    delays = [round(dsmlab.load(d, device="cpu").delay_s * 12.5) for d in bundled_models()]
    assert len(delays) >= 4 and min(delays) <= 2 and max(delays) >= 16


@pytest.mark.parametrize("name", list(bundled_models()))
def test_each_bundled_model_transcribes_a_test_utterance(name):
    model = dsmlab.load(name, device="cpu")
    assert model.source == str(bundled_models()[name])
    utterance = next(iter(load_eval_data("synth", max_samples=1)))
    transcript = dsmlab.transcribe(model, utterance.audio, sample_rate=24000)
    normalize = dsmlab.get_normalizer("whisper", "en")
    error = dsmlab.utterance_wer(normalize(utterance.text), normalize(transcript.text))
    assert error <= MAX_UTTERANCE_WER, (utterance.text, transcript.text)


def test_the_offline_default_runs_with_no_arguments(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default --out is runs/<script>-<model> here
    assert wer.main(["--max-samples", "4"]) == 0
    longest = list(bundled_models())[-1]
    results = json.loads((tmp_path / "runs" / f"wer-{longest}" / "results.json").read_text())
    assert results["model"]["model"] == longest
    assert results["data"]["dataset"].endswith("data/synth-test")
    assert results["metrics"]["utterances"] == 4
