"""A delay-conditioned checkpoint: one model, several delays, the delay chosen at load time."""

import json
import shutil

import kyutai_flow
import pytest
import torch
from conftest import make_audio
from evaldata import save_to_disk
from moshi.models.loaders import get_moshi_lm
from safetensors.torch import load_file

import dsmlab
from dsmlab.checkpoint import lm_kwargs, write_checkpoint
from dsmlab.conditioning import condition_tensors, delay_conditioner
from dsmlab.loading import split_delay
from dsmlab.train import finetune
from dsmlab.train.lm import teacher_forced
from eval import bench, end_to_end


@pytest.fixture(scope="module")
def conditioned_dir(tiny_novad, tmp_path_factory):
    """The tiny model's Mimi and tokenizer under a random LM conditioned on 0.16 and 0.64 s."""
    config = tiny_novad.config | delay_conditioner([0.16, 0.64])
    config["stt_config"] = {"audio_delay_seconds": 0.64, "audio_silence_prefix_seconds": 0.0}
    torch.manual_seed(3)
    lm = get_moshi_lm(None, lm_kwargs=lm_kwargs(config), device="cpu", dtype=torch.float32)
    model = dsmlab.DSMModel.from_parts(
        config,
        tiny_novad.mimi,
        lm.eval(),
        tiny_novad.tokenizer,
        name="dc",
        source="test",
        mimi_config=tiny_novad.mimi_config,
    )
    return write_checkpoint(model, tmp_path_factory.mktemp("dc"))


def test_a_conditioned_checkpoint_loads_at_its_default_or_a_named_delay(conditioned_dir):
    plain = dsmlab.load(conditioned_dir, device="cpu")
    assert (plain.delay_s, plain.delays_s) == (0.64, [0.16, 0.64])
    assert plain.name == f"{conditioned_dir.name}@0.64"  # one name per delay, the default too
    short = dsmlab.load(f"{conditioned_dir}@0.16", device="cpu")
    assert short.name == f"{conditioned_dir.name}@0.16"
    assert (short.delay_s, short.delay_frames) == (0.16, 2)
    assert short.describe()["delay_s"] == 0.16
    assert short.at_delay(0.64).name == f"{conditioned_dir.name}@0.64"


def test_moshis_own_loader_builds_the_delay_conditioner_with_its_weights(
    conditioned_dir, monkeypatch
):
    monkeypatch.chdir(conditioned_dir)  # moshi reads mimi_config_name from the working directory
    theirs = kyutai_flow.load(directory=conditioned_dir)[2]
    ours = dsmlab.load(conditioned_dir, device="cpu").lm
    assert list(theirs.condition_provider.conditioners) == ["delay"]
    both = [lm.fuser.get_sum(condition_tensors(lm, [0.16, 0.64])) for lm in (theirs, ours)]
    assert torch.equal(*both)


def _token_probs(model: dsmlab.DSMModel, audio: torch.Tensor) -> torch.Tensor:
    frames = audio.view(-1, model.frame_size)
    probs = []
    with dsmlab.Stepper(model, batch_size=1) as stepper:
        for frame in frames:
            stepper.step_tensors(frame[None])
            probs.append(stepper.token_probs.clone())
    return torch.cat(probs)


def test_the_delay_asked_for_reaches_streaming_inference(conditioned_dir):
    model = dsmlab.load(conditioned_dir, device="cpu")
    audio = make_audio(0.8, seed=5)
    long, again = _token_probs(model, audio), _token_probs(model.at_delay(0.64), audio)
    short = _token_probs(model.at_delay(0.16), audio)
    assert torch.equal(long, again)
    assert not torch.allclose(long, short)


def test_training_sees_the_condition_streaming_sees(conditioned_dir):
    """Teacher forcing with the condition's sum (training's path) gives, at every step, the
    probability the stepper gave its token; another delay's sum does not."""
    model = dsmlab.load(f"{conditioned_dir}@0.16", device="cpu")
    frames = make_audio(0.8, seed=5).view(-1, model.frame_size)
    codes, tokens, probs = [], [], []
    with dsmlab.Stepper(model, batch_size=1) as stepper:
        for frame in frames:
            codes.append(stepper.encode(frame[None, None]))
            tokens.append(int(stepper.step_codes(codes[-1])[0][0]))
            probs.append(float(stepper.token_probs[0]))
    audio = torch.cat(codes, dim=-1)
    text = torch.tensor(tokens)[None, None]
    inputs = torch.cat([text[:, :, :-1], audio[:, :, 1:]], dim=1)  # as batch_codes lays them
    inputs = torch.cat([inputs, inputs[:, :, -1:]], dim=2)  # the last column is never read
    steps = torch.arange(len(tokens))
    for delay, same in ((0.16, True), (0.64, False)):
        logits = teacher_forced(model.lm, inputs, condition_tensors(model.lm, [delay]))[1][0]
        forced = logits.softmax(-1)[steps, tokens]
        assert torch.allclose(forced, torch.tensor(probs), atol=1e-5) == same


def test_a_delay_the_model_does_not_serve_is_a_one_line_error(conditioned_dir, tiny_novad):
    with pytest.raises(dsmlab.UsageError, match=r"serves the delays 0.16, 0.64 s, not 0.32 s"):
        dsmlab.load(f"{conditioned_dir}@0.32", device="cpu")
    assert tiny_novad.condition_tensors(batch_size=2) is None
    fixed = tiny_novad.delay_s
    assert tiny_novad.at_delay(fixed) is tiny_novad  # a fixed model at its own delay
    with pytest.raises(dsmlab.UsageError, match="has a fixed delay"):
        tiny_novad.at_delay(fixed + 0.08)


def test_only_a_numeric_suffix_names_a_delay():
    assert split_delay("runs/dc@0.64") == ("runs/dc", 0.64)
    assert split_delay("runs/dc@1.28s") == ("runs/dc", 1.28)
    assert split_delay("kyutai/stt-1b-en_fr") == ("kyutai/stt-1b-en_fr", None)
    assert split_delay("odd@name") == ("odd@name", None)


def test_kyutais_loop_with_the_condition_gives_the_steppers_tokens(conditioned_dir, tmp_path):
    out = tmp_path / "bench"
    args = ["--model", f"{conditioned_dir}@0.16", "--batch-size", "2", "--seconds", "1"]
    assert bench.main(args + ["--out", str(out)]) == 0
    (row,) = json.loads((out / "bench.json").read_text())["rows"]
    assert row["token_agreement"] == 1.0


def test_a_broken_delay_conditioner_is_a_one_line_error(conditioned_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(conditioned_dir, broken)
    config = json.loads((broken / "config.json").read_text())
    config["stt_config"]["audio_delay_seconds"] = 0.5  # not one it was trained for
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(dsmlab.UsageError, match="serves the delays 0.16, 0.64 s, not 0.5 s"):
        dsmlab.load(broken, device="cpu")
    del config["conditioners"]["delay"]["lut"]["possible_values"]
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(dsmlab.DSMLabError, match='the "delay" conditioner must be'):
        dsmlab.load(broken, device="cpu")


def test_a_folder_whose_name_holds_an_at_loads_whole(conditioned_dir, tmp_path):
    odd = tmp_path / "exp@3"
    shutil.copytree(conditioned_dir, odd)
    assert split_delay(odd) == (odd, None)
    assert dsmlab.load(odd, device="cpu").name == "exp@3@0.64"


def test_kyutais_script_cannot_run_a_conditioned_model(conditioned_dir, tmp_path):
    with pytest.raises(dsmlab.UsageError, match="passes no delay condition"):
        end_to_end.run(str(conditioned_dir), "synth", tmp_path, 1, 1, [1])


def test_fine_tuning_a_conditioned_model_at_one_of_its_delays_leaves_its_delay_table(
    conditioned_dir, tmp_path
):
    """Its condition tensors are made once, before the steps: the table is frozen (training it
    through them failed at the second step), and the other delay it serves keeps its row."""
    data = save_to_disk(tmp_path / "data", n=4)
    argv = ["--model", str(conditioned_dir), "--dataset", data, "--delay", "0.16", "--full"]
    argv += ["--steps", "3", "--batch-size", "1", "--valid-samples", "0", "--stream-frames", "60"]
    assert finetune.main([*argv, "--device", "cpu", "--out", str(tmp_path / "out")]) == 0
    base = load_file(conditioned_dir / "model.safetensors")
    tuned = load_file(tmp_path / "out" / "model.safetensors")
    table = [k for k in base if k.startswith("condition_provider.")]
    assert table and all(torch.equal(tuned[k], base[k]) for k in table)
    assert not torch.equal(tuned["text_linear.weight"], base["text_linear.weight"])


def test_a_conditioned_model_is_not_ramped_to_another_delay(conditioned_dir, tmp_path, capsys):
    data = save_to_disk(tmp_path / "data", n=4)
    argv = ["--model", str(conditioned_dir), "--dataset", data, "--delay", "0.16"]
    argv += ["--delay-ramp", "2", "--device", "cpu", "--out", str(tmp_path / "out")]
    assert finetune.main(argv) == 2
    assert "--delay-ramp moves a fixed-delay model" in capsys.readouterr().err
