import json
import shutil
from dataclasses import asdict, replace

import pytest
import torch
from huggingface_hub import ModelCard

import dsmlab
from dsmlab.errors import UsageError
from dsmlab.train import audio_tokenizer, recipe
from dsmlab.train.corpus import generate

TINY = {
    "delays": (1, 2),
    "train": 24,
    "validation": 4,
    "test": 4,
    "unseen_flite": 2,
    "festival": 2,
    "lookahead": 2,
    "hesitation": 2,
    "tokenizer_steps": 4,
    "lm_steps": 20,
    "stream_frames": 60,
    "vad_tune_steps": 3,
}


@pytest.mark.slow
def test_the_recipe_trains_its_delays_at_once_as_it_would_in_turn_and_resumes(
    tmp_path, monkeypatch
):
    sizes = {
        k.replace("_", "-"): v
        for k, v in TINY.items()
        if k
        in ("train", "validation", "test", "unseen_flite", "festival", "lookahead", "hesitation")
    }
    corpus = generate(tmp_path / "corpus", sizes, seed=0)
    tokenizer = audio_tokenizer.build(corpus, tmp_path / "tokenizer", steps=4, batch_size=4)
    outs = {}
    monkeypatch.setattr(recipe.os, "cpu_count", lambda: 2)  # one thread per job, as in turn
    torch.set_num_threads(1)
    for jobs in (1, 2):
        out = tmp_path / f"jobs{jobs}"
        shutil.copytree(corpus, out / "corpus")
        shutil.copytree(tokenizer, out / "tokenizer")
        report = recipe.run(out, recipe.Recipe(**TINY, jobs=jobs))
        assert set(report["models"]) == {"synth-d1", "synth-d2"}
        # the model conditioned on both delays, scored at each
        assert set(report["conditioned"]["synth-dc"]) == {"synth-dc@0.08", "synth-dc@0.16"}
        outs[jobs] = out

    seconds = json.loads((outs[2] / "recipe.json").read_text())["seconds"]
    assert {"lm d1", "lm d2", "lm dc", "vad heads d1", "vad heads dc", "scores"} <= set(seconds)
    for name in ("synth-d1", "synth-d2", "synth-dc"):
        a, b = (dsmlab.load(o / "models" / name, device="cpu") for o in outs.values())
        assert a.has_vad and b.has_vad
        sa, sb = a.lm.state_dict(), b.lm.state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)  # the same training either way
    assert json.loads((outs[1] / "recipe_report.json").read_text()) == report

    recipe.run(outs[2], recipe.Recipe(**TINY, jobs=2))  # all done: nothing runs again
    assert json.loads((outs[2] / "recipe.json").read_text())["seconds"] == seconds

    bundle = tmp_path / "bundle"
    recipe.bundle(outs[2], bundle)  # the models, report, settings, test split and their cards
    for name in report["models"]:
        card = ModelCard.load(bundle / "models" / name / "README.md")
        wer = {(r.dataset_split, r.metric_type): r.metric_value for r in card.data.eval_results}
        assert wer[("test", "wer")] == round(100 * report["models"][name]["test"]["corpus_wer"], 2)
        assert "This LM trained in" in card.text  # the times of the bundle's recipe.json
    conditioned = ModelCard.load(bundle / "models" / "synth-dc" / "README.md")
    at = {(r.metric_config, r.dataset_split, r.metric_type) for r in conditioned.data.eval_results}
    assert {("delay 0.08 s", "test", "wer"), ("delay 0.16 s", "lookahead", "accuracy")} <= at
    assert dsmlab.load(bundle / "models" / "synth-dc", device="cpu").delays_s == [0.08, 0.16]
    assert (bundle / "synth-test" / "README.md").is_file()


def test_a_rerun_with_other_settings_is_refused_before_any_work(tmp_path):
    made = recipe.Recipe(**TINY)
    (tmp_path / "recipe.json").write_text(json.dumps({"recipe": asdict(made), "seconds": {}}))
    with pytest.raises(UsageError, match=r"lm_steps: 20 -> 40.*another --out"):
        recipe.run(tmp_path, replace(made, lm_steps=40))
    with pytest.raises(UsageError, match=r"delays: \[1, 2\] -> \[1, 4\]"):
        recipe.run(tmp_path, replace(made, delays=(1, 4)))  # a delay's model would be stale
    _leave_results(tmp_path / "models" / "synth-dc", "config.json")
    with pytest.raises(UsageError, match=r"delays: \[1, 2\] -> \[1, 2, 4\]"):
        recipe.run(tmp_path, replace(made, delays=(1, 2, 4)))  # the conditioned one would
    assert not (tmp_path / "corpus").exists()


def test_more_delays_keep_the_trained_ones_and_score_them_all_again(tmp_path, monkeypatch):
    made = recipe.Recipe(**{**TINY, "delays": (2,)}, jobs=1)
    (tmp_path / "recipe.json").write_text(json.dumps({"recipe": asdict(made), "seconds": {}}))
    _leave_results(tmp_path, "corpus/dataset_dict.json", "tokenizer/mimi.safetensors")
    _leave_results(tmp_path / "models" / "synth-d2", "config.json", "vad_report.json")
    _leave_results(tmp_path, "recipe_report.json")  # the scores of synth-d2 alone
    trained = []
    monkeypatch.setattr(recipe, "_encode_training_codes", lambda *_: None)
    monkeypatch.setattr(recipe, "_one_delay", lambda out, r, d, *_: trained.append(d) or {})
    monkeypatch.setattr(recipe, "scores", lambda out, r: {"scored": list(r.delays)})
    assert recipe.run(tmp_path, replace(made, delays=(1, 2))) == {"scored": [1, 2]}
    assert trained == [1, (1, 2)]
    saved = json.loads((tmp_path / "recipe.json").read_text())["recipe"]
    assert saved["delays"] == [1, 2]


def test_the_lookahead_and_hesitation_shares_reach_the_corpus(tmp_path, monkeypatch):
    asked = {}

    def generate(out, sizes, seed, workers, lookahead_share, hesitation_share):
        asked["shares"] = lookahead_share, hesitation_share
        _leave_results(out, "dataset_dict.json")

    def build(*args, **kwargs):
        raise KeyboardInterrupt  # stop there: only what the corpus step was asked matters

    monkeypatch.setattr(recipe.corpus, "generate", generate)
    monkeypatch.setattr(recipe.audio_tokenizer, "build", build)
    argv = ["--out", str(tmp_path / "r"), "--lookahead-share", "0.4", "--hesitation-share", "0.3"]
    assert recipe.main(argv) == 130
    assert asked["shares"] == (0.4, 0.3)
    saved = json.loads((tmp_path / "r" / recipe.RECIPE_SETTINGS).read_text())
    assert saved["recipe"]["lookahead_share"] == 0.4
    assert saved["recipe"]["hesitation_share"] == 0.3
    assert recipe.main([*argv[:4], "--hesitation-share", "0.2"]) == 2  # another share: refused


def test_a_recipe_recorded_before_a_setting_existed_is_refused(tmp_path):
    made = recipe.Recipe(**TINY)
    older = {k: v for k, v in asdict(made).items() if k != "tokenizer_crop"}
    (tmp_path / "recipe.json").write_text(json.dumps({"recipe": older, "seconds": {}}))
    with pytest.raises(UsageError, match=r"tokenizer_crop: not recorded -> 30"):
        recipe.run(tmp_path, made)
    assert not (tmp_path / "corpus").exists()


def test_other_job_and_worker_counts_change_how_fast_not_what_so_a_rerun_goes_on(tmp_path):
    made = recipe.Recipe(**TINY, jobs=2, workers=2)
    (tmp_path / "recipe.json").write_text(json.dumps({"recipe": asdict(made), "seconds": {}}))
    _leave_results(tmp_path, "corpus/dataset_dict.json", "tokenizer/mimi.safetensors")
    _leave_results(tmp_path, "recipe_report.json")
    for model in [*(f"synth-d{d}" for d in made.delays), "synth-dc"]:
        _leave_results(tmp_path / "models" / model, "config.json", "vad_report.json")
    assert recipe.run(tmp_path, replace(made, jobs=1, workers=1)) == {}


def test_a_rerun_trains_only_the_unfinished_delays_and_starts_no_processes_for_them(
    tmp_path, monkeypatch
):
    made = recipe.Recipe(**TINY, jobs=2)
    _leave_results(tmp_path, "corpus/dataset_dict.json", "tokenizer/mimi.safetensors")
    first, second = made.delays
    _leave_results(tmp_path / "models" / f"synth-d{first}", "config.json", "vad_report.json")
    _leave_results(tmp_path / "models" / f"synth-d{second}", "config.json")
    _leave_results(tmp_path / "models" / "synth-dc", "config.json", "vad_report.json")
    trained = []
    monkeypatch.setattr(recipe, "_one_delay", lambda out, r, d, *_: trained.append(d) or {})
    monkeypatch.setattr(recipe, "ProcessPoolExecutor", None)  # calling it would fail
    monkeypatch.setattr(recipe, "scores", lambda out, r: {"scored": True})
    assert recipe.run(tmp_path, made) == {"scored": True}
    assert trained == [second]


def test_the_longest_trainings_start_first():
    """The conditioned model, then the longer delays: a short one runs last, alone."""
    assert recipe._longest_first([2, 4, 8, 16, (2, 4, 8, 16)]) == [(2, 4, 8, 16), 16, 8, 4, 2]


def _leave_results(root, *names):
    """The files by which the recipe knows a step finished (their content is not read)."""
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("{}")


def test_the_command_line_hands_every_option_to_the_recipe(tmp_path, monkeypatch):
    given = []
    monkeypatch.setattr(recipe, "run", lambda out, made: given.append(made) or {})
    options = ["--train", "5", "--tokenizer-steps", "3", "--tokenizer-crop", "0"]
    options += ["--phone-lag", "0", "--lm-steps", "7", "--seed", "2", "--workers", "1"]
    options += ["--stream-frames", "40"]
    assert recipe.main([*options, "--jobs", "1", "--delays", "3", "--out", str(tmp_path)]) == 0
    assert given == [
        recipe.Recipe(
            delays=(3,),
            train=5,
            tokenizer_steps=3,
            tokenizer_crop=0,
            phone_lag=0,
            lm_steps=7,
            stream_frames=40,
            seed=2,
            workers=1,
            jobs=1,
        )
    ]
