"""results.json: what ran, on what, where, how to run it again, and every metric."""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import subprocess
from importlib import metadata
from pathlib import Path

import torch

import dsmlab

from . import protocols

PACKAGES = ("dsmlab", "torch", "moshi", "datasets", "jiwer", "whisper-normalizer", "meeteval")
FAILURES_SHOWN = 5  # failed rows listed by id and reason in results.json and reports


def write_results(result, script: str, summary: dict, extra: dict | None = None) -> dict:
    """Write `results.json` of a finished `runner.Run` and return it."""
    args = result.args
    protocol = protocols.get(args.protocol)
    speeds = [json.loads(p.read_text()) for p in sorted(result.out.glob("speed.rank*.json"))]
    audio = sum(s["audio_s"] for s in speeds)
    included = ("compute_s", "data_s") if protocol.speed_includes_data else ("compute_s",)
    compute = max((sum(s[k] for k in included) for s in speeds), default=0.0)
    command = ["python", "-m", f"eval.{script}", *args.argv]
    failed = [r for r in result.records if r["status"] == "failed"]
    results = {
        "script": script,
        "command": command,
        "command_line": shlex.join(command),
        "cwd": os.getcwd(),
        "model": result.model.describe(),
        "data": result.data.describe(),
        "definitions": {
            "protocol": protocol.describe(args.batch_size, str(result.model.device)),
            "normalizer": args.normalizer,
            "language": args.language,
            "alignment": protocols.ALIGNMENT[args.normalizer],
            **protocols.DEFINITIONS,
        },
        "metrics": summary,
        "failures": {
            "count": len(failed),
            "first": [{"id": r["id"], "error": r["error"]} for r in failed[:FAILURES_SHOWN]],
        },
        "environment": environment(result.model),
        "speed": {
            "audio_s_this_run": audio,
            "compute_s_this_run": compute,
            "rtfx": audio / compute if compute > 0 and audio else None,
            "processes": len(speeds),
            "definition": protocol.describe(args.batch_size, str(result.model.device))["speed"],
        },
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    } | (extra or {})
    write_json(result.out / "results.json", results)
    return results


def write_manifest(result, rtfx: float | None) -> Path:
    """The run's scored utterances as an Open ASR Leaderboard manifest (audio_filepath,
    duration, time, text, pred_text; one JSON line each), named as the leaderboard names its
    own, in `oalb/`: its `eval_utils.score_results(<run>/oalb)` scores it. `time` spreads this
    invocation's compute over the utterances by duration (None when nothing was computed)."""
    model = result.model.name.replace("/", "-")
    data = result.data
    dataset = "_".join(str(p).strip("/").replace("/", "-") for p in (data.name, data.config) if p)
    path = result.out / "oalb" / f"MODEL_{model}_DATASET_{dataset}_{data.split}.jsonl"
    path.parent.mkdir(exist_ok=True)
    lines = [
        {
            "audio_filepath": r.get("audio_path") or r["id"],
            "duration": r["audio_s"],
            "time": r["audio_s"] / rtfx if rtfx else None,
            "text": r["reference"],
            "pred_text": r["hypothesis"],
        }
        for r in result.records
        if r["status"] == "ok"
    ]
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines))
    tmp.replace(path)
    return path


def read_results(run_dir: Path) -> dict:
    """A run directory's results.json, or a one-line error saying what to do."""
    path = run_dir / "results.json"
    if not path.is_file():
        raise dsmlab.UsageError(f"{run_dir}: no results.json; is it an eval run directory?")
    try:
        results = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        results = e
    if not isinstance(results, dict) or not {"model", "data", "metrics"} <= set(results):
        raise dsmlab.DSMLabError(
            f"{path} is corrupt; rerun the command that made it (its records are kept, so it "
            "only recomputes the summary)"
        )
    return results


def environment(model: dsmlab.DSMModel) -> dict:
    packages = {}
    for name in PACKAGES:
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
        "threads": torch.get_num_threads(),
        "platform": platform.platform(),
    }


def print_table(title: str, rows: dict) -> None:
    print(f"\n{title}")
    for key, value in rows.items():
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        print(f"  {key:32s} {shown}")


def print_written(out: Path) -> None:
    """The last line of every eval script: where its run went and how to read it."""
    print(f"\nwritten to {out}/ (python -m eval.report {out} --out report/ makes a report)")


def write_json(path: Path, value: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n")
    tmp.replace(path)


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
