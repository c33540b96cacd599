"""Weight-space interpolation of a fine-tuned checkpoint toward its base
(`dsmlab.train.interpolate`): the weights lie on the line between the two, the ends are the
two models, and pairs that are not one model at two points are refused in one line."""

import json

import torch
from safetensors.torch import load_file

import dsmlab
from dsmlab.checkpoint import write_checkpoint
from dsmlab.train import interpolate


def _tuned(base_dir, out, seed=0, delay_s=None, mimi=False):
    """The base checkpoint with its LM (or Mimi) weights moved, as if fine-tuned."""
    model = dsmlab.load(base_dir, device="cpu")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in (model.mimi if mimi else model.lm).parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=generator))
    out = write_checkpoint(model, out)
    if delay_s is not None:
        config = json.loads((out / "config.json").read_text())
        config["stt_config"]["audio_delay_seconds"] = delay_s
        (out / "config.json").write_text(json.dumps(config))
    return out


def test_the_weights_lie_on_the_line_from_base_to_tuned(tiny_novad_dir, tmp_path):
    tuned_dir = _tuned(tiny_novad_dir, tmp_path / "tuned")
    base = load_file(tiny_novad_dir / "model.safetensors")
    tuned = load_file(tuned_dir / "model.safetensors")
    for alpha in (0.25, 1.0):
        out = tmp_path / f"at-{alpha}"
        argv = ["--base", str(tiny_novad_dir), "--tuned", str(tuned_dir), "--alpha", str(alpha)]
        assert interpolate.main([*argv, "--out", str(out)]) == 0
        weights = load_file(out / "model.safetensors")
        assert weights.keys() == base.keys()
        for name, start in base.items():
            expected = start + alpha * (tuned[name] - start)
            torch.testing.assert_close(weights[name], expected, atol=1e-6, rtol=1e-5)
        assert interpolate.main([*argv, "--out", str(out)]) == 0  # over its own output
        about = json.loads((out / "interpolation.json").read_text())
        assert about["alpha"] == alpha and about["tuned"]["files"] != about["base"]["files"]
        assert dsmlab.load(out, device="cpu").delay_s == dsmlab.load(tuned_dir).delay_s
    assert any(not torch.equal(tuned[k], v) for k, v in base.items())


def test_pairs_that_are_not_one_model_are_refused_in_one_line(
    tiny_dir, tiny_novad_dir, tmp_path, capsys
):
    delay = json.loads((tiny_novad_dir / "config.json").read_text())["stt_config"]
    other_delay = delay["audio_delay_seconds"] + 0.08
    elsewhere = _tuned(tiny_novad_dir, tmp_path / "elsewhere")
    recorded = {"base": {"files": {"model.safetensors": "0123456789abcdef"}}}
    (elsewhere / "finetune.json").write_text(json.dumps(recorded))
    cases = [
        (tiny_dir, "not one LM architecture (extra_heads"),
        (_tuned(tiny_novad_dir, tmp_path / "late", delay_s=other_delay), "different delays"),
        (_tuned(tiny_novad_dir, tmp_path / "mimi", mimi=True), "do not share their Mimi"),
        (elsewhere, "was tuned from weights 0123456789abcdef"),
    ]
    capsys.readouterr()
    for tuned, message in cases:
        argv = ["--base", str(tiny_novad_dir), "--tuned", str(tuned), "--alpha", "0.5"]
        assert interpolate.main([*argv, "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("error:") == 1 and message in err.splitlines()[-1], err
    assert not (tmp_path / "out").exists()
    tuned = _tuned(tiny_novad_dir, tmp_path / "tuned")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    for out, message in ((tuned, "is one of the two checkpoints"), (tmp_path / "taken", "holds")):
        argv = ["--base", str(tiny_novad_dir), "--tuned", str(tuned), "--alpha", "0.5"]
        assert interpolate.main([*argv, "--out", str(out)]) == 2
        assert message in capsys.readouterr().err
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"


def test_a_conditioned_pair_is_compared_by_the_delays_it_serves():
    """synth-dc run at 0.16 s and at its default 1.28 s: one model, not two timings."""
    base, tuned = dsmlab.load("synth-dc", device="cpu"), dsmlab.load("synth-dc@0.16", device="cpu")
    assert base.delay_s != tuned.delay_s and base.delays_s == tuned.delays_s
    before = {k: v.clone() for k, v in tuned.lm.state_dict().items()}
    interpolate.interpolate(base, tuned, 0.5)
    for name, weight in tuned.lm.state_dict().items():
        torch.testing.assert_close(weight, before[name])
