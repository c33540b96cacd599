"""Evaluation data: Open ASR Leaderboard aliases, any HF dataset, or local data, one way in.

Audio is read with `Audio(decode=False)` and decoded here, on purpose: `datasets` 5 wants
torchcodec to decode, and a bad row must become a failed utterance, not a crashed run.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
import torch
from datasets.distributed import split_dataset_by_node

import dsmlab
from dsmlab import DSMLabError, load_audio

TEXT_COLUMNS = ("text", "sentence", "normalized_text", "transcript", "transcription")
ESB = "hf-audio/esb-datasets-test-only-sorted"
# alias: (dataset id, config, split); as in Kyutai's eval script and the Open ASR Leaderboard.
ALIASES: dict[str, tuple[str, str | None, str]] = {
    "ami": (ESB, "ami", "test"),
    "earnings22": (ESB, "earnings22", "test"),
    "gigaspeech": (ESB, "gigaspeech", "test"),
    "librispeech.clean": (ESB, "librispeech", "test.clean"),
    "librispeech.other": (ESB, "librispeech", "test.other"),
    "spgispeech": (ESB, "spgispeech", "test"),
    "tedlium": (ESB, "tedlium", "test"),
    "voxpopuli": (ESB, "voxpopuli", "test"),
    "rev16": ("distil-whisper/rev16", "whisper_subset", "test"),
    "earnings21-long": ("distil-whisper/earnings21", "full", "test"),
    "earnings22-long": ("distil-whisper/earnings22", "full", "test"),
    "tedlium-long": ("distil-whisper/tedlium-long-form", None, "test"),
    "meanwhile": ("distil-whisper/meanwhile", None, "test"),
}


# The bundled synthetic test split (dsmlab.train.corpus): offline, with word times.
BUNDLED_DATA = {"synth": dsmlab.test_split}
DEFAULT_DATASET = "synth"


@dataclass
class Utterance:
    """One row: `audio` is 24 kHz mono, or None with `error` set when it cannot be read."""

    index: int  # position in the whole dataset (not the shard): the resume key
    id: str
    text: str
    audio: np.ndarray | None
    words: list[dict] | None = None  # reference words with start/end, when the data has them
    speaker: str | None = None
    error: str | None = None


@dataclass
class EvalData:
    """A dataset ready to iterate, with what a result file must record about it."""

    dataset: datasets.Dataset | datasets.IterableDataset
    name: str
    config: str | None
    split: str
    revision: str | None
    text_column: str
    audio_column: str = "audio"
    fingerprint: str | None = None
    size: int | None = None  # None for streaming datasets
    info: dict = field(default_factory=dict)

    def describe(self) -> dict:
        return {
            "dataset": self.name,
            "config": self.config,
            "split": self.split,
            "revision": self.revision,
            "fingerprint": self.fingerprint,
            "text_column": self.text_column,
        }

    def __iter__(self) -> Iterator[Utterance]:
        for row in self.dataset:
            yield self._utterance(row)

    def _utterance(self, row: dict) -> Utterance:
        index = int(row["__index"])
        words = row.get("words")
        utterance = Utterance(
            index=index,
            id=str(row.get("id") or row.get("segment_id") or index),
            text=str(row[self.text_column] or ""),
            audio=None,
            words=[dict(w) for w in words] if words else None,
            speaker=str(row["speaker_id"]) if row.get("speaker_id") is not None else None,
        )
        try:
            utterance.audio = decode_audio(row[self.audio_column], f"row {utterance.id}").numpy()
        except DSMLabError as e:
            utterance.error = str(e)
        return utterance


def load_eval_data(
    spec: str,
    config: str | None = None,
    split: str | None = None,
    text_column: str | None = None,
    max_samples: int | None = None,
    streaming: bool = False,
    revision: str | None = None,
    rank: int = 0,
    world_size: int = 1,
) -> EvalData:
    """An alias, a hub dataset id, or local data (save_to_disk dir, parquet, jsonl, audiofolder)."""
    name, config, split = _resolve(spec, config, split)
    dataset = _open(name, config, split, streaming, revision)
    fingerprint = getattr(dataset, "_fingerprint", None)  # of the whole set, not a shard
    columns = list(dataset.column_names or [])
    text_column = _text_column(columns, text_column, name)
    if "audio" not in columns:
        raise DSMLabError(f"{name}: no 'audio' column; the columns are {', '.join(columns)}")
    dataset = dataset.cast_column("audio", datasets.Audio(decode=False))
    if max_samples is not None:
        dataset = dataset.take(max_samples)
    size = None if streaming else len(dataset)
    if size == 0:
        raise DSMLabError(f"{name} ({split}) has no rows")
    if streaming:
        dataset = dataset.map(lambda _, i: {"__index": i}, with_indices=True)
    else:  # a new column, not a rewrite of the audio bytes
        dataset = dataset.add_column("__index", list(range(size)))
    if world_size > 1:
        dataset = split_dataset_by_node(dataset, rank, world_size)
        size = None if streaming else len(dataset)
    return EvalData(
        dataset=dataset,
        name=name,
        config=config,
        split=split,
        revision=revision,
        text_column=text_column,
        fingerprint=fingerprint,
        size=size,
    )


def decode_audio(value, label: str = "audio") -> torch.Tensor:
    """{bytes, path} (or {array, sampling_rate}) -> 24 kHz mono; DSMLabError when unreadable."""
    if isinstance(value, str):
        value = {"path": value, "bytes": None}
    if not isinstance(value, dict):
        raise DSMLabError(
            f"{label}: audio cell of type {type(value).__name__}, expected bytes or a path"
        )
    if value.get("array") is not None:
        return load_audio(np.asarray(value["array"]), value.get("sampling_rate"), name=label)
    if value.get("bytes"):
        return load_audio(value["bytes"], name=label)
    if value.get("path"):
        return load_audio(value["path"])
    raise DSMLabError(f"{label}: empty audio cell, neither bytes nor a path")


def _resolve(spec: str, config: str | None, split: str | None) -> tuple[str, str | None, str]:
    if spec in BUNDLED_DATA:
        return str(BUNDLED_DATA[spec]()), config, split or "test"
    if spec in ALIASES:
        name, alias_config, alias_split = ALIASES[spec]
        return name, config or alias_config, split or alias_split
    if Path(spec).exists() or "/" in spec:
        return spec, config, split or "test"
    raise DSMLabError(
        f"unknown dataset '{spec}': use an alias ({', '.join([*BUNDLED_DATA, *ALIASES])}), "
        "a Hugging Face dataset id (owner/name) or a local path"
    )


def _open(name: str, config: str | None, split: str, streaming: bool, revision: str | None):
    path = Path(name)
    try:
        if path.is_dir() and (
            (path / "dataset_dict.json").exists() or (path / "state.json").exists()
        ):
            loaded = datasets.load_from_disk(str(path))
            if isinstance(loaded, datasets.DatasetDict):
                if split not in loaded:
                    raise DSMLabError(f"{name} has no split '{split}'; it has {', '.join(loaded)}")
                loaded = loaded[split]
            return loaded.to_iterable_dataset() if streaming else loaded
        if path.suffix in (".jsonl", ".json", ".parquet") and path.is_file():
            builder = "parquet" if path.suffix == ".parquet" else "json"
            loaded = datasets.load_dataset(
                builder, data_files=str(path), split="train", streaming=streaming
            )
            if builder == "json" and "audio" in (loaded.column_names or []):
                loaded = _resolve_paths(loaded, path.parent, "audio")
            return loaded
        if path.is_dir():
            return _audiofolder(path, split, streaming)
        return datasets.load_dataset(
            name, config, split=split, streaming=streaming, revision=revision
        )
    except DSMLabError:
        raise
    except Exception as e:  # the hub, the builders and the files each raise their own errors
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "corresponds to no data" in first:
            raise DSMLabError(f"{name} ({split}) has no rows") from None
        hint = (
            ""
            if path.exists()
            else (
                ". Without network access use HF_DATASETS_OFFLINE=1 with a cached copy, or a "
                "local path"
            )
        )
        raise DSMLabError(
            f"cannot load dataset {name} (config {config}, split {split}): {first}{hint}"
        ) from None


def _audiofolder(path: Path, split: str, streaming: bool):
    """An audiofolder: metadata.csv or metadata.jsonl with a file_name column beside the audio
    (or in a <split>/ subfolder). Read here with the csv/json builders: datasets' own
    audiofolder builder needs torchcodec (and FFmpeg) just to store the audio."""
    for folder in (path / split, path):
        for meta, builder in (("metadata.csv", "csv"), ("metadata.jsonl", "json")):
            if (folder / meta).is_file():
                loaded = datasets.load_dataset(
                    builder, data_files=str(folder / meta), split="train", streaming=streaming
                )
                if "file_name" not in (loaded.column_names or []):
                    raise DSMLabError(f"{folder / meta} has no file_name column")
                renamed = loaded.rename_column("file_name", "audio")
                return _resolve_paths(renamed, folder, "audio")
    raise DSMLabError(
        f"{path}: a dataset directory holds a save_to_disk dataset, or audio files with "
        "metadata.csv / metadata.jsonl (a file_name column and a transcript column)"
    )


def _resolve_paths(dataset, base: Path, column: str):
    """Audio paths in local metadata are relative to the metadata file; {bytes, path} cells."""
    base = base.resolve()
    return dataset.map(lambda row: {column: {"bytes": None, "path": str(base / row[column])}})


def _text_column(columns: list[str], asked: str | None, name: str) -> str:
    if asked is not None:
        if asked not in columns:
            raise DSMLabError(f"{name}: no column '{asked}'; the columns are {', '.join(columns)}")
        return asked
    for candidate in TEXT_COLUMNS:
        if candidate in columns:
            return candidate
    raise DSMLabError(
        f"{name}: no transcript column among {', '.join(TEXT_COLUMNS)}; the columns are "
        f"{', '.join(columns)}; name one with --text-column"
    )
