"""The bundled models (data/models) and test split (data/synth-test): the offline default."""

import json
import shutil

import pytest

import dsmlab
from dsmlab.bundled import DATA_ENV, MODELS_DIR, RECIPE_REPORT, bundled_models, default_model
from dsmlab.data import load_data
from eval import wer


def test_at_least_four_delays_from_2_to_16_frames_are_bundled():
    delays = [round(dsmlab.load(d, device="cpu").delay_s * 12.5) for d in bundled_models()]
    assert len(delays) >= 4 and min(delays) <= 2 and max(delays) >= 16


@pytest.mark.parametrize("name", list(bundled_models()))
def test_each_bundled_model_transcribes_test_utterances(name):
    model = dsmlab.load(name, device="cpu")
    assert model.source == str(bundled_models()[name])
    rows = list(load_data("synth", max_samples=8))
    found = dsmlab.transcribe_batch(
        model, [u.audio for u in rows], [24000] * len(rows), batch_size=8
    )
    normalize = dsmlab.get_normalizer("whisper", "en")
    rates = dsmlab.error_rates(
        [normalize(u.text) for u in rows], [normalize(t.text) for t in found]
    )
    assert rates["hits"] > 0 and rates["corpus_wer"] < 1.0


@pytest.mark.slow
def test_eval_wer_reproduces_the_recipe_figures_of_every_bundled_model(tmp_path):
    """The README quotes recipe_report.json; `eval.wer` on the bundled split gives it again."""
    report = json.loads((next(iter(bundled_models().values())).parent / RECIPE_REPORT).read_text())
    for run in dsmlab.bundled_runs():  # a conditioned model at each of its delays
        out = tmp_path / run
        assert wer.main(["--model", run, "--out", str(out)]) == 0
        metrics = json.loads((out / "results.json").read_text())["metrics"]
        family = dsmlab.model_family(run)
        scores = report["conditioned"][family][run] if family else report["models"][run]
        assert metrics["corpus_wer"] == pytest.approx(scores["test"]["corpus_wer"], abs=1e-4)


def test_the_offline_default_runs_with_no_arguments(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default --out is runs/<script>-<model> here
    assert wer.main(["--max-samples", "4"]) == 0
    best = default_model()
    results = json.loads((tmp_path / "runs" / f"wer-{best}" / "results.json").read_text())
    assert results["model"]["model"] == best
    assert results["data"]["dataset"].endswith("data/synth-test")
    assert results["metrics"]["utterances"] == 4


def test_the_default_model_is_the_best_on_the_test_split_in_the_recipe_report():
    folder = next(iter(bundled_models().values())).parent
    scores = json.loads((folder / RECIPE_REPORT).read_text())["models"]  # the fixed-delay ones
    test_wer = {
        name: scores[name]["test"]["corpus_wer"] for name in bundled_models() if name in scores
    }
    assert len(test_wer) >= 4 and test_wer[default_model()] == min(test_wer.values())


def test_without_a_report_the_default_is_the_longest_delay(tmp_path, monkeypatch):
    for name in ("synth-d2", "synth-d4"):
        shutil.copytree(bundled_models()[name], tmp_path / MODELS_DIR / name)
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert default_model() == "synth-d4"
    report = {"models": {"synth-d2": {"test": {"corpus_wer": 0.5}}, "synth-d4": {"test": {}}}}
    (tmp_path / MODELS_DIR / RECIPE_REPORT).write_text(json.dumps(report))
    assert default_model() == "synth-d4"  # a report without every model's score is ignored
    report["models"]["synth-d4"]["test"]["corpus_wer"] = 0.7
    (tmp_path / MODELS_DIR / RECIPE_REPORT).write_text(json.dumps(report))
    assert default_model() == "synth-d2"


@pytest.mark.parametrize("shares", [{}, {"lookahead_share": 0.5, "hesitation_share": 0.3}])
def test_the_bundled_held_out_splits_are_the_ones_the_recipe_plans(shares):
    """A change to the corpus's planning that moves a held-out sentence would score new models
    on other sentences than the bundled ones, and could put the bundled probe's sentences in
    their training split: the plan must give the bundled splits' very sentences, whatever the
    train split's shares."""
    import datasets

    from dsmlab.bundled import TEST_SPLIT_DIR, data_dir
    from dsmlab.train import corpus

    bundled = datasets.load_from_disk(str(data_dir() / TEST_SPLIT_DIR))
    plans = corpus.plan(dict(corpus.SIZES), seed=0, **shares)
    for split, rows in bundled.items():
        planned = [corpus.text_of(p.words) for p in plans[split]]
        assert rows["text"] == planned, split
    held_out = {p.words for split in bundled for p in plans[split]}
    assert not held_out & {p.words for p in plans["train"]}
