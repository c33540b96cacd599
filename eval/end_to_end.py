"""`python -m eval.bench --end-to-end`: a whole dataset evaluated Kyutai's way and dsmlab's way.

Both sides run as whole processes (interpreter start, model loading, audio decoding and
inference, as a user waits for them), alternated, --runs times each, on the same model,
dataset, batch size and thread count, at each --batch-size and at each tool's default:

  kyutai  `python -m eval.kyutai_script` (Kyutai's evaluation script re-created without
          dsmlab: static batches in dataset order, each padded to its longest file)
  dsmlab  `python -m eval.wer` as users run it (continuous batching, longest first)

Reports per batch size each side's wall time (min, median, max), RTFx (audio seconds over the
median wall), peak resident memory, the ratio of the medians, each side's WER and the
transcripts compared utterance by utterance; device-independent accounting from the audio
lengths: frames stepped per second of audio (1 / 0.08 s = 12.5 is no padding at all), and per
utterance the LM steps and the Mimi encoder calls that cover it. Then the memory of one long
file (`python -m dsmlab transcribe`) against a file a tenth as long: it must not grow with the
file. A plot of RTFx against batch size goes beside end_to_end.json.
"""

from __future__ import annotations

import heapq
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

import dsmlab
from dsmlab.data import load_data

from .options import DSMLAB_BATCH
from .protocols import PROTOCOLS
from .records import read_records

KYUTAI_BATCH = PROTOCOLS["kyutai"].static_batch  # the batch of Kyutai's evaluation script


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
            str(batch_size),
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


def process(command: list[str], env: dict, cwd: Path) -> tuple[float, float]:
    """(wall seconds, peak resident memory in GiB) of one whole process; a one-line error
    with the end of its stderr when it fails."""
    with tempfile.TemporaryFile("w+") as stderr:
        start = time.perf_counter()
        child = subprocess.Popen(
            command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=stderr
        )
        _, status, usage = os.wait4(child.pid, 0)  # the child's own rusage, not the session's
        wall = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode:
            stderr.seek(0)
            tail = stderr.read().strip()[-300:]
            raise dsmlab.DSMLabError(f"{command[2]} failed (exit {child.returncode}): {tail}")
    return wall, usage.ru_maxrss / 2**20  # KiB on Linux


def child_environment(threads: int) -> dict:
    return os.environ | {
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "TQDM_DISABLE": "1",
        "NO_TORCH_COMPILE": "1",
    }


def run(
    model_spec: str,
    dataset: str,
    out: Path,
    runs: int,
    threads: int,
    batch_sizes: list[int],
    long_file_minutes: float = 0.0,
) -> dict:
    model = dsmlab.load(model_spec, device="cpu")
    if "config.json" not in model.files:
        raise dsmlab.UsageError(
            "--end-to-end needs a checkpoint folder (a bundled model or a path)"
        )
    if model.delays_s:
        raise dsmlab.UsageError(
            "--end-to-end runs Kyutai's script, which passes no delay condition: a "
            "delay-conditioned model cannot be compared there; use a fixed-delay model"
        )
    model_dir = model.files["config.json"].parent.resolve()
    data = load_data(dataset, None, None, None, None, False, None)
    if not (Path(data.name) / "dataset_dict.json").is_file():
        raise dsmlab.UsageError("--end-to-end needs a local save_to_disk dataset (e.g. synth)")
    lengths = [u.audio.size / dsmlab.SAMPLE_RATE for u in data if u.audio is not None]
    out = out.resolve()
    rows = [
        compare(model_dir, Path(data.name).resolve(), out / f"batch-{b}", runs, threads, b)
        for b in sorted(set(batch_sizes) | {KYUTAI_BATCH, DSMLAB_BATCH})
    ]
    for row in rows:
        row["rtfx"] = {n: sum(lengths) / w["median"] for n, w in row["wall_s"].items()}
        row["accounting"] = accounting(model, lengths, row["batch_size"])
    found = {
        "model": model.name,
        "dataset": dataset,
        "audio_s": sum(lengths),
        "threads": threads,
        "runs": runs,
        "rows": rows,
        "at_defaults": at_defaults(rows),
    }
    if long_file_minutes:
        found["long_file"] = long_file_memory(model_dir, data, long_file_minutes, threads, out)
    return found


def at_defaults(rows: list[dict]) -> dict:
    """Each tool at its own default batch size: what a user who changes nothing gets."""
    kyutai = next(r for r in rows if r["batch_size"] == KYUTAI_BATCH)
    ours = next(r for r in rows if r["batch_size"] == DSMLAB_BATCH)
    return {
        "kyutai_batch_size": KYUTAI_BATCH,
        "dsmlab_batch_size": DSMLAB_BATCH,
        "kyutai_median_s": kyutai["wall_s"]["kyutai"]["median"],
        "dsmlab_median_s": ours["wall_s"]["dsmlab"]["median"],
        "speedup_median": kyutai["wall_s"]["kyutai"]["median"] / ours["wall_s"]["dsmlab"]["median"],
    }


def compare(model_dir: Path, dataset: Path, out: Path, runs: int, threads: int, batch: int) -> dict:
    """Both sides at one batch size, `runs` times each, alternated."""
    steps = commands(model_dir, dataset, out, batch)
    # moshi reads mimi_config_name from the working directory when no hub repo is given: run
    # the script from the checkpoint folder, as the README tells Kyutai's users to
    cwd = {"kyutai": model_dir, "dsmlab": Path.cwd()}
    out.mkdir(parents=True, exist_ok=True)
    walls: dict[str, list[float]] = {name: [] for name in steps}
    peaks: dict[str, float] = {name: 0.0 for name in steps}
    for k in range(runs):
        for name in sorted(steps, reverse=k % 2 == 1):  # alternate who goes first
            wall, peak = process(steps[name], child_environment(threads), cwd[name])
            walls[name].append(wall)
            peaks[name] = max(peaks[name], peak)
    kyutai = json.loads((out / "kyutai.json").read_text())
    records = sorted(read_records(out / "dsmlab"), key=lambda r: r["index"])
    ours = json.loads((out / "dsmlab" / "results.json").read_text())["metrics"]
    pairs = list(zip(kyutai["hypotheses"], [r.get("hypothesis", "") for r in records], strict=True))
    median = {name: statistics.median(w) for name, w in walls.items()}
    return {
        "batch_size": batch,
        "utterances": len(records),
        "wall_s": {
            n: {"min": min(w), "median": median[n], "max": max(w), "all": w}
            for n, w in walls.items()
        },
        "peak_rss_gb": peaks,
        "speedup_median": median["kyutai"] / median["dsmlab"],
        "kyutai_mean_utterance_wer": kyutai["wer"],
        "kyutai_corpus_wer": kyutai["corpus_wer"],
        "dsmlab_mean_utterance_wer": ours["mean_utterance_wer"],
        "dsmlab_corpus_wer": ours["corpus_wer"],
        "same_transcripts": sum(a.strip() == b.strip() for a, b in pairs),
        "different": [i for i, (a, b) in enumerate(pairs) if a.strip() != b.strip()],
        "commands": steps,
    }


def long_file_memory(model_dir: Path, data, minutes: float, threads: int, out: Path) -> dict:
    """Peak resident memory and wall of `python -m dsmlab transcribe` on one file of `minutes`
    (the dataset's utterances end to end) and on its first tenth: bounded memory means the
    two peaks are close, whatever the length."""
    wanted, pieces = round(minutes * 60 * dsmlab.SAMPLE_RATE), []
    for u in data:  # no more of the dataset than the long file holds
        if u.audio is not None:
            pieces.append(u.audio)
        if sum(x.size for x in pieces) >= wanted:
            break
    speech = np.concatenate(pieces)
    found = {"minutes": [], "peak_rss_gb": [], "wall_s": []}
    for length in (minutes / 10, minutes):
        samples = round(length * 60 * dsmlab.SAMPLE_RATE)
        audio = np.resize(speech, samples)  # repeated as often as needed
        path = out / f"long-{length:g}min.wav"
        soundfile.write(path, audio, dsmlab.SAMPLE_RATE)
        command = [sys.executable, "-m", "dsmlab", "transcribe", str(path)]
        wall, peak = process(
            [*command, "--model", str(model_dir)], child_environment(threads), Path.cwd()
        )
        path.unlink()
        found["minutes"].append(length)
        found["peak_rss_gb"].append(peak)
        found["wall_s"].append(wall)
    return found


def accounting(model: dsmlab.DSMModel, lengths: list[float], batch_size: int) -> dict:
    """Frames stepped per audio second, and per utterance the LM steps and Mimi calls covering
    it, of each side's batching at `batch_size` (from the audio lengths, as each side pads)."""
    rate = model.frame_rate
    padded = [math.ceil((model.prefix_s + s + model.delay_s + 0.5) * rate) for s in lengths]
    kyutai_frames = []
    for first in range(0, len(padded), batch_size):
        batch = padded[first : first + batch_size]
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
    }


def continuous_steps(frames: list[int], batch_size: int) -> int:
    """Batched steps of continuous batching: streams longest first, each into the first slot
    to free up (dsmlab's runner sorts a window of 8 batches; here the whole set)."""
    free = [0] * min(batch_size, len(frames))
    for f in sorted(frames, reverse=True):
        heapq.heapreplace(free, free[0] + f)
    return max(free)


def print_summary(found: dict) -> None:
    print(
        f"{found['model']} on {found['dataset']}: {found['rows'][0]['utterances']} utterances, "
        f"{found['audio_s']:.0f} s of audio, {found['threads']} thread(s), {found['runs']} runs "
        "each (whole processes; wall min / median / max)"
    )
    print(
        "batch  Kyutai script             eval.wer                  ratio  RTFx K / d  "
        "peak GB K / d  same  WER K / d        frames/audio s K / d"
    )
    for r in found["rows"]:
        w, a = r["wall_s"], r["accounting"]
        walls = {n: "{min:5.1f} /{median:5.1f} /{max:5.1f} s".format(**w[n]) for n in w}
        print(
            f"{r['batch_size']:5d}  {walls['kyutai']:24s}  {walls['dsmlab']:24s}  "
            f"{r['speedup_median']:4.2f}x  {r['rtfx']['kyutai']:4.1f} / {r['rtfx']['dsmlab']:4.1f}"
            f"  {r['peak_rss_gb']['kyutai']:5.2f} / {r['peak_rss_gb']['dsmlab']:5.2f}"
            f"  {r['same_transcripts']:3d}/{r['utterances']}"
            f"  {100 * r['kyutai_corpus_wer']:5.2f} / {100 * r['dsmlab_corpus_wer']:5.2f}%"
            f"  {a['kyutai_frames_per_audio_s']:5.2f} / {a['dsmlab_frames_per_audio_s']:5.2f}"
        )
    d = found["at_defaults"]
    print(
        f"at each tool's default (Kyutai {d['kyutai_batch_size']}, eval.wer "
        f"{d['dsmlab_batch_size']}): eval.wer is {d['speedup_median']:.2f}x as fast "
        "(median against median); 12.5 frames per audio second = no padding"
    )
    if "long_file" in found:
        long = found["long_file"]
        print(
            "one file through python -m dsmlab transcribe: "
            + ", ".join(
                f"{m:g} min: peak {gb:.2f} GB in {s:.0f} s"
                for m, gb, s in zip(
                    long["minutes"], long["peak_rss_gb"], long["wall_s"], strict=True
                )
            )
        )
