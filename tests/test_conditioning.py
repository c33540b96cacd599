"""A delay-conditioned checkpoint: one model, several delays, the delay chosen at load time."""

import json

import kyutai_flow
import pytest
import torch
from conftest import make_audio
from moshi.models.loaders import get_moshi_lm

import dsmlab
from dsmlab.checkpoint import lm_kwargs, write_checkpoint
from dsmlab.conditioning import delay_conditioner, delay_sum
from dsmlab.loading import split_delay
from dsmlab.train.lm import teacher_forced
from eval import bench


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
    assert torch.equal(delay_sum(theirs, [0.16, 0.64]), delay_sum(ours, [0.16, 0.64]))


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


def test_training_and_streaming_add_the_same_condition(conditioned_dir):
    model = dsmlab.load(f"{conditioned_dir}@0.16", device="cpu")
    codes = torch.randint(0, 8, (1, 1 + model.lm.n_q, 5))
    with_condition = teacher_forced(model.lm, codes, delay_sum(model.lm, [0.16]))[1]
    other = teacher_forced(model.lm, codes, delay_sum(model.lm, [0.64]))[1]
    plain = teacher_forced(model.lm, codes)[1]
    assert not torch.allclose(with_condition, plain) and not torch.allclose(with_condition, other)
    tensors = model.condition_tensors(batch_size=1)
    assert torch.equal(model.lm.fuser.get_sum(tensors), delay_sum(model.lm, [0.16]))


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
