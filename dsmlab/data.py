"""Speech data for evaluation and fine-tuning: Open ASR Leaderboard aliases, any HF dataset, or
local data, one way in.

Audio is read with `Audio(decode=False)` and decoded here, on purpose: `datasets` 5 wants
torchcodec to decode, and a bad row (audio, reference word times, a JSON line) must become a
failed utterance with its reason, not a crashed run.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
import torch
from datasets.distributed import split_dataset_by_node

from . import local_data
from .audio import load_audio
from .bundled import test_split
from .errors import DSMLabError, UsageError

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
# Whole recordings (talks, calls) with their transcripts: eval.longform streams each row whole.
LONG_FORM = ("rev16", "earnings21-long", "earnings22-long", "tedlium-long", "meanwhile")

# The bundled synthetic test split (dsmlab.train.corpus): offline, with word times.
BUNDLED_DATA = {"synth": test_split}
DEFAULT_DATASET = "synth"


@dataclass
class Utterance:
    """One row: `audio` is 24 kHz mono, or None with `error` set when the row cannot be used."""

    index: int  # position in the whole dataset (not the shard): the resume key
    id: str
    text: str
    audio: np.ndarray | None
    words: list[dict] | None = None  # reference words with start/end, when the data has them
    speaker: str | None = None
    lookahead: list[int] | None = None  # indices of reference words only right context decides
    homophones: list[list[str]] | None = None  # per lookahead word, the spellings spoken alike
    error: str | None = None
    path: str | None = None  # the audio file, when the row names one
    source: object = None  # the undecoded audio cell, from `SpeechData.undecoded`


@dataclass
class SpeechData:
    """A dataset ready to iterate, with what a result file must record about it."""

    dataset: datasets.Dataset | datasets.IterableDataset
    name: str
    config: str | None
    split: str
    revision: str | None
    text_column: str
    fingerprint: str | None = None
    size: int | None = None  # None for streaming datasets
    max_samples: int | None = None
    json_lines: bool = False  # rows hold raw JSON lines, parsed as they are read

    def describe(self) -> dict:
        return {
            "dataset": self.name,
            "config": self.config,
            "split": self.split,
            "revision": self.revision,
            "fingerprint": self.fingerprint,
            "text_column": self.text_column,
            "max_samples": self.max_samples,
        }

    def __iter__(self) -> Iterator[Utterance]:
        for row in self.dataset:
            yield self._utterance(row)

    def undecoded(self) -> Iterator[Utterance]:
        """The rows with their audio cell kept undecoded (`source`): a long recording is then
        read in chunks (`dsmlab.read_chunks`) instead of decoded whole."""
        for row in self.dataset:
            yield self._utterance(row, decode=False)

    def _utterance(self, row: dict, decode: bool = True) -> Utterance:
        index = int(row["__index"])
        utt = Utterance(index=index, id=str(index), text="", audio=None)
        try:
            row = local_data.parse_line(row) if self.json_lines else row
            utt.id = str(row.get("id") or row.get("segment_id") or index)
            utt.text = _text(row, self.text_column, self.json_lines)
            utt.words = checked_words(row.get("words"))
            utt.speaker = str(row["speaker_id"]) if row.get("speaker_id") is not None else None
            utt.lookahead, utt.homophones = checked_lookahead(
                row.get("lookahead"), row.get("homophones"), len(utt.text.split())
            )
        except DSMLabError as e:
            utt.error = str(e)
            return utt
        if isinstance(row.get("audio"), dict) and isinstance(row["audio"].get("path"), str):
            utt.path = row["audio"]["path"]
        if not decode:
            utt.source = row.get("audio")
            return utt
        try:
            utt.audio = decode_audio(row["audio"], f"row {utt.id}").numpy()
        except DSMLabError as e:
            utt.error = str(e)
        return utt


def load_data(
    spec: str,
    config: str | None = None,
    split: str | None = None,
    text_column: str | None = None,
    max_samples: int | None = None,
    streaming: bool = False,
    revision: str | None = None,
    rank: int = 0,
    world_size: int = 1,
) -> SpeechData:
    """An alias, a hub dataset id, or local data (save_to_disk dir, parquet, jsonl, audiofolder)."""
    if max_samples is not None and max_samples < 1:
        raise UsageError(f"--max-samples must be at least 1, got {max_samples}")
    name, config, split = _resolve(spec, config, split)
    dataset, columns, json_lines = _open(name, config, split, streaming, revision)
    if streaming and not columns:  # a streamed table may not know its columns before a row
        first = next(iter(dataset), None)
        columns = list(first or [])
    if not columns:
        raise DSMLabError(f"{name} ({split}) has no rows")
    fingerprint = getattr(dataset, "_fingerprint", None)  # of the whole set, not a shard
    if Path(name).exists() and not local_data.is_saved_dataset(Path(name)):
        fingerprint = local_data.fingerprint(Path(name))
    text_column = _text_column(columns, text_column, name)
    if "audio" not in columns:
        raise UsageError(f"{name}: no 'audio' column; the columns are {', '.join(columns)}")
    features = None if json_lines else getattr(dataset, "features", None)
    if features is not None and isinstance(features.get("audio"), datasets.Audio):
        dataset = dataset.cast_column("audio", datasets.Audio(decode=False))
    if max_samples is not None:  # a table holding fewer rows gives them all
        dataset = dataset.take(max_samples if streaming else min(max_samples, len(dataset)))
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
    return SpeechData(
        dataset=dataset,
        name=name,
        config=config,
        split=split,
        revision=revision,
        text_column=text_column,
        fingerprint=fingerprint,
        size=size,
        max_samples=max_samples,
        json_lines=json_lines,
    )


def decode_audio(value, label: str = "audio") -> torch.Tensor:
    """{bytes, path} (or {array, sampling_rate}) -> 24 kHz mono; DSMLabError when unreadable."""
    if isinstance(value, dict) and value.get("array") is not None:
        return load_audio(np.asarray(value["array"]), value.get("sampling_rate"), name=label)
    source = audio_source(value, label)
    try:
        return load_audio(source, name=label if isinstance(source, bytes) else None)
    except UsageError as e:  # a missing file named by a row fails the row, not the run
        raise DSMLabError(str(e)) from None


def audio_source(value, label: str = "audio") -> bytes | str:
    """The bytes or the path an audio cell ({bytes, path}, or a path) holds."""
    if isinstance(value, str):
        value = {"path": value, "bytes": None}
    if not isinstance(value, dict):
        raise DSMLabError(
            f"{label}: audio cell of type {type(value).__name__}, expected bytes or a path"
        )
    if value.get("bytes"):
        return value["bytes"]
    if value.get("path"):
        return value["path"]
    raise DSMLabError(f"{label}: empty audio cell, neither bytes nor a path")


def checked_lookahead(
    indices, homophones, words: int
) -> tuple[list[int] | None, list[list[str]] | None]:
    """A `lookahead` cell: indices into the reference's words (split on spaces) of the words
    whose spelling only the words after them decide, sorted; and the `homophones` cell, when
    there is one: for each of those words, in the same order, the spellings spoken like it,
    returned in the sorted indices' order. DSMLabError naming a bad entry."""
    if indices is None:
        return None, None
    bad = not isinstance(indices, list) or any(
        isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < words for i in indices
    )
    if bad:
        raise DSMLabError(
            f"lookahead cell: expected indices of the reference's {words} words, "
            f"got {indices!r:.60}"
        )
    if homophones is None:
        return sorted(set(indices)), None
    bad = (
        not isinstance(homophones, list)
        or len(homophones) != len(indices)
        or len(set(indices)) != len(indices)
        or any(
            not isinstance(spellings, list) or not all(isinstance(w, str) for w in spellings)
            for spellings in homophones
        )
    )
    if bad:
        raise DSMLabError(
            f"homophones cell: expected one list of spellings for each of the {len(indices)} "
            f"distinct lookahead indices, got {homophones!r:.60}"
        )
    paired = dict(zip(indices, homophones, strict=True))
    order = sorted(paired)
    return order, [paired[i] for i in order]


def checked_words(words) -> list[dict] | None:
    """Reference word times as [{word, start, end}], or DSMLabError naming the bad entry."""
    if words is None or (isinstance(words, list) and not words):
        return None
    if not isinstance(words, list):
        raise DSMLabError(f"words cell: expected a list of {{word, start, end}}, got {words!r:.40}")
    checked = []
    for k, w in enumerate(words):
        times = [w.get(key) if isinstance(w, dict) else None for key in ("start", "end")]
        good = isinstance(w, dict) and isinstance(w.get("word"), str)
        good = good and all(
            isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t)
            for t in times
        )
        if not good or times[0] > times[1]:
            raise DSMLabError(
                f"words cell: entry {k} ({w!r:.60}) is not {{word, start, end}} with "
                "finite times, start <= end"
            )
        checked.append({"word": w["word"], "start": float(times[0]), "end": float(times[1])})
    return checked


def _text(row: dict, column: str, strict: bool) -> str:
    value = row.get(column)
    if value is None and strict:
        raise DSMLabError(f"no '{column}' field")
    return str(value or "")


def _resolve(spec: str, config: str | None, split: str | None) -> tuple[str, str | None, str]:
    if spec in BUNDLED_DATA:
        return str(BUNDLED_DATA[spec]()), config, split or "test"
    if spec in ALIASES:
        name, alias_config, alias_split = ALIASES[spec]
        return name, config or alias_config, split or alias_split
    if Path(spec).exists() or "/" in spec:
        return spec, config, split or "test"
    raise UsageError(
        f"unknown dataset '{spec}': use an alias ({', '.join([*BUNDLED_DATA, *ALIASES])}), "
        "a Hugging Face dataset id (owner/name) or a local path"
    )


def _open(name: str, config: str | None, split: str, streaming: bool, revision: str | None):
    """(dataset, its columns, whether its rows are raw JSON lines)."""
    path = Path(name)
    try:
        if local_data.is_saved_dataset(path):
            loaded = local_data.open_saved(path, split, streaming)
        elif path.is_file() and path.suffix in local_data.JSON_SUFFIXES:
            loaded, fields = local_data.open_json_lines(path, streaming)
            return loaded, fields, True
        elif path.is_file() and path.suffix == ".parquet":
            loaded = local_data.open_table(path, "parquet", streaming)
        elif path.is_dir():
            folder = local_data.open_audio_folder(path, split, streaming)
            if folder is None:
                raise UsageError(
                    f"{path}: a dataset directory holds a save_to_disk dataset, or audio files "
                    "with metadata.csv / metadata.jsonl (a file_name column and a transcript "
                    "column)"
                )
            loaded, fields = folder
            if fields is not None:
                return loaded, fields, True
        elif path.exists():
            raise UsageError(
                f"{path}: not a dataset dsmlab reads (a save_to_disk folder, .parquet, .jsonl, "
                "or an audio folder with metadata)"
            )
        else:
            loaded = datasets.load_dataset(
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
    return loaded, list(loaded.column_names or []), False


def _text_column(columns: list[str], asked: str | None, name: str) -> str:
    if asked is not None:
        if asked not in columns:
            raise UsageError(f"{name}: no column '{asked}'; the columns are {', '.join(columns)}")
        return asked
    for candidate in TEXT_COLUMNS:
        if candidate in columns:
            return candidate
    raise UsageError(
        f"{name}: no transcript column among {', '.join(TEXT_COLUMNS)}; the columns are "
        f"{', '.join(columns)}; name one with --text-column"
    )
