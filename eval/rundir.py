"""The run directory: one run's records, its identity and its lock. It never mixes two runs.

- `run.json` holds the run's identity: what fixes its records (the model's files, the dataset
  and its selection, every option that changes a record, the dsmlab version). Resuming into a
  directory whose identity differs is refused with one line naming the difference.
- `.lock` is held while a run writes (one per rank under torchrun); a second run into the same
  directory is refused at once. The lock is released even when a run is killed.
- `--overwrite` deletes what a run wrote there (and nothing else) before it starts.
- A run refused before it wrote anything (a model or dataset that does not load) removes the
  directory it made, so no empty directory passes for a run (`opened`).
"""

from __future__ import annotations

import contextlib
import json
import os
from importlib import metadata
from pathlib import Path

from filelock import FileLock, Timeout

import dsmlab

from .records import PATTERN, read_records

RUN_FILE = "run.json"
STREAM_RECORDS = "streams.jsonl"  # eval.longform: one record per finished stream
WRITTEN = (
    RUN_FILE,
    "results.json",
    PATTERN,
    STREAM_RECORDS,
    "speed.rank*.json",
    "*.png",
    "oalb/*.jsonl",
)


def prepare(out: Path) -> None:
    """Make `out`, or say in one line why it cannot be a run directory (before any work)."""
    if out.exists() and not out.is_dir():
        raise dsmlab.UsageError(f"--out {out} is a file, not a directory; choose another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise dsmlab.UsageError(
            f"--out {out} cannot be written ({e.strerror or e}); choose another --out"
        ) from None


@contextlib.contextmanager
def opened(out: Path, rank: int = 0):
    """`prepare` and `locked` together; a run refused before it wrote anything (a model or a
    dataset that does not load) leaves no empty directory behind to be mistaken for a run."""
    made = not out.exists()
    prepare(out)
    try:
        with locked(out, rank):
            yield
    except BaseException:
        if made:
            _lock_path(out, rank).unlink(missing_ok=True)
            with contextlib.suppress(OSError):  # something was written (or another rank's lock)
                out.rmdir()
        raise


def _lock_path(out: Path, rank: int) -> Path:
    return out / (".lock" if rank == 0 else f".lock.rank{rank}")


@contextlib.contextmanager
def locked(out: Path, rank: int = 0):
    """Hold the directory's lock for this rank, or refuse at once if another run holds it."""
    lock = FileLock(str(_lock_path(out, rank)), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise dsmlab.UsageError(
            f"another run is writing into {out} right now; wait for it to finish or use "
            "another --out"
        ) from None
    try:
        yield
    finally:
        lock.release()


def identity(model: dsmlab.DSMModel, data_identity: dict, options: dict) -> dict:
    """Everything that fixes the records of a run."""
    return {
        "dsmlab": metadata.version("dsmlab"),
        "model": dsmlab.model_identity(model),
        "dataset": data_identity,
        "options": options,
    }


def claim(out: Path, wanted: dict, overwrite: bool) -> None:
    """Make `out` this run's: a new directory gets `run.json`; one holding the same run is
    resumed; one holding another run is refused (or emptied with `overwrite`)."""
    if overwrite:
        for pattern in WRITTEN:
            for path in out.glob(pattern):
                path.unlink()
    path = out / RUN_FILE
    if path.exists():
        try:
            found = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            found = None
        if not isinstance(found, dict):
            raise dsmlab.UsageError(
                f"{path} is unreadable, so the run in {out} cannot be resumed safely; use "
                "--overwrite to start it again, or another --out"
            )
        changed = differences(found, wanted)
        if changed:
            shown = "; ".join(changed[:3]) + (f"; {len(changed) - 3} more" if changed[3:] else "")
            raise dsmlab.UsageError(
                f"{out} holds another run ({shown}); use another --out, or --overwrite to "
                "replace it"
            )
        return
    if read_records(out, warn=False):
        raise dsmlab.UsageError(
            f"{out} holds records without {RUN_FILE} (an older dsmlab wrote them), so they "
            "cannot be trusted to be this run's; use --overwrite or another --out"
        )
    tmp = out / f".{RUN_FILE}.tmp"
    tmp.write_text(json.dumps(wanted, indent=2) + "\n")
    tmp.replace(path)


def differences(old: dict, new: dict) -> list[str]:
    """'key: old -> new' for every leaf that differs, keys dotted (model.name, options.x...)."""
    flat_old, flat_new = _flatten(old), _flatten(new)
    return [
        f"{key}: {_short(flat_old.get(key))} -> {_short(flat_new.get(key))}"
        for key in sorted(set(flat_old) | set(flat_new), key=_order)
        if flat_old.get(key) != flat_new.get(key)
    ]


def _flatten(value: object, prefix: str = "") -> dict[str, object]:
    if isinstance(value, dict) and value:
        flat: dict[str, object] = {}
        for key, item in value.items():
            flat |= _flatten(item, f"{prefix}.{key}" if prefix else str(key))
        return flat
    return {prefix: value}


def _order(key: str) -> tuple[int, str]:
    """Names before hashes: a different model reads 'model.name: a -> b' first."""
    return (0 if key.endswith(".name") or key.startswith(("dataset", "options")) else 1, key)


def _short(value: object) -> str:
    text = "absent" if value is None else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def model_dirname(spec: str) -> str:
    """A model's subdirectory in a run of several models (its name, path separators kept out)."""
    return spec.rstrip("/").replace("/", "__").lstrip("._") or "model"
