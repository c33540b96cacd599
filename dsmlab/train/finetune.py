"""Fine-tune any DSM speech-to-text checkpoint on any dataset dsmlab reads, at its delay or another.

    python -m dsmlab.train.finetune --model synth-d4 --dataset runs/ft/corpus \
        --split festival-train --steps 400 --out runs/ft/synth-d4-festival
    python -m dsmlab.train.finetune --model synth-d8 --dataset runs/ft/corpus --split train \
        --delay 1.28 --delay-ramp 1000 --out runs/ft/d8-to-1.28
    python -m dsmlab.train.finetune --model kyutai/stt-1b-en_fr --dataset my/dataset \
        --split train --lora-rank 64 --device cuda --out runs/ft/stt-1b-mine

`--model` is anything `dsmlab.load` takes; `--dataset` anything the eval scripts take. Word
times come from the dataset's `words` column, or from aligning the reference to the model's
own transcript (`finetune_data`; `--align-words` even where the dataset has times;
`--align-with` another model's, such as one tuned on the same data in a first round). Training
examples are streams (`stream_examples`: several utterances and silences, longer than the LM's
context, most cut from the middle), so the tuned model keeps listening on long streams. The
text stream is rebuilt at `--delay` from the word times (`--delay-ramp`: moved there a frame at
a time, `delay_move`), the loss is lm.py's (padding weighted as moshi-finetune weighs it).

LoRA (`lora`, moshi's own modules) by default (`--tune-embeddings`: the input embedding tables
train beside the adapters, as moshi-finetune's `ft_embed`), or `--full`. Seeded and resumable:
every --save-every steps the trainable state goes to <out>/training.pt and the same command
continues from there. The log of loss and validation WER (on --valid-samples rows held out of
the dataset, the first entry before any step) is <out>/training_log.json. Under torchrun:
data parallel, or with `--fsdp` the LM sharded across the processes (`sharding`).

Output in <out>: the merged checkpoint in Kyutai's layout (dsmlab, moshi's strict loader and
Kyutai's scripts load it), config.json's `audio_delay_seconds` the new delay; `adapter/` (LoRA
only): the adapter and what it applies to; finetune.json: settings, data, memory, step time.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.distributed as dist
from moshi.utils.compile import no_compile, no_cuda_graph
from tqdm import tqdm

from ..checkpoint import model_identity, write_checkpoint
from ..cli import (
    ArgumentParser,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    probability,
    run_cli,
    torchrun_rank,
)
from ..conditioning import condition_tensors
from ..data import SpeechData, load_data
from ..errors import UsageError
from ..loading import load
from ..model import DSMModel
from . import finetune_data, lora, sharding
from .delay_move import checked_delay, ramped_frames, tuned_model
from .lm import (
    AUDIO_CODE_NOISE,
    STREAM_BATCH,
    padding_weights,
    text_loss,
    training_codes,
    validation_wer,
)
from .resumable import Checkpointed
from .schedule import warmup_cosine
from .stream_examples import stream_example, stream_frames_for

STEPS = 1500  # the festival study's LoRA run (FINETUNE.md)
LEARNING_RATES = {"lora": 2e-3, "full": 2e-4}
LORA_RANK, LORA_SCALING = 16, 2.0  # moshi's loader defaults the scaling to 2.0
VALID_SAMPLES = 20
REPLAY_SHARE = 0.5  # of the utterances in a stream, when --replay-dataset is given


def finetune(
    model_spec: str,
    data: SpeechData,
    out: Path,
    delay_s: float | None = None,
    delay_ramp: int = 0,
    lora_rank: int | None = LORA_RANK,
    lora_scaling: float = LORA_SCALING,
    tune_embeddings: bool = False,
    code_noise: float = AUDIO_CODE_NOISE,
    steps: int = STEPS,
    batch_size: int = STREAM_BATCH,
    lr: float | None = None,
    seed: int = 0,
    device: str | None = None,
    eval_every: int = 100,
    save_every: int = 50,
    valid_samples: int = VALID_SAMPLES,
    stream_frames: int | None = None,
    align_words: bool = False,
    align_with: str | None = None,
    validation: SpeechData | None = None,
    replay: SpeechData | None = None,
    replay_share: float = REPLAY_SHARE,
    fsdp: bool = False,
) -> Path:
    """Tune `model_spec` on `data` and write the result to `out`; `lora_rank` None: full
    fine-tuning; `tune_embeddings`: the LoRA run tunes the input embedding tables too;
    `code_noise`: the share of input audio codes replaced by random ones (lm.py's augmentation);
    `validation`: where the validation rows come from (default: the end of
    `data`, kept out of training); `delay_ramp`: steps over which the text stream moves from
    the base model's delay to `delay_s` (`delay_move`); `replay`: data the base model learned
    from, mixed into the streams at `replay_share` of their utterances against forgetting.
    Under torchrun each process takes its share of every batch (data parallel; the gradients
    summed across processes equal one process's on the whole batch) and rank 0 writes; `fsdp`:
    the LM sharded across them (`sharding`; every process validates). See the module docstring."""
    rank, world = torchrun_rank()
    if batch_size % world:
        raise UsageError(f"--batch-size {batch_size} does not split across {world} processes")
    if fsdp and world < 2:
        raise UsageError("--fsdp shards across processes: launch with torchrun --nproc-per-node N")
    if tune_embeddings and lora_rank is None:
        raise UsageError("--tune-embeddings goes with a LoRA run (--full tunes every weight)")
    if world > 1 and (device or "cuda").startswith("cuda") and torch.cuda.is_available():
        device = device or f"cuda:{os.environ.get('LOCAL_RANK', 0)}"
        torch.cuda.set_device(device)  # where FSDP and NCCL put this process's tensors
    torch.manual_seed(seed)
    base = load(model_spec, device=device)
    base_dtype = base.lm.dtype
    base.lm.float()
    delay_s = checked_delay(base, delay_s, delay_ramp)
    aligner = load(align_with, device=device) if align_with else None
    aligned_to = model_identity(aligner) if aligner else None
    align_words = align_words or aligner is not None
    prepared, replayed = finetune_data.prepare_in_turn(
        base, data, valid_samples, out, align_words, validation, replay, aligner
    )
    del aligner  # not needed past the examples: a second model's memory back for training
    torch.cuda.empty_cache()  # a no-op without CUDA
    stream_frames = stream_frames or stream_frames_for(base)
    lm = base.lm
    tuned = tuned_model(base, lm, delay_s, out)
    kind = "full" if lora_rank is None else "lora"
    if lora_rank is not None:
        lora.add_lora(lm, lora_rank, lora_scaling, tune_embeddings)
    # frozen: the VAD heads (the text loss never reaches them), a delay table (its condition
    # tensors are made once, before the steps: the other delays it serves stay as they were)
    for frozen in (lm.extra_heads, lm.condition_provider):
        for parameter in frozen.parameters() if frozen is not None else ():
            parameter.requires_grad = False
    if fsdp:
        sharding.shard(lm)
    lr = lr or LEARNING_RATES[kind]
    trainable = [p for p in lm.parameters() if p.requires_grad]
    tables = {id(p) for p in lora.embedding_weights(lm)} if tune_embeddings else set()
    groups = [  # weight decay would shrink the tables tuned beside an adapter
        {"params": [p for p in trainable if id(p) not in tables]},
        {"params": [p for p in trainable if id(p) in tables], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=lr, weight_decay=0.01, betas=(0.9, 0.95))
    schedule = warmup_cosine(optimizer, max(1, min(50, steps // 10)), steps)
    settings = {
        "model": model_identity(base),
        "data": data.describe(),
        "delay_s": delay_s,
        "delay_ramp": delay_ramp or None,
        "kind": kind,
        "lora_rank": lora_rank,
        "lora_scaling": lora_scaling if lora_rank is not None else None,
        "tune_embeddings": tune_embeddings or None,
        "code_noise": code_noise if code_noise != AUDIO_CODE_NOISE else None,  # None: lm's
        "steps": steps,
        "batch_size": batch_size,
        "lr": lr,
        "stream_frames": stream_frames,
        "valid_samples": valid_samples,
        "validation": validation.describe() if validation else None,
        "align_words": align_words,
        "align_with": aligned_to,
        "replay": replay.describe() if replay else None,
        "replay_share": replay_share if replay else None,
        "fsdp": fsdp or None,
        "frozen": "VAD heads, delay table",  # a training.pt made before did not freeze them
    }
    state = Checkpointed(out / "training.pt", seed, settings)
    modules = {"lm": lora.TrainableState(lm), "optimizer": optimizer, "schedule": schedule}
    if fsdp:
        sharded = sharding.ShardedState
        modules |= {"lm": sharded(lm), "optimizer": sharded(lm, optimizer)}
    first, log = state.resume(modules)
    weights = padding_weights(base.tokenizer.get_piece_size(), lm.device)
    start_frames, end_frames = (round(d * base.frame_rate) for d in (base.delay_s, delay_s))
    share = batch_size // world
    conditions = condition_tensors(lm, [delay_s] * share) if base.delays_s else None
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16) if lm.device.type == "cuda" else nullcontext()
    )
    main = rank == 0
    validates = main or fsdp  # a sharded LM runs on every process at once
    quiet = {} if main else {"disable": True}  # an explicit disable would override TQDM_DISABLE
    bar = tqdm(total=steps, initial=first, desc=out.name, unit="step", **quiet)
    with no_compile(), no_cuda_graph() if fsdp else nullcontext(), bar:
        if first == 0 and valid_samples and validates:
            log.append({"step": 0} | _validation(tuned, prepared.held_out, fsdp))
        started, timed_steps = time.perf_counter(), 0
        for step in range(first + 1, steps + 1):
            lm.train()
            order = torch.Generator().manual_seed(seed * 1_000_003 + step)
            delays = [ramped_frames(step, delay_ramp, start_frames, end_frames)] * batch_size
            batch = [
                stream_example(
                    prepared.examples,
                    stream_frames,
                    order,
                    replayed.examples if replayed else None,
                    replay_share,
                )
                for _ in delays
            ]
            codes, noisy = training_codes(batch, delays, len(weights), lm.card, order, code_noise)
            total = float(weights.cpu()[codes[:, 0]].sum())  # of the whole batch
            mine = slice(rank * share, (rank + 1) * share)
            with autocast:
                loss = text_loss(lm, codes[mine], noisy[mine], conditions, weights, total)
            optimizer.zero_grad()
            loss.backward()
            if world > 1:
                for p in trainable if not fsdp else ():  # FSDP has summed them
                    dist.all_reduce(p.grad)
                dist.all_reduce(loss := loss.detach())
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            schedule.step()
            timed_steps += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
            entry = {"step": step, "loss": round(loss.item(), 4)}
            if validates and valid_samples and (step % eval_every == 0 or step == steps):
                entry |= _validation(tuned, prepared.held_out, fsdp)
                if main:
                    bar.write(json.dumps(entry))
            if step == 1 or step % 10 == 0 or "validation_wer" in entry:
                log.append(entry)
            if (main or fsdp) and (step % save_every == 0 or step == steps):
                state.save(modules, step, log, write=main)
    step_s = (time.perf_counter() - started) / timed_steps if timed_steps else None
    if step_s is None and (out / "finetune.json").is_file():  # a finished training, rerun
        step_s = json.loads((out / "finetune.json").read_text()).get("seconds_per_step")
    report = settings | {
        "model": model_spec,
        "base": model_identity(base),
        "processes": world,
        "seed": seed,
        "data_used": prepared.summary,
        "replay_used": replayed.summary if replayed else None,
        "peak_memory_mb": _peak_memory_mb(lm.device),
        "seconds_per_step": round(step_s, 3) if step_s else None,
    }
    lm.eval()
    if world > 1:
        dist.barrier()
    whole = sharding.full_weights(lm) if fsdp else None
    if not main:
        return out
    if fsdp:  # the whole LM again, on rank 0 only
        lm = load(model_spec, device=lm.device).lm.float()
        if lora_rank is not None:
            lora.add_lora(lm, lora_rank, lora_scaling, tune_embeddings)
        lm.load_state_dict(whole)
        tuned = tuned_model(base, lm, delay_s, out)
    if lora_rank is not None:
        lora.save_adapter(lm, out / "adapter", report | {"base_config": base.config})
        lora.merge(lm)
    lm.to(base_dtype)
    reports = {"training_log.json": log, "finetune.json": report}
    return write_checkpoint(tuned, out, reports=reports)


def _validation(model: DSMModel, held_out: list[tuple[str, torch.Tensor]], fsdp: bool) -> dict:
    wer = validation_wer(model, held_out)
    if fsdp:
        sharding.reshard(model.lm)
    model.lm.train()
    return {"validation_wer": wer}


def _peak_memory_mb(device: torch.device) -> dict:
    peak = {"process_rss": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if device.type == "cuda":
        peak["cuda_allocated"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return peak


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m dsmlab.train.finetune", description=__doc__)
    parser.add_argument("--model", required=True, help="a bundled name, HF repo id or folder")
    parser.add_argument("--dataset", required=True, help="alias, HF dataset id or local path")
    parser.add_argument("--config", help="dataset config (name)")
    parser.add_argument("--split", default="train", help="dataset split (default: train)")
    parser.add_argument("--text-column", help="transcript column (default: found by name)")
    parser.add_argument("--max-samples", type=positive_int, help="only the first N rows")
    parser.add_argument("--delay", type=non_negative_float, help="seconds (default: the model's)")
    parser.add_argument(
        "--delay-ramp",
        type=non_negative_int,
        default=0,
        help="steps over which the text stream moves one frame at a time from the model's "
        "delay to --delay (default 0: at --delay from the first step)",
    )
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--lora-rank", type=positive_int, default=LORA_RANK)
    kind.add_argument("--full", action="store_true", help="tune every weight, not an adapter")
    parser.add_argument("--lora-scaling", type=positive_float, default=LORA_SCALING)
    tables = "LoRA: tune the input embedding tables (audio codes, text) beside the adapters"
    parser.add_argument("--tune-embeddings", action="store_true", help=tables)
    noise = f"share of the input audio codes replaced by random ones (default {AUDIO_CODE_NOISE})"
    parser.add_argument("--code-noise", type=probability, default=AUDIO_CODE_NOISE, help=noise)
    parser.add_argument("--steps", type=positive_int, default=STEPS)
    parser.add_argument("--batch-size", type=positive_int, default=STREAM_BATCH)
    parser.add_argument("--lr", type=positive_float, help=f"default: {LEARNING_RATES} by kind")
    frames = "frames of each training stream (default: 1.5 times the LM's context)"
    parser.add_argument("--stream-frames", type=positive_int, help=frames)
    parser.add_argument(
        "--align-words",
        action="store_true",
        help="time the words by aligning them to the model's transcript, even where the "
        "dataset has word times",
    )
    parser.add_argument(
        "--align-with",
        metavar="MODEL",
        help="align the words to this model's transcript instead (e.g. one already tuned on "
        "this data without times: a second round, FINETUNE.md); implies --align-words",
    )
    valid = f"rows for validation WER (default: {VALID_SAMPLES}; 0: none)"
    parser.add_argument("--valid-samples", type=non_negative_int, default=VALID_SAMPLES, help=valid)
    parser.add_argument(
        "--valid-split",
        help="take them from the start of this split of the dataset (default: the end of "
        "--split, kept out of training)",
    )
    parser.add_argument(
        "--replay-dataset",
        help="data the base model learned from (or like it), mixed into the training streams "
        "against forgetting",
    )
    parser.add_argument("--replay-split", default="train")
    parser.add_argument("--replay-samples", type=positive_int, help="only its first N rows")
    share = f"share of the utterances of a stream drawn from it (default: {REPLAY_SHARE})"
    parser.add_argument("--replay-share", type=probability, default=REPLAY_SHARE, help=share)
    parser.add_argument("--eval-every", type=positive_int, default=100)
    parser.add_argument("--save-every", type=positive_int, default=50)
    parser.add_argument(
        "--fsdp",
        action="store_true",
        help="under torchrun, shard the LM's weights, gradients and optimizer state across the "
        "processes (for a model whose tuning does not fit one GPU, e.g. --full on stt-2.6b-en)",
    )
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda if available)")
    parser.add_argument("--threads", type=positive_int, help="CPU threads for torch")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    def body() -> int:
        if args.threads:
            torch.set_num_threads(args.threads)
        data = load_data(args.dataset, args.config, args.split, args.text_column, args.max_samples)
        validation = None
        if args.valid_split:
            validation = load_data(args.dataset, args.config, args.valid_split, args.text_column)
        replay = None
        if args.replay_dataset:
            replay = load_data(
                args.replay_dataset, None, args.replay_split, None, args.replay_samples
            )
        same = "lora_scaling tune_embeddings code_noise steps batch_size lr seed device eval_every"
        same += " save_every valid_samples stream_frames align_words align_with replay_share fsdp"
        same += " delay_ramp"
        out = finetune(
            args.model,
            data,
            args.out,
            delay_s=args.delay,
            lora_rank=None if args.full else args.lora_rank,
            validation=validation,
            replay=replay,
            **{name: getattr(args, name) for name in same.split()},
        )
        print(out)
        return 0

    return run_cli(body, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
