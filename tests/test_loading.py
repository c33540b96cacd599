import json
import shutil

import pytest
import torch

import dsmlab
from dsmlab import DSMLabError
from dsmlab.loading import resolve


def copy_checkpoint(src, tmp_path, **config_changes):
    dst = tmp_path / "ckpt"
    shutil.copytree(src, dst)
    config = json.loads((dst / "config.json").read_text())
    for key, value in config_changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    (dst / "config.json").write_text(json.dumps(config))
    return dst


def test_local_checkpoint_loads_with_its_stt_config(tiny, tiny_novad):
    assert (tiny.delay_s, tiny.prefix_s, tiny.padding_id, tiny.end_of_padding_id) == (
        0.24,
        0.16,
        3,
        0,
    )
    assert tiny.device.type == "cpu" and tiny.lm.dtype == torch.float32
    assert tiny.frame_rate == 12.5 and tiny.frame_size == 1920 and tiny.sample_rate == 24000
    assert tiny.has_vad and len(tiny.lm.extra_heads) == 4
    assert not tiny_novad.has_vad


def test_vad_heads_are_declared_and_found_in_the_weights_when_they_are_not(tiny_dir, tmp_path):
    config = json.loads((tiny_dir / "config.json").read_text())
    assert (config["extra_heads_num_heads"], config["extra_heads_dim"]) == (4, 6)
    # Kyutai's -candle repos carry the heads in the weights without declaring them
    bare = copy_checkpoint(tiny_dir, tmp_path, extra_heads_num_heads=None, extra_heads_dim=None)
    model = dsmlab.load(bare, device="cpu")
    assert len(model.lm.extra_heads) == 4 and model.lm.extra_heads[0].out_features == 6


def test_specs_resolve_to_hub_repos_or_directories(tiny_dir):
    assert resolve("stt-2.6b-en").repo_id == "kyutai/stt-2.6b-en"
    assert resolve("stt-1b-en_fr-candle").repo_id == "kyutai/stt-1b-en_fr-candle"
    assert resolve("someone/my-stt").repo_id == "someone/my-stt"
    assert resolve(str(tiny_dir)).local_dir == tiny_dir.resolve()
    for bad in ["nonsense", "./missing/dir", "a/b/c"]:
        with pytest.raises(DSMLabError, match="unknown model"):
            resolve(bad)


def test_unreachable_hub_names_model_file_and_way_out(hub_offline):
    with pytest.raises(DSMLabError) as error:
        dsmlab.load("stt-2.6b-en", device="cpu")
    message = str(error.value)
    assert "\n" not in message
    for part in [
        "stt-2.6b-en",
        "config.json",
        "kyutai/stt-2.6b-en",
        "HF_HUB_OFFLINE",
        "local directory",
    ]:
        assert part in message


def test_missing_file_in_a_directory_is_named(tiny_dir, tmp_path):
    ckpt = copy_checkpoint(tiny_dir, tmp_path)
    (ckpt / "tokenizer.model").unlink()
    with pytest.raises(DSMLabError, match=r"tokenizer.model is missing"):
        dsmlab.load(ckpt, device="cpu")


def test_pickled_weights_are_refused(tiny_dir, tmp_path):
    ckpt = copy_checkpoint(tiny_dir, tmp_path, moshi_name="model.pt")
    torch.save({"x": torch.zeros(1)}, ckpt / "model.pt")
    with pytest.raises(DSMLabError, match="only safetensors weights are loaded"):
        dsmlab.load(ckpt, device="cpu")


def test_configs_that_are_not_stt_are_refused(tiny_dir, tmp_path):
    with pytest.raises(DSMLabError, match="no stt_config.audio_delay_seconds"):
        dsmlab.load(copy_checkpoint(tiny_dir, tmp_path / "a", stt_config=None), device="cpu")
    with pytest.raises(DSMLabError, match="model_type 'moshi'"):
        dsmlab.load(copy_checkpoint(tiny_dir, tmp_path / "b", model_type="moshi"), device="cpu")


def test_weights_that_do_not_match_the_config_give_one_line(tiny_dir, tmp_path):
    ckpt = copy_checkpoint(tiny_dir, tmp_path, num_layers=3)
    with pytest.raises(DSMLabError, match="do not load") as error:
        dsmlab.load(ckpt, device="cpu")
    assert "\n" not in str(error.value)


def test_device_choice(tiny_dir, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DSMLabError, match="CUDA is not available"):
        dsmlab.load(tiny_dir, device="cuda")
    with pytest.raises(DSMLabError, match="unknown device"):
        dsmlab.load(tiny_dir, device="tpu9")
    assert dsmlab.load(tiny_dir).device.type == "cpu"  # the default without CUDA
