"""Fine-tuning data: any dataset dsmlab reads -> training examples for the model being tuned.

Each usable row becomes a `codes.Example`: the model's own Mimi codes of the audio and TAIL_S
of silence (frame by frame, as inference computes them), and each reference word's tokens
(the model's tokenizer) and start time. The times come from the dataset's `words` column when
it has one; otherwise from the model's own timestamped transcript of the audio, aligned to
the reference (`dsmlab.align_words`), so (audio, text) alone is enough. Rows that cannot be
used (unreadable audio, empty text) are skipped and counted; none usable is refused.

The examples are cached in the output folder (keyed by the dataset, the model and the model
aligned to, if another), so a resumed fine-tuning does not transcribe and encode again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm import tqdm

from ..alignment import align_words
from ..audio import SAMPLE_RATE
from ..checkpoint import model_identity
from ..cli import torchrun_rank
from ..data import SpeechData
from ..errors import DSMLabError
from ..model import DSMModel
from ..normalizers import get_normalizer
from ..transcribe import iter_transcripts
from .codes import Example, Speller, encode_by_length, tail_padded

CACHE_NAME, REPLAY_CACHE = "examples.pt", "replay.pt"
TRANSCRIBE_BATCH = 16
SPELLING_RULE = 2  # raised when how words become tokens changes: cached examples are remade


@dataclass
class FinetuneData:
    """Training examples, the held-out (text, pcm) pairs for validation WER, and what was used."""

    examples: list[Example]
    held_out: list[tuple[str, torch.Tensor]]
    summary: dict = field(default_factory=dict)


def prepare(
    model: DSMModel,
    data: SpeechData,
    held_out: int,
    cache_dir: Path,
    align: bool = False,
    validation: SpeechData | None = None,
    cache_name: str = CACHE_NAME,
    aligner: DSMModel | None = None,
) -> FinetuneData:
    """The examples of `data` for `model` (at the model's own delay, before any tuning) and
    `held_out` rows for validation: the first of `validation`, or else the last usable rows of
    `data`, kept out of training. `align`: time the words by alignment even when the dataset
    has times; `aligner`: the model whose transcript they are aligned to (default: `model`)."""
    key = {"data": data.describe(), "model": model_identity(model), "held_out": held_out}
    key |= {"align": align, "validation": validation.describe() if validation else None}
    key["spelling"] = SPELLING_RULE
    if aligner is not None:
        key["aligner"] = model_identity(aligner)
    align = align or aligner is not None
    aligner = aligner or model
    cache = cache_dir / cache_name
    if cache.is_file():
        saved = torch.load(cache, weights_only=False)
        if saved["key"] == key:
            return saved["data"]
    rows, skipped = _usable_rows(data)
    if validation is not None:
        train_rows, valid_rows = rows, _usable_rows(validation, held_out)[0]
    else:
        train_rows, valid_rows = rows[: len(rows) - held_out], rows[len(rows) - held_out :]
    if not train_rows:
        found = ", ".join(f"{n} {why}" for why, n in skipped.items()) or "none skipped"
        raise DSMLabError(
            f"{data.name} ({data.split}): {len(rows)} usable rows ({found}); fine-tuning needs "
            f"more than the {held_out} held out for validation (--valid-samples)"
        )
    timed, aligned = word_times(aligner, train_rows, align)
    pcms = [tail_padded(pcm) for _, pcm, _ in train_rows]
    codes = encode_by_length(model.mimi, [len(p) for p in pcms], pcms.__getitem__, "encoding")
    spell = Speller(model.tokenizer)
    examples = [
        Example.of_words(c, words, spell, text)
        for c, words, (text, _, _) in zip(codes, timed, train_rows, strict=True)
    ]
    summary = {
        "training_rows": len(examples),
        "skipped": skipped,
        "word_times": "dataset" if aligned is None else f"aligned to {aligner.name}'s transcript",
        "words_respelled": spell.respelled,
        "words_unspellable": spell.unspellable,
    }
    if aligned is not None:
        summary["words_matched"] = aligned
    summary["held_out_rows"] = len(valid_rows)
    summary["held_out_from"] = f"{(validation or data).name} ({(validation or data).split})"
    prepared = FinetuneData(examples, [(t, pcm) for t, pcm, _ in valid_rows], summary)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(f".{cache.name}.tmp")
    torch.save({"key": key, "data": prepared}, tmp)
    tmp.replace(cache)
    return prepared


def prepare_in_turn(
    model: DSMModel,
    data: SpeechData,
    held_out: int,
    cache_dir: Path,
    align: bool,
    validation: SpeechData | None,
    replay: SpeechData | None,
    aligner: DSMModel | None,
) -> tuple[FinetuneData, FinetuneData | None]:
    """`prepare` the training data and the replayed data (None without `replay`). Under torchrun
    rank 0 prepares first and writes the caches; the other processes then read them."""
    rank, world = torchrun_rank()
    for turn in (0, 1) if world > 1 else (0,):
        if (rank == 0) == (turn == 0):
            prepared = prepare(model, data, held_out, cache_dir, align, validation, aligner=aligner)
            replayed = None
            if replay is not None:
                replayed = prepare(
                    model, replay, 0, cache_dir, align, cache_name=REPLAY_CACHE, aligner=aligner
                )
        if world > 1:
            dist.barrier()
    return prepared, replayed


def _usable_rows(data: SpeechData, limit: int | None = None) -> tuple[list[tuple], dict]:
    """(text, pcm, words or None) of the rows with audio and text (the first `limit`), and
    how many were skipped for which reason."""
    rows, skipped = [], {}
    for utterance in tqdm(data, total=data.size, desc=f"reading {data.split}", unit="row"):
        if limit is not None and len(rows) >= limit:
            break
        why = "unreadable" if utterance.error else "" if utterance.text.strip() else "empty text"
        if why:
            skipped[why] = skipped.get(why, 0) + 1
            continue
        rows.append((utterance.text, torch.from_numpy(utterance.audio), utterance.words))
    return rows, skipped


def word_times(
    model: DSMModel, rows: list[tuple], align: bool = False
) -> tuple[list[list[dict]], float | None]:
    """Each row's words with start and end: the dataset's when every row has them (and not
    `align`), else aligned to the model's transcript for every row (one kind of times for the
    whole set). Returns them and, when aligned, the share of words matched to a transcript
    word."""
    if not align and all(words for _, _, words in rows):
        return [words for _, _, words in rows], None
    normalize = get_normalizer("whisper", "en")
    items = ((k, pcm) for k, (_, pcm, _) in enumerate(rows))
    timed: list[list[dict]] = [[] for _ in rows]
    matched = total = 0
    bar = tqdm(total=len(rows), desc="aligning words", unit="row")
    for k, transcript in iter_transcripts(model, items, TRANSCRIBE_BATCH):
        text, pcm, _ = rows[k]
        aligned = align_words(text, transcript.words, normalize, len(pcm) / SAMPLE_RATE)
        timed[k] = [{"word": a.word, "start": a.start, "end": a.end} for a in aligned]
        matched += sum(a.matched for a in aligned)
        total += len(aligned)
        bar.update(1)
    bar.close()
    return timed, round(matched / max(total, 1), 4)
