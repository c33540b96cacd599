"""The CUDA path: what the GPU checks of the README run (`pytest -m cuda` on a GPU machine)."""

import json

import pytest
import torch

import dsmlab
from dsmlab.data import load_data
from eval import bench, wer

pytestmark = pytest.mark.cuda


def test_fp32_on_cuda_writes_the_tokens_of_the_cpu():
    rows = load_data("synth", None, None, None, 4, False, None)
    audio = [torch.from_numpy(u.audio) for u in rows]
    tokens = {}
    for device in ("cpu", "cuda"):
        model = dsmlab.load("synth-d8", device=device, dtype=torch.float32)
        found = dsmlab.transcribe_batch(model, audio, [dsmlab.SAMPLE_RATE] * 4, batch_size=4)
        tokens[device] = [t.tokens for t in found]
    assert tokens["cuda"] == tokens["cpu"]


def test_eval_wer_in_bf16_on_cuda_scores_as_fp32_on_cpu(tmp_path):
    found = {}
    for device in ("cuda", "cpu"):
        out = tmp_path / device
        args = ["--model", "synth-d16", "--max-samples", "30", "--device", device]
        assert wer.main([*args, "--out", str(out)]) == 0
        found[device] = json.loads((out / "results.json").read_text())["metrics"]["corpus_wer"]
    assert abs(found["cuda"] - found["cpu"]) <= 0.03


def test_bench_of_the_released_architecture_at_random_weights(tmp_path):
    out = tmp_path / "bench"
    args = ["--model", "random:stt-1b-en_fr", "--batch-size", "1", "8", "--seconds", "4"]
    assert bench.main([*args, "--out", str(out)]) == 0
    rows = json.loads((out / "bench.json").read_text())["rows"]
    assert [r["batch_size"] for r in rows] == [1, 8]
    assert all(r["token_agreement"] > 0.99 for r in rows)
