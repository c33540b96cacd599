"""`python -m eval.bench --end-to-end`: a whole dataset evaluated Kyutai's way and dsmlab's way.

Both sides run as whole processes (interpreter start, model loading, audio decoding and
inference, as a user waits for them), alternated, --runs times each, on the same model,
dataset and thread count:

  kyutai  `python -m eval.kyutai_script` (Kyutai's evaluation script re-created without
          dsmlab: static batches of 32 in dataset order, each padded to its longest file)
  dsmlab  `python -m eval.wer` as users run it (continuous batching, longest first)

Reports each side's wall time (min, median, max), the ratio of the medians, each side's WER,
the transcripts compared utterance by utterance, and device-independent accounting from the
audio lengths: frames stepped per second of audio (1 / 0.08 s = 12.5 is no padding at all),
and per utterance the LM steps and the Mimi encoder calls that cover it.
"""

from __future__ import annotations

import heapq
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import dsmlab

from .data import load_eval_data
from .records import read_records

KYUTAI_BATCH = 32


def commands(model_dir: Path, dataset: Path, out: Path, batch_size: int) -> dict[str, list[str]]:
    """The two command lines, as a user would type them."""
    python = [sys.executable, "-m"]
    return {
        "kyutai": [
            *python,
            "eval.kyutai_script",
            "--model-dir",
            str(model_dir),
            "--dataset",
            str(dataset),
            "--batch-size",
            str(KYUTAI_BATCH),
            "--out",
            str(out / "kyutai.json"),
        ],
        "dsmlab": [
            *python,
            "eval.wer",
            "--model",
            str(model_dir),
            "--dataset",
            str(dataset),
            "--batch-size",
            str(batch_size),
            "--out",
            str(out / "dsmlab"),
            "--overwrite",
        ],
    }


def run(model_spec: str, dataset: str, out: Path, runs: int, threads: int, batch_size: int) -> dict:
    model = dsmlab.load(model_spec, device="cpu")
    if "config.json" not in model.files:
        raise dsmlab.UsageError(
            "--end-to-end needs a checkpoint folder (a bundled model or a path)"
        )
    model_dir = model.files["config.json"].parent
    data = load_eval_data(dataset, None, None, None, None, False, None)
    if not (Path(data.name) / "dataset_dict.json").is_file():
        raise dsmlab.UsageError("--end-to-end needs a local save_to_disk dataset (e.g. synth)")
    env = os.environ | {
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "TQDM_DISABLE": "1",
        "NO_TORCH_COMPILE": "1",
    }
    out = out.resolve()
    steps = commands(model_dir.resolve(), Path(data.name).resolve(), out, batch_size)
    # moshi reads mimi_config_name from the working directory when no hub repo is given: run
    # the script from the checkpoint folder, as the README tells Kyutai's users to
    cwd = {"kyutai": model_dir, "dsmlab": Path.cwd()}
    walls: dict[str, list[float]] = {name: [] for name in steps}
    for k in range(runs):
        for name in sorted(steps, reverse=k % 2 == 1):  # alternate who goes first
            start = time.perf_counter()
            done = subprocess.run(
                steps[name], env=env, cwd=cwd[name], capture_output=True, text=True
            )
            if done.returncode:
                raise dsmlab.DSMLabError(f"{name} run failed: {done.stderr.strip()[-300:]}")
            walls[name].append(time.perf_counter() - start)
    kyutai = json.loads((out / "kyutai.json").read_text())
    records = sorted(read_records(out / "dsmlab"), key=lambda r: r["index"])
    dsmlab_results = json.loads((out / "dsmlab" / "results.json").read_text())["metrics"]
    pairs = list(zip(kyutai["hypotheses"], [r.get("hypothesis", "") for r in records], strict=True))
    median = {name: statistics.median(w) for name, w in walls.items()}
    lengths = [u.audio.size / dsmlab.SAMPLE_RATE for u in data if u.audio is not None]
    return {
        "model": model.name,
        "dataset": dataset,
        "utterances": len(records),
        "threads": threads,
        "runs": runs,
        "wall_s": {
            n: {"min": min(w), "median": median[n], "max": max(w), "all": w}
            for n, w in walls.items()
        },
        "speedup_median": median["kyutai"] / median["dsmlab"],
        "kyutai_mean_utterance_wer": kyutai["wer"],
        "kyutai_corpus_wer": kyutai["corpus_wer"],
        "dsmlab_mean_utterance_wer": dsmlab_results["mean_utterance_wer"],
        "dsmlab_corpus_wer": dsmlab_results["corpus_wer"],
        "same_transcripts": sum(a.strip() == b.strip() for a, b in pairs),
        "different": [i for i, (a, b) in enumerate(pairs) if a.strip() != b.strip()],
        "accounting": accounting(model, lengths, batch_size),
        "commands": steps,
    }


def accounting(model: dsmlab.DSMModel, lengths: list[float], batch_size: int) -> dict:
    """Frames stepped per audio second, and per utterance the LM steps and Mimi calls covering
    it, of each side's batching (from the audio lengths, as each side pads)."""
    rate = model.frame_rate
    padded = [math.ceil((model.prefix_s + s + model.delay_s + 0.5) * rate) for s in lengths]
    kyutai_frames = []
    for first in range(0, len(padded), KYUTAI_BATCH):
        batch = padded[first : first + KYUTAI_BATCH]
        kyutai_frames += [max(batch)] * len(batch)  # each file steps as long as the longest
    audio_s = sum(lengths)
    ahead = dsmlab.ENCODE_AHEAD
    steps = continuous_steps(padded, batch_size)
    return {
        "kyutai_frames_per_audio_s": sum(kyutai_frames) / audio_s,
        "dsmlab_frames_per_audio_s": sum(padded) / audio_s,
        # every slot of a batched step is computed, busy or not: padding waste counts both
        "kyutai_slot_steps_over_needed": sum(kyutai_frames) / sum(padded),
        "dsmlab_slot_steps_over_needed": steps * min(batch_size, len(padded)) / sum(padded),
        "kyutai_lm_steps_per_utterance": sum(kyutai_frames) / len(padded),
        "dsmlab_lm_steps_per_utterance": sum(padded) / len(padded),
        "kyutai_mimi_calls_per_utterance": sum(kyutai_frames) / len(padded),
        "dsmlab_mimi_calls_per_utterance": sum(math.ceil(f / ahead) for f in padded) / len(padded),
        "dsmlab_batch_size": batch_size,
        "kyutai_batch_size": KYUTAI_BATCH,
    }


def continuous_steps(frames: list[int], batch_size: int) -> int:
    """Batched steps of continuous batching: streams longest first, each into the first slot
    to free up (dsmlab's runner sorts a window of 8 batches; here the whole set)."""
    free = [0] * min(batch_size, len(frames))
    for f in sorted(frames, reverse=True):
        heapq.heapreplace(free, free[0] + f)
    return max(free)


def print_summary(found: dict) -> None:
    w = found["wall_s"]
    print(
        f"{found['model']} on {found['dataset']}: {found['utterances']} utterances, "
        f"{found['threads']} thread(s), {found['runs']} runs each (whole processes)"
    )
    for name in ("kyutai", "dsmlab"):
        print(
            f"  {name:7s} wall min {w[name]['min']:.1f} s, median {w[name]['median']:.1f} s, "
            f"max {w[name]['max']:.1f} s; corpus WER {100 * found[f'{name}_corpus_wer']:.2f}%, "
            f"mean utterance WER {100 * found[f'{name}_mean_utterance_wer']:.2f}%"
        )
    print(
        f"  dsmlab is {found['speedup_median']:.2f}x faster (median against median); "
        f"same transcripts: {found['same_transcripts']}/{found['utterances']}"
    )
    a = found["accounting"]
    print(
        f"  frames stepped per audio second: kyutai {a['kyutai_frames_per_audio_s']:.2f}, "
        f"dsmlab {a['dsmlab_frames_per_audio_s']:.2f} (12.5 = no padding)"
    )
    print(
        f"  Mimi calls per utterance: kyutai {a['kyutai_mimi_calls_per_utterance']:.1f}, "
        f"dsmlab {a['dsmlab_mimi_calls_per_utterance']:.1f}"
    )
