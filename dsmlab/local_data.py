"""Local speech data, in the layouts people keep on disk, streaming or not.

- a `datasets.save_to_disk` folder (a Dataset or a DatasetDict);
- a `.parquet` file;
- a JSON Lines file whose `audio` field names files relative to it;
- a folder of audio files with `metadata.csv` or `metadata.jsonl` (`file_name` plus a
  transcript), at its top or in a `<split>/` subfolder.

JSON Lines are read here, a line at a time, not by the `json` builder: one malformed line, or
one line whose audio is not a path, must become one failed row, not a refused dataset. Their
rows carry the raw line (`__json`); `parse_line` turns it into a row when it is iterated.
"""

from __future__ import annotations

import json
from pathlib import Path

import datasets

from .checkpoint import file_fingerprint
from .errors import DSMLabError, UsageError

JSON_SUFFIXES = (".jsonl", ".json")
SCHEMA_LINES = 200  # lines read to learn a JSON Lines file's fields


def is_saved_dataset(path: Path) -> bool:
    return path.is_dir() and any((path / f).exists() for f in ("dataset_dict.json", "state.json"))


def open_saved(path: Path, split: str, streaming: bool):
    loaded = datasets.load_from_disk(str(path))
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise UsageError(
                f"{path} has no split '{split}'; it has {', '.join(loaded)} (use --split)"
            )
        loaded = loaded[split]
    return loaded.to_iterable_dataset() if streaming else loaded


def open_table(path: Path, builder: str, streaming: bool, audio_key: str = "audio"):
    """A parquet or csv file through its `datasets` builder; csv audio paths are resolved."""
    loaded = datasets.load_dataset(
        builder, data_files=str(path), split="train", streaming=streaming
    )
    if builder == "csv":
        columns = list(loaded.column_names or [])
        if audio_key not in columns:
            raise UsageError(f"{path} has no {audio_key} column")
        base = path.parent.resolve()
        loaded = loaded.rename_column(audio_key, "audio").map(
            lambda row: {"audio": {"bytes": None, "path": str(base / str(row["audio"]))}}
        )
    return loaded


def open_json_lines(path: Path, streaming: bool, audio_key: str = "audio"):
    """(dataset of raw lines, the fields seen in its first lines). Blank lines are not rows."""
    with path.open(encoding="utf-8", errors="replace") as f:
        lines = [line.rstrip("\n") for line in f if line.strip()]
    fields: list[str] = []
    for line in lines[:SCHEMA_LINES]:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            fields += [k for k in row if k not in fields]
    fields = ["audio" if k == audio_key else k for k in fields]
    meta = {"__base": str(path.parent.resolve()), "__audio_key": audio_key}
    if streaming:

        def generate():
            for line in lines:
                yield {"__json": line} | meta

        return datasets.IterableDataset.from_generator(generate), fields
    table = {"__json": lines} | {k: [v] * len(lines) for k, v in meta.items()}
    return datasets.Dataset.from_dict(table), fields


def open_audio_folder(path: Path, split: str, streaming: bool):
    """(dataset, fields or None) of an audio folder, or None when `path` is not one."""
    for folder in (path / split, path):
        if (folder / "metadata.jsonl").is_file():
            return open_json_lines(folder / "metadata.jsonl", streaming, "file_name")
        if (folder / "metadata.csv").is_file():
            return open_table(folder / "metadata.csv", "csv", streaming, "file_name"), None
    return None


def parse_line(row: dict) -> dict:
    """A JSON Lines row as a dataset row ({bytes, path} audio), or DSMLabError saying why not."""
    try:
        parsed = json.loads(row["__json"])
    except json.JSONDecodeError as e:
        raise DSMLabError(f"malformed JSON line ({e.msg}, column {e.colno})") from None
    if not isinstance(parsed, dict):
        raise DSMLabError(f"a JSON line must hold an object, not {type(parsed).__name__}")
    key = row["__audio_key"]
    audio = parsed.pop(key, None)
    if not isinstance(audio, str) or not audio:
        raise DSMLabError(f"'{key}' must be an audio file path, got {audio!r:.40}")
    return parsed | {"audio": {"bytes": None, "path": str(Path(row["__base"]) / audio)}}


def fingerprint(path: Path) -> str | None:
    """A fingerprint of a local file's content (the metadata of an audio folder); the audio
    files a table names are not read for it."""
    if path.is_file():
        return file_fingerprint(path)
    for name in ("metadata.jsonl", "metadata.csv"):
        found = sorted(path.rglob(name))
        if found:
            return file_fingerprint(found[0])
    return None
