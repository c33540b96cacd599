import json
import shutil

import pytest
import torch

import dsmlab
from dsmlab.train import audio_tokenizer, recipe
from dsmlab.train.corpus import generate

TINY = {
    "delays": (1, 2),
    "train": 24,
    "validation": 4,
    "test": 4,
    "unseen_flite": 2,
    "festival": 2,
    "tokenizer_steps": 4,
    "lm_steps": 20,
}


@pytest.mark.slow
def test_the_recipe_trains_its_delays_at_once_as_it_would_in_turn_and_resumes(
    tmp_path, monkeypatch
):
    sizes = {
        k.replace("_", "-"): v
        for k, v in TINY.items()
        if k in ("train", "validation", "test", "unseen_flite", "festival")
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
        outs[jobs] = out

    seconds = json.loads((outs[2] / "recipe.json").read_text())["seconds"]
    assert {"lm d1", "lm d2", "vad heads d1", "vad heads d2", "scores"} <= set(seconds)
    for name in ("synth-d1", "synth-d2"):
        a, b = (dsmlab.load(o / "models" / name, device="cpu") for o in outs.values())
        assert a.has_vad and b.has_vad
        sa, sb = a.lm.state_dict(), b.lm.state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)  # the same training either way
    assert json.loads((outs[1] / "recipe_report.json").read_text()) == report

    recipe.run(outs[2], recipe.Recipe(**TINY, jobs=2))  # all done: nothing runs again
    assert json.loads((outs[2] / "recipe.json").read_text())["seconds"] == seconds
