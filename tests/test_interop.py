"""Interop with Kyutai's tools: the bundled checkpoints load in moshi's own loader, strictly, as
Kyutai's scripts load them, and give the words eval.wer gives; a folder uploaded to the hub
loads from the Hugging Face cache the same way."""

import json
import shutil

import pytest
import torch
from kyutai_flow import load, transcribe
from safetensors import safe_open

import dsmlab
from dsmlab.bundled import bundled_models
from dsmlab.checkpoint import write_checkpoint
from dsmlab.data import load_data
from dsmlab.migrate import migrate
from eval import wer
from eval.records import read_records

UTTERANCES = 3


@pytest.fixture(scope="module")
def test_speech():
    return [torch.from_numpy(u.audio) for u in load_data("synth", max_samples=UTTERANCES)]


# Kyutai's scripts pass no condition: the conditioned synth-dc runs in Kyutai's loop with one
# (tests/test_conditioning.py)
@pytest.mark.parametrize("name", [run for run in dsmlab.bundled_runs() if "@" not in run])
def test_each_bundled_model_runs_in_kyutais_flow_with_the_words_of_eval_wer(
    name, test_speech, tmp_path, monkeypatch
):
    folder = bundled_models()[name]
    monkeypatch.chdir(folder)  # moshi reads mimi_config_name from the working directory
    mimi, tokenizer, lm, info = load(directory=folder)
    assert len(lm.extra_heads) == 4 and lm.extra_heads[2].out_features == 6  # the VAD heads
    texts = [transcribe(mimi, tokenizer, lm, info, pcm).strip() for pcm in test_speech]

    monkeypatch.chdir(tmp_path)
    args = ["--model", name, "--max-samples", str(UTTERANCES), "--out", str(tmp_path / "run")]
    assert wer.main(args) == 0
    assert [r["hypothesis"] for r in read_records(tmp_path / "run")] == texts


def test_a_folder_uploaded_to_the_hub_loads_from_the_hf_cache(hub_offline, test_speech):
    """What `huggingface-cli upload someone/synth-d16 data/models/synth-d16` would put in the
    hub, as the HF cache holds it: moshi's from_hf_repo and dsmlab.load both take it offline."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = hub_offline / "models--someone--synth-d16"
    shutil.copytree(bundled_models()["synth-d16"], repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)

    mimi, tokenizer, lm, info = load(hf_repo="someone/synth-d16")
    text = transcribe(mimi, tokenizer, lm, info, test_speech[0]).strip()
    model = dsmlab.load("someone/synth-d16", device="cpu")
    assert model.source == "hf://someone/synth-d16" and model.has_vad
    assert dsmlab.transcribe(model, test_speech[0].numpy(), sample_rate=24000).text == text


def test_migration_declares_undeclared_heads_and_keeps_every_tensor(
    tiny_dir, tmp_path, monkeypatch
):
    """An older checkpoint (heads in the weights, not in config.json) fails moshi's strict
    load; after `python -m dsmlab migrate` it loads, with the same tensors."""
    old = tmp_path / "old"
    shutil.copytree(tiny_dir, old)
    config = json.loads((old / "config.json").read_text())
    del config["extra_heads_num_heads"], config["extra_heads_dim"]
    (old / "config.json").write_text(json.dumps(config))
    monkeypatch.chdir(old)  # moshi reads mimi_config_name from the working directory
    with pytest.raises(RuntimeError, match="Unexpected key"):
        load(directory=old)
    before = dsmlab.load(old, device="cpu").lm.state_dict()
    assert migrate(old) == ["extra_heads_dim: absent -> 6", "extra_heads_num_heads: absent -> 4"]
    assert migrate(old) == []  # migrating again changes nothing
    mimi, tokenizer, lm, info = load(directory=old)
    after = lm.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_what_cannot_be_migrated_is_one_line(tiny_dir, tmp_path):
    pickled = tmp_path / "pickled"
    shutil.copytree(tiny_dir, pickled)
    config = json.loads((pickled / "config.json").read_text()) | {"moshi_name": "model.pt"}
    (pickled / "config.json").write_text(json.dumps(config))
    with pytest.raises(dsmlab.DSMLabError, match="only safetensors weights are loaded"):
        migrate(pickled)
    mismatched = tmp_path / "mismatched"
    shutil.copytree(tiny_dir, mismatched)
    config = json.loads((mismatched / "config.json").read_text()) | {"num_layers": 3}
    (mismatched / "config.json").write_text(json.dumps(config))
    with pytest.raises(dsmlab.DSMLabError, match="do not load"):
        migrate(mismatched)


def test_a_bf16_checkpoint_stays_bf16(tiny_dir, tmp_path):
    model = dsmlab.load(tiny_dir, device="cpu", dtype=torch.bfloat16)
    folder = write_checkpoint(model, tmp_path / "bf16")
    migrate(folder)
    assert dsmlab.load(folder, device="cpu", dtype=torch.bfloat16).lm.dtype == torch.bfloat16
    with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"BF16"}
