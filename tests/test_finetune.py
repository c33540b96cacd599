"""Fine-tuning (`dsmlab.train.finetune`): LoRA through moshi's own modules, a merged checkpoint
and an adapter that moshi loads with the same outputs, resume after a kill, word times aligned
when the data has none, and bad input refused in one line."""

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import soundfile
import torch
from evaldata import TORCHRUN, rank_failures, save_to_disk
from kyutai_flow import load as kyutai_load
from moshi.models.loaders import get_moshi_lm
from safetensors.torch import load_file

import dsmlab
from dsmlab.checkpoint import lm_kwargs, model_identity, write_checkpoint
from dsmlab.data import load_data
from dsmlab.train import delay_move, finetune, finetune_data, lora
from dsmlab.train.lm import teacher_forced

ROOT = Path(__file__).resolve().parent.parent


def _logits(lm) -> torch.Tensor:
    codes = torch.randint(0, 64, (2, 9, 30), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return teacher_forced(lm, codes)[1]


@pytest.mark.parametrize("embeddings", [False, True], ids=["adapters", "with-embeddings"])
def test_merged_lora_equals_the_adapter_and_loads_strictly_in_moshi(
    tiny_novad_dir, tmp_path, monkeypatch, embeddings
):
    model = dsmlab.load(tiny_novad_dir, device="cpu")
    base = _logits(model.lm)
    lora.add_lora(model.lm, rank=4, scaling=2.0, embeddings=embeddings)
    assert torch.equal(_logits(model.lm), base)  # adapters start at zero: the base model
    names = [n for n, _ in model.lm.named_parameters()]
    tables = {"text_emb.weight"} | {f"emb.{i}.weight" for i in range(len(model.lm.emb))}
    trainable = {n for n, p in model.lm.named_parameters() if p.requires_grad}
    adapters = {n for n in names if ".lora_" in n}
    assert adapters and trainable == adapters | (tables if embeddings else set())
    generator = torch.Generator().manual_seed(1)
    for name, p in model.lm.named_parameters():
        if ".lora_B" in name or (embeddings and name in tables):  # as if trained
            p.data += 0.05 * torch.randn(p.shape, generator=generator)
    adapted = _logits(model.lm)
    assert not torch.allclose(adapted, base, atol=1e-3)
    adapter = lora.save_adapter(model.lm, tmp_path / "adapter", {"base": str(tiny_novad_dir)})
    assert set(load_file(adapter / lora.ADAPTER_WEIGHTS)) == trainable
    lora.merge(model.lm)
    torch.testing.assert_close(_logits(model.lm), adapted, atol=1e-4, rtol=1e-4)

    merged = write_checkpoint(model, tmp_path / "merged")
    monkeypatch.chdir(merged)  # moshi reads mimi_config_name from the working directory
    _, _, strict_lm, _ = kyutai_load(directory=merged)
    torch.testing.assert_close(_logits(strict_lm), adapted, atol=1e-4, rtol=1e-4)
    config = json.loads((tiny_novad_dir / "config.json").read_text())
    with_adapter = get_moshi_lm(
        tiny_novad_dir / "model.safetensors",
        lm_kwargs=lm_kwargs(config) | {"lora": True, "lora_rank": 4, "lora_scaling": 2.0},
        device="cpu",
        dtype=torch.float32,
        lora_weights=adapter / lora.ADAPTER_WEIGHTS,
        fuse_lora=True,
    )
    torch.testing.assert_close(_logits(with_adapter), adapted, atol=1e-4, rtol=1e-4)


def _tune(model_dir, data, out, **kwargs):
    return finetune.finetune(
        str(model_dir),
        data,
        out,
        steps=4,
        batch_size=2,
        save_every=2,
        eval_every=2,
        valid_samples=2,
        stream_frames=120,
        device="cpu",
        **kwargs,
    )


def test_finetune_writes_a_checkpoint_that_loads_and_resumes_after_a_kill(
    tiny_novad_dir, tmp_path, monkeypatch
):
    data = load_data(save_to_disk(tmp_path / "data", n=8))
    whole = _tune(tiny_novad_dir, data, tmp_path / "whole", delay_s=0.4)
    model = dsmlab.load(whole, device="cpu")
    assert model.delay_s == pytest.approx(0.4)  # the text stream rebuilt at the new delay
    log = json.loads((whole / "training_log.json").read_text())
    assert log[0] == {"step": 0, "validation_wer": log[0]["validation_wer"]}  # before a step
    assert log[-1]["step"] == 4 and "validation_wer" in log[-1]
    report = json.loads((whole / "finetune.json").read_text())
    assert report["data_used"]["word_times"] == "dataset"
    assert report["data_used"]["training_rows"] == 6
    assert report["peak_memory_mb"]["process_rss"] > 0
    adapter = load_file(whole / "adapter" / lora.ADAPTER_WEIGHTS)
    assert adapter and all(".lora_" in k for k in adapter)
    assert any(v.abs().max() > 0 for k, v in adapter.items() if ".lora_B" in k)  # it trained
    base = load_file(tiny_novad_dir / "model.safetensors")
    tuned = load_file(whole / "model.safetensors")
    assert tuned.keys() == base.keys()
    assert any(not torch.equal(tuned[k], base[k]) for k in base)

    real = finetune.stream_example
    drawn = []

    def dies_in_step_three(*args):
        drawn.append(1)
        if len(drawn) == 5:  # two streams a step: the fifth is step 3's
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(finetune, "stream_example", dies_in_step_three)
    with pytest.raises(KeyboardInterrupt):
        _tune(tiny_novad_dir, data, tmp_path / "killed", delay_s=0.4)
    assert not (tmp_path / "killed" / "model.safetensors").exists()
    monkeypatch.setattr(finetune, "stream_example", real)
    resumed = _tune(tiny_novad_dir, data, tmp_path / "killed", delay_s=0.4)
    again = load_file(resumed / "model.safetensors")
    for name, weight in tuned.items():
        torch.testing.assert_close(again[name], weight, atol=1e-6, rtol=1e-5)


def test_tuned_embedding_tables_train_and_travel_in_the_adapter(tiny_novad_dir, tmp_path):
    data = load_data(save_to_disk(tmp_path / "data", n=8))
    out = _tune(tiny_novad_dir, data, tmp_path / "out", tune_embeddings=True)
    adapter = load_file(out / "adapter" / lora.ADAPTER_WEIGHTS)
    base = load_file(tiny_novad_dir / "model.safetensors")
    tuned = load_file(out / "model.safetensors")
    for name in ("text_emb.weight", "emb.0.weight"):
        assert not torch.equal(adapter[name], base[name])  # it trained
        torch.testing.assert_close(tuned[name], adapter[name].to(tuned[name].dtype))
    assert json.loads((out / "finetune.json").read_text())["tune_embeddings"] is True


def test_a_delay_ramp_moves_the_text_stream_a_frame_at_a_time(
    tiny_novad_dir, tmp_path, monkeypatch
):
    """Over the ramp's steps each batch is built at most a frame from the one before, from
    the base model's delay to the new one, then at the new one."""
    base = dsmlab.load(tiny_novad_dir, device="cpu")
    base_frames = round(base.delay_s * base.frame_rate)
    assert delay_move.ramped_frames(0, 4, base_frames, base_frames + 4) == base_frames
    real, seen = finetune.training_codes, []

    def recording(batch, delays, *args):
        seen.append(delays)
        return real(batch, delays, *args)

    monkeypatch.setattr(finetune, "training_codes", recording)
    data = load_data(save_to_disk(tmp_path / "data", n=6))
    end_frames = base_frames + 3
    out = _tune(
        tiny_novad_dir,
        data,
        tmp_path / "ramped",
        delay_s=end_frames / base.frame_rate,
        delay_ramp=3,
    )
    frames = [d[0] for d in seen]
    assert all(len(set(d)) == 1 for d in seen)  # one delay a batch
    assert frames == [base_frames + 1, base_frames + 2, end_frames, end_frames]
    report = json.loads((out / "finetune.json").read_text())
    assert report["delay_ramp"] == 3
    assert dsmlab.load(out, device="cpu").delay_s == pytest.approx(end_frames / base.frame_rate)


def test_code_noise_reaches_every_batch_and_the_report_with_the_seed(
    tiny_novad_dir, tmp_path, monkeypatch
):
    real, rates = finetune.training_codes, []

    def recording(*args):
        rates.append(args[-1])
        return real(*args)

    monkeypatch.setattr(finetune, "training_codes", recording)
    data = load_data(save_to_disk(tmp_path / "data", n=6))
    out = _tune(tiny_novad_dir, data, tmp_path / "noisy", code_noise=0.3, seed=3)
    assert rates == [0.3] * 4
    report = json.loads((out / "finetune.json").read_text())
    assert (report["code_noise"], report["seed"]) == (0.3, 3)
    with pytest.raises(SystemExit):  # a share, not a count: refused by the parser
        finetune.main(["--model", "x", "--dataset", "y", "--code-noise", "3", "--out", "z"])


def test_without_word_times_the_words_are_aligned_to_the_models_transcript(tmp_path):
    """(audio, text) only: times from the bundled default model's own transcript, close to
    the synthesizer's true times."""
    rows = load_data("synth", split="test", max_samples=10)
    lines, truth = [], []
    for k, utterance in enumerate(rows):
        soundfile.write(tmp_path / f"{k}.wav", utterance.audio, 24000)
        lines.append(json.dumps({"audio": f"{k}.wav", "text": utterance.text}))
        truth.append(utterance.words)
    (tmp_path / "data.jsonl").write_text("\n".join(lines) + "\n")
    model = dsmlab.load(dsmlab.default_model(), device="cpu")
    prepared = finetune_data.prepare(
        model, load_data(str(tmp_path / "data.jsonl")), held_out=2, cache_dir=tmp_path / "out"
    )
    assert prepared.summary["word_times"] == f"aligned to {model.name}'s transcript"
    assert prepared.summary["words_matched"] > 0.8

    def start_errors(examples) -> list[float]:
        return [
            abs(start - word["start"])
            for example, words in zip(examples, truth, strict=False)
            for start, word in zip(example.starts, words, strict=True)
        ]

    assert len(prepared.examples) == 8 and statistics.median(start_errors(prepared.examples)) < 0.06
    # --align-with: another model's transcript (its own delay), not the cache of the first
    other = finetune_data.prepare(
        model,
        load_data(str(tmp_path / "data.jsonl")),
        held_out=2,
        cache_dir=tmp_path / "out",
        aligner=dsmlab.load("synth-d8", device="cpu"),
    )
    assert other.summary["word_times"] == "aligned to synth-d8's transcript"
    assert [e.starts for e in other.examples] != [e.starts for e in prepared.examples]
    assert statistics.median(start_errors(other.examples)) < 0.06
    # "Peter ... inside." spelled as the bundled tokenizer spells it: never its unknown id
    unknown = model.tokenizer.unk_id()
    assert all(unknown not in ids for e in prepared.examples for ids in e.word_ids)
    assert prepared.summary["words_respelled"] >= 8 and prepared.summary["words_unspellable"] == 0
    assert model.tokenizer.decode(prepared.examples[0].word_ids[0]) == truth[0][0]["word"]
    assert (tmp_path / "out" / finetune_data.CACHE_NAME).is_file()


def test_bad_input_is_refused_in_one_line(tiny_novad_dir, tmp_path, capsys):
    (tmp_path / "text_only.jsonl").write_text('{"text": "no audio here"}\n')
    empty = save_to_disk(tmp_path / "empty", n=3, text="")
    fine = save_to_disk(tmp_path / "fine", n=4)
    cases = [
        (["--dataset", str(tmp_path / "text_only.jsonl")], 2, "no 'audio' column"),
        (["--dataset", empty], 1, "0 usable rows (3 empty text)"),
        (["--dataset", fine, "--delay", "0.3"], 2, "not a whole number of 0.08 s frames"),
        (["--dataset", fine, "--delay", "9.6"], 2, "past the"),
        (["--dataset", fine, "--fsdp"], 2, "--fsdp shards across processes: launch with torchrun"),
        (["--dataset", fine, "--full", "--tune-embeddings"], 2, "goes with a LoRA run"),
    ]
    capsys.readouterr()
    for extra, status, message in cases:
        argv = ["--model", str(tiny_novad_dir), "--split", "train", "--out", str(tmp_path / "o")]
        assert finetune.main(argv + extra) == status
        err = capsys.readouterr().err.strip()  # progress bars, then the one line
        last = err.replace("\r", "\n").splitlines()[-1]
        assert err.count("error:") == 1 and last.startswith("error:") and message in last, err


@pytest.mark.slow
def test_two_gloo_processes_train_as_one_process_on_the_whole_batch(tiny_novad_dir, tmp_path):
    """torchrun: each process takes half of every batch; the summed gradients are the whole
    batch's, so two processes end where one does."""
    data = save_to_disk(tmp_path / "data", n=8)
    args = ["-m", "dsmlab.train.finetune", "--model", str(tiny_novad_dir), "--dataset", data]
    args += ["--steps", "3", "--batch-size", "2", "--valid-samples", "2", "--eval-every", "3"]
    args += ["--stream-frames", "120", "--device", "cpu"]
    env = os.environ | {"NO_TORCH_COMPILE": "1", "OMP_NUM_THREADS": "1"}
    for launch, out in (([sys.executable], "one"), (TORCHRUN, "two")):
        done = subprocess.run(
            [*launch, *args, "--out", str(tmp_path / out)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, rank_failures(done.stderr)
    one = load_file(tmp_path / "one" / "model.safetensors")
    two = load_file(tmp_path / "two" / "model.safetensors")
    base = load_file(tiny_novad_dir / "model.safetensors")
    assert any(not torch.equal(one[k], v) for k, v in base.items())
    for name, weight in one.items():
        torch.testing.assert_close(two[name], weight, atol=1e-5, rtol=1e-4)
    report = json.loads((tmp_path / "two" / "finetune.json").read_text())
    assert report["processes"] == 2


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind", [["--full"], ["--lora-rank", "4"], ["--lora-rank", "4", "--tune-embeddings"]]
)
def test_fsdp_shards_the_tuning_and_ends_where_one_process_does(tiny_dir, tmp_path, kind):
    """--fsdp: the LM sharded across two gloo processes (each holds half of every weight and
    of the optimizer state), killed after a save and resumed; the merged checkpoint is the one
    a single process writes on the whole batch. A model with VAD heads, so the validation's
    streaming inference runs through the sharded LM too."""
    data = save_to_disk(tmp_path / "data", n=8)
    args = ["-m", "dsmlab.train.finetune", "--model", str(tiny_dir), "--dataset", data, *kind]
    args += ["--steps", "6", "--batch-size", "2", "--valid-samples", "2", "--eval-every", "3"]
    args += ["--save-every", "2", "--stream-frames", "120", "--device", "cpu"]
    env = os.environ | {"NO_TORCH_COMPILE": "1", "OMP_NUM_THREADS": "1"}
    sharded = [*TORCHRUN, *args, "--fsdp", "--out", str(tmp_path / "two")]
    killed = subprocess.Popen(sharded, cwd=ROOT, env=env)
    while not (tmp_path / "two" / "training.pt").exists() and killed.poll() is None:
        time.sleep(0.01)
    launcher = psutil.Process(killed.pid)
    for process in [*launcher.children(recursive=True), launcher]:  # the workers, then torchrun
        process.kill()
    killed.wait()
    assert torch.load(tmp_path / "two" / "training.pt", weights_only=False)["step"] < 6
    assert not (tmp_path / "two" / "model.safetensors").exists()
    for command in ([sys.executable, *args, "--out", str(tmp_path / "one")], sharded):
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        assert done.returncode == 0, rank_failures(done.stderr)
    one = load_file(tmp_path / "one" / "model.safetensors")
    two = load_file(tmp_path / "two" / "model.safetensors")
    base = load_file(tiny_dir / "model.safetensors")
    changed = {k for k, v in base.items() if not torch.equal(one[k], v)}
    assert {"transformer.layers.1.gating.linear_out.weight", "text_linear.weight"} <= changed
    tables = {"text_emb.weight", "emb.0.weight"}  # the text table and the first codebook's
    assert (tables <= changed) == ("--tune-embeddings" in kind or kind == ["--full"])
    for name, weight in one.items():
        torch.testing.assert_close(two[name], weight, atol=1e-5, rtol=1e-4)
    report = json.loads((tmp_path / "two" / "finetune.json").read_text())
    assert report["processes"] == 2 and report["fsdp"] and report["seconds_per_step"]  # resumed
    assert report["kind"] == ("full" if kind == ["--full"] else "lora")
    logs = [json.loads((tmp_path / r / "training_log.json").read_text()) for r in ("one", "two")]
    wer = [[e["validation_wer"] for e in log if "validation_wer" in e] for log in logs]
    assert len(wer[0]) == 3 and wer[1] == wer[0]


def test_align_with_times_the_words_by_another_models_transcript(
    tiny_dir, tiny_novad_dir, tmp_path
):
    """--align-with: the other model's transcript times the words, even where the data has
    times; finetune.json names it, and the same command finds its finished training (and
    keeps what it measured)."""
    argv = ["--model", str(tiny_novad_dir), "--dataset", save_to_disk(tmp_path / "data", n=5)]
    argv += ["--align-with", str(tiny_dir), "--steps", "2", "--batch-size", "1"]
    argv += ["--valid-samples", "1", "--eval-every", "2", "--stream-frames", "60"]
    argv += ["--device", "cpu", "--out", str(tmp_path / "out")]
    assert finetune.main(argv) == 0
    report = json.loads((tmp_path / "out" / "finetune.json").read_text())
    aligner = dsmlab.load(tiny_dir, device="cpu")
    assert report["data_used"]["word_times"] == f"aligned to {aligner.name}'s transcript"
    assert report["align_words"] and report["align_with"] == model_identity(aligner)
    assert finetune.main(argv) == 0  # nothing left to train: the first run's step time kept
    again = json.loads((tmp_path / "out" / "finetune.json").read_text())
    assert again["seconds_per_step"] == report["seconds_per_step"] > 0


def test_validation_rows_come_from_another_split_when_asked(tiny_novad, tmp_path):
    data = load_data(save_to_disk(tmp_path / "train", n=5))
    other = load_data(save_to_disk(tmp_path / "valid", n=4, text="another sentence here"))
    kept = finetune_data.prepare(tiny_novad, data, 3, tmp_path / "a")
    assert len(kept.examples) == 2 and len(kept.held_out) == 3  # the end of the data
    apart = finetune_data.prepare(tiny_novad, data, 3, tmp_path / "b", validation=other)
    assert len(apart.examples) == 5
    assert [text for text, _ in apart.held_out] == ["another sentence here"] * 3
    assert apart.summary["held_out_rows"] == 3 and "valid" in apart.summary["held_out_from"]
