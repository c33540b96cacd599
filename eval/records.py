"""The records of a run: `utterances.jsonl`, one JSON object per utterance, append-only.

A record is written as one line and flushed as soon as its utterance is done, so a killed run
loses at most the line it was writing. Reading is tolerant: a cut or junk line is skipped with
a warning, and its utterance is redone. A row may appear twice (a failed row retried, a line
rewritten after a cut): the last record of an index wins.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path

STATUSES = ("ok", "failed", "skipped")
# what every record of a status holds (a line without them was not written by this runner)
REQUIRED = {
    "ok": ("id", "reference", "hypothesis", "ref_norm", "hyp_norm", "audio_s", "words", "wer"),
    "failed": ("id", "error"),
    "skipped": ("id", "error"),
}
DONE = ("ok", "skipped")  # a failed row is retried on the next run
MAIN_FILE = "utterances.jsonl"
PATTERN = "utterances*.jsonl"  # the main file and, under torchrun, one part per rank


def rank_file(out: Path, rank: int, world: int) -> Path:
    return out / (f"utterances.rank{rank}.jsonl" if world > 1 else MAIN_FILE)


def is_record(value: object) -> bool:
    """A line this runner wrote: an object with a row index, a known status and its fields."""
    return (
        isinstance(value, dict)
        and isinstance(value.get("index"), int)
        and not isinstance(value.get("index"), bool)
        and value["index"] >= 0
        and value.get("status") in STATUSES
        and all(key in value for key in REQUIRED[value["status"]])
    )


def read_records(out: Path, warn: bool = True, pattern: str = PATTERN) -> list[dict]:
    """Every readable record in `out` (main file and rank parts, or the files `pattern`
    names), the last per index, by index."""
    records: dict[int, dict] = {}
    for path in sorted(out.glob(pattern)):
        skipped = []
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = None
            if is_record(record):
                records[record["index"]] = record
            elif line.strip():
                skipped.append(number)
        if skipped and warn:
            shown = ", ".join(map(str, skipped[:5])) + (" ..." if len(skipped) > 5 else "")
            print(
                f"warning: {path}: skipped {len(skipped)} unreadable line(s) ({shown}); "
                "their utterances are redone",
                file=sys.stderr,
            )
    return [records[i] for i in sorted(records)]


class RecordWriter:
    """Appends records to one file, a flushed line each; a cut last line is removed first so
    the next record starts on a line of its own."""

    def __init__(self, path: Path) -> None:
        _drop_partial_line(path)
        self._file = path.open("a", encoding="utf-8")

    def write(self, record: dict) -> None:
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_records(path: Path, records: Iterable[dict]) -> None:
    """Replace `path` with `records`, atomically (a temporary file renamed over it)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    tmp.replace(path)


def _drop_partial_line(path: Path) -> None:
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with path.open("r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)


def stream_sentences(streams: list[dict], key: str = "sentences") -> list[dict]:
    """The sentence records of every eval.longform stream (`key`: "alone" for the same
    sentences transcribed one by one), their indices made unique by their stream's: the units
    that two models' long-form runs on the same streams are paired by, even where one run has
    not finished every stream."""
    return [
        s | {"index": r["index"] * 1_000_000 + s["index"]} for r in streams for s in r[key] or []
    ]
