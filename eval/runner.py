"""The one runner behind every eval script: model + data -> utterances.jsonl -> results.json.

Records are appended (and flushed) as each utterance finishes, so a killed run loses nothing;
the same command into the same --out resumes. Under torchrun each rank takes a shard and
rank 0 merges the parts into one utterances.jsonl and results.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm import tqdm

import dsmlab

from . import metrics
from .data import DEFAULT_DATASET, EvalData, Utterance, load_eval_data

SKIP_REFERENCES = {"", "ignore time segment in scoring"}  # as the Open ASR Leaderboard
SORT_WINDOW = 8  # utterances buffered per batch slot, sorted longest first


def add_common_args(parser: argparse.ArgumentParser, several_models: bool = False) -> None:
    if several_models:
        parser.add_argument(
            "--model",
            action="append",
            help="a model to evaluate; repeat for several (default: every bundled model)",
        )
    else:
        parser.add_argument(
            "--model",
            help="short name, HF repo id or checkpoint dir (default: the bundled model with "
            "the longest delay)",
        )
    parser.add_argument(
        "--dataset",
        default=DEFAULT_DATASET,
        help="alias, HF dataset id or local path (default: 'synth', the bundled test split)",
    )
    parser.add_argument("--config", help="dataset config (name)")
    parser.add_argument("--split", help="dataset split (default: the alias's, else test)")
    parser.add_argument("--text-column", help="transcript column (default: found by name)")
    parser.add_argument("--max-samples", type=int, help="only the first N rows")
    parser.add_argument("--streaming", action="store_true", help="HF streaming mode")
    parser.add_argument("--revision", help="dataset revision (hub datasets)")
    parser.add_argument("--language", default="en", help="en: Whisper normalizer; else basic")
    parser.add_argument("--batch-size", type=int, default=8, help="streams run together")
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda if available)")
    parser.add_argument(
        "--out", type=Path, help="run directory, resumable (default: runs/<script>-<model>)"
    )


def default_models(several: bool) -> list[str]:
    """The bundled models: all of them for a sweep, else the one with the longest delay."""
    bundled = list(dsmlab.bundled_models())
    if not bundled:
        raise dsmlab.DSMLabError("no bundled models in data/models: pass --model")
    return bundled if several else bundled[-1:]


def fill_defaults(args: argparse.Namespace, script: str, several: bool = False) -> None:
    """--model and --out when not given: the offline default."""
    if not args.model:
        models = default_models(several)
        args.model = models if several else models[0]
    if args.out is None:
        name = script if several else f"{script}-{Path(str(args.model)).name}"
        args.out = Path("runs") / name


@dataclass
class Run:
    """What a finished run leaves for the script that asked for it."""

    model: dsmlab.DSMModel
    data: EvalData
    records: list[dict]
    out: Path
    is_main: bool  # rank 0 (or the only process): the one that writes summaries and plots


def run(args: argparse.Namespace, model_spec: str, out: Path) -> Run:
    """Transcribe the dataset with the model into `out`, resuming what is already there."""
    rank, world = _distributed_setup()
    device = args.device
    if world > 1 and torch.cuda.is_available() and device is None:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    model = dsmlab.load(model_spec, device=device)
    data = load_eval_data(
        args.dataset,
        args.config,
        args.split,
        args.text_column,
        args.max_samples,
        args.streaming,
        args.revision,
        rank,
        world,
    )
    out.mkdir(parents=True, exist_ok=True)
    done = {r["index"] for r in read_records(out)}
    part = out / (f"utterances.rank{rank}.jsonl" if world > 1 else "utterances.jsonl")
    normalize = metrics.normalizer(args.language)
    warm_up(model, args.batch_size)
    speed = _transcribe_into(model, data, part, done, normalize, args.batch_size, rank)
    _write_json(out / f"speed.rank{rank}.json", speed)
    if world > 1:
        dist.barrier()
    records = read_records(out)
    if rank == 0 and world > 1:
        write_records(out / "utterances.jsonl", records)
        for p in out.glob("utterances.rank*.jsonl"):
            p.unlink()
    if world > 1:
        dist.barrier()
    return Run(model, data, records, out, is_main=rank == 0)


def _transcribe_into(
    model, data: EvalData, part: Path, done: set[int], normalize, batch_size: int, rank: int
) -> dict:
    """Stream the not-yet-done utterances through the scheduler; append a record each."""
    pending: dict[int, Utterance] = {}
    data_s = 0.0
    total = None if data.size is None else max(0, data.size - len(done))
    # only rank 0 shows progress; its bar follows tqdm's defaults (TQDM_DISABLE=1 hides it)
    quiet = {"disable": True} if rank != 0 else {}
    bar = tqdm(total=total, unit="utt", dynamic_ncols=True, **quiet)
    audio_s = 0.0
    _drop_partial_line(part)
    with part.open("a") as sink:

        def write(record: dict) -> None:
            sink.write(json.dumps(record, ensure_ascii=False) + "\n")
            sink.flush()
            bar.update(1)

        def feed() -> Iterator[tuple[int, torch.Tensor]]:
            nonlocal data_s
            window: list[Utterance] = []
            rows = iter(data)
            while True:
                start = time.perf_counter()
                row = next(rows, None)
                if row is not None and row.index not in done:
                    reference = normalize(row.text)
                    if row.error is not None:
                        write(base_record(row, "failed", error=row.error))
                    elif (
                        reference.strip() in SKIP_REFERENCES or row.text.strip() in SKIP_REFERENCES
                    ):
                        write(base_record(row, "skipped", error="empty reference"))
                    else:
                        window.append(row)
                flush_window = row is None or len(window) >= SORT_WINDOW * batch_size
                data_s += time.perf_counter() - start
                if flush_window:
                    for utt in sorted(window, key=lambda u: -len(u.audio)):
                        pending[utt.index] = utt
                        yield utt.index, torch.from_numpy(utt.audio)
                    window = []
                if row is None:
                    return

        start = time.perf_counter()
        for index, transcript in dsmlab.iter_transcripts(model, feed(), batch_size):
            utt = pending.pop(index)
            write(utterance_record(utt, transcript, normalize))
            audio_s += transcript.audio_s
            elapsed = time.perf_counter() - start - data_s
            bar.set_postfix(audio_h=f"{audio_s / 3600:.3f}", rtfx=f"{audio_s / elapsed:.1f}")
        compute_s = time.perf_counter() - start - data_s
    bar.close()
    return {
        "audio_s": audio_s,
        "compute_s": compute_s,
        "data_s": data_s,
        "rtfx": audio_s / compute_s if audio_s else None,
    }


def base_record(utt: Utterance, status: str, error: str | None = None) -> dict:
    return {
        "index": utt.index,
        "id": utt.id,
        "status": status,
        "error": error,
        "reference": utt.text,
        "speaker": utt.speaker,
        "audio_s": None if utt.audio is None else len(utt.audio) / dsmlab.SAMPLE_RATE,
    }


def utterance_record(utt: Utterance, transcript: dsmlab.Transcript, normalize) -> dict:
    """Everything later metrics need about one transcribed utterance."""
    words = [w.to_dict() for w in transcript.words]
    record = base_record(utt, "ok") | {
        "hypothesis": transcript.text,
        "ref_norm": normalize(utt.text),
        "hyp_norm": normalize(transcript.text),
        "audio_s": round(transcript.audio_s, 4),
        "words": words,
        "ref_words": utt.words,
        "finalization_s": metrics.finalization_s(words, transcript.audio_s),
    }
    record["wer"] = dsmlab.utterance_wer(record["ref_norm"], record["hyp_norm"])
    record["matches"] = metrics.match_words(utt.words, words, normalize) if utt.words else []
    return record


def warm_up(model: dsmlab.DSMModel, batch_size: int) -> None:
    """One short untimed pass, so compilation and allocation stay out of RTFx."""
    silence = torch.zeros(model.sample_rate)
    silences = ((i, silence) for i in range(batch_size))
    for _ in dsmlab.iter_transcripts(model, silences, batch_size):
        pass


def read_records(out: Path) -> list[dict]:
    """All complete records in `out` (main file and rank parts), by dataset index."""
    records: dict[int, dict] = {}
    for path in sorted(out.glob("utterances*.jsonl")):
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a killed run: that utterance is redone
            records[record["index"]] = record
    return [records[i] for i in sorted(records)]


def _drop_partial_line(path: Path) -> None:
    """Cut a last line left unfinished by a killed run, so appends start on a fresh line."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with path.open("r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)


def write_records(path: Path, records: list[dict]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    tmp.replace(path)


def write_results(result: Run, script: str, summary: dict, extra: dict | None = None) -> dict:
    """results.json: what ran, on what, where, and every metric."""
    speeds = [json.loads(p.read_text()) for p in sorted(result.out.glob("speed.rank*.json"))]
    audio = sum(s["audio_s"] for s in speeds)
    compute = max((s["compute_s"] for s in speeds), default=0.0)
    results = {
        "script": script,
        "command": " ".join(shlex.quote(a) for a in [f"python -m eval.{script}", *sys.argv[1:]]),
        "model": result.model.describe(),
        "data": result.data.describe(),
        "metrics": summary,
        "environment": environment(result.model),
        "speed": {
            "audio_s_this_run": audio,
            "compute_s_this_run": compute,
            "rtfx": audio / compute if compute > 0 and audio else None,
            "processes": len(speeds),
            "warmup_excluded": True,
        },
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    } | (extra or {})
    _write_json(result.out / "results.json", results)
    return results


def environment(model: dsmlab.DSMModel) -> dict:
    packages = {}
    for name in (
        "dsmlab",
        "torch",
        "moshi",
        "datasets",
        "jiwer",
        "whisper-normalizer",
        "meeteval",
        "numpy",
    ):
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    device = model.device
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    return {
        "packages": packages,
        "git_commit": _git_commit(),
        "python": platform.python_version(),
        "device": str(device),
        "device_name": name or platform.machine(),
        "dtype": str(model.lm.dtype).replace("torch.", ""),
        "platform": platform.platform(),
    }


def print_table(title: str, rows: dict) -> None:
    print(f"\n{title}")
    for key, value in rows.items():
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        print(f"  {key:32s} {shown}")


def main_guard(body: Callable[[], int]) -> int:
    """Run a script body as dsmlab's CLIs do (one-line errors), then leave torch.distributed."""
    try:
        return dsmlab.run_cli(body)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _distributed_setup() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return int(os.environ.get("RANK", "0")), world


def _git_commit() -> str | None:
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+dirty" if dirty else "")


def _write_json(path: Path, value: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n")
    tmp.replace(path)
