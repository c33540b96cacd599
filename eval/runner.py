"""The one runner behind every eval script: model + data -> utterances.jsonl, in a run directory.

    with runner.run(args, args.model, args.out) as result:
        summary = metrics.wer_metrics(result.records)

Before any work: the run directory is checked (writable), locked (one run at a time), and
claimed (its identity must match, see `rundir`); the model's files and the dataset are opened.
Then each utterance's record is appended as soon as it is done, so a killed run loses nothing
and the same command resumes; rows that failed before are retried. Under torchrun each rank
takes a shard and rank 0 merges the parts into one utterances.jsonl.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm import tqdm

import dsmlab
from dsmlab.data import SpeechData, Utterance

from . import metrics, options, protocols, rundir
from .records import DONE, RecordWriter, rank_file, read_records, write_records
from .results import write_json

SKIP_REFERENCES = {"", "ignore time segment in scoring"}  # as the Open ASR Leaderboard
SORT_WINDOW = 8  # utterances buffered per batch slot, sorted longest first


@dataclass
class Run:
    """What a finished run leaves for the script that asked for it."""

    model: dsmlab.DSMModel
    data: SpeechData
    records: list[dict]
    out: Path
    args: argparse.Namespace  # the script's options, with its own arguments in args.argv
    is_main: bool  # rank 0 (or the only process): the one that writes summaries and plots


@contextlib.contextmanager
def run(args: argparse.Namespace, model_spec: str, out: Path) -> Iterator[Run]:
    """Transcribe the dataset with the model into `out`, resuming what is already there; the
    directory stays locked until the caller has written its summary."""
    rank, world = dsmlab.cli.torchrun_rank()
    with rundir.opened(out, rank):
        device = args.device
        if world > 1 and torch.cuda.is_available() and device is None:
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
        model = dsmlab.load(model_spec, device=device)
        data = options.eval_data(args, rank, world)
        identity = rundir.identity(model, data.describe(), options.record_options(args))
        if rank == 0:
            rundir.claim(out, identity, args.overwrite)
        if world > 1:
            dist.barrier()  # the other ranks start once rank 0 has claimed the directory
        done = {r["index"] for r in read_records(out, warn=rank == 0) if r["status"] in DONE}
        protocol = protocols.get(args.protocol)
        if protocol.warm_up:
            warm_up(model, args.batch_size)
        with RecordWriter(rank_file(out, rank, world)) as writer:
            batching = Batching(args.batch_size, protocol)
            speed = _transcribe(model, data, writer, done, options.scoring(args), batching, rank)
        write_json(out / f"speed.rank{rank}.json", speed)
        if world > 1:
            dist.barrier()
        records = read_records(out, warn=False)
        if not records:
            raise dsmlab.DSMLabError(f"{data.name} ({data.split}) has no rows")
        if world > 1:  # every rank has read the parts before rank 0 merges and deletes them
            dist.barrier()
            if rank == 0:
                write_records(out / "utterances.jsonl", records)
                for part in out.glob("utterances.rank*.jsonl"):
                    part.unlink()
            dist.barrier()
        yield Run(model, data, records, out, args, is_main=rank == 0)


@dataclass(frozen=True)
class Batching:
    size: int
    protocol: protocols.Protocol

    @property
    def window(self) -> int:
        """Utterances gathered before they are fed: a static batch, or several batches' worth
        sorted longest first (continuous batching then wastes little on padding)."""
        return self.size if self.protocol.static_batch else SORT_WINDOW * self.size


def _transcribe(
    model,
    data: SpeechData,
    writer: RecordWriter,
    done: set[int],
    scoring: tuple,
    batching: Batching,
    rank: int,
) -> dict:
    """Stream the utterances not done yet through the scheduler; write a record for each."""
    normalize, merge_compounds = scoring
    margin = batching.protocol.trailing_margin_s
    min_frames: dict[int, int] = {}  # a static batch pads each stream to its longest
    pending: dict[int, Utterance] = {}
    data_s = 0.0
    total = None if data.size is None else max(0, data.size - len(done))
    # only rank 0 shows progress; its bar follows tqdm's defaults (TQDM_DISABLE=1 hides it)
    quiet = {"disable": True} if rank != 0 else {}
    bar = tqdm(total=total, unit="utt", dynamic_ncols=True, **quiet)
    audio_s = 0.0

    def write(record: dict) -> None:
        writer.write(record)
        bar.update(1)

    def feed() -> Iterator[tuple[int, torch.Tensor]]:
        nonlocal data_s
        window: list[Utterance] = []
        rows = iter(data)
        while True:
            start = time.perf_counter()
            row = next(rows, None)
            if row is not None and row.index not in done:
                if row.error is not None:
                    write(base_record(row, "failed", error=row.error))
                elif not scorable(row.text, normalize):
                    write(base_record(row, "skipped", error="empty reference"))
                else:
                    window.append(row)
            flush_window = row is None or len(window) >= batching.window
            data_s += time.perf_counter() - start
            if flush_window and window:
                if batching.protocol.static_batch:
                    longest = max(dsmlab.padded_frames(len(u.audio), model, margin) for u in window)
                    min_frames.update((u.index, longest) for u in window)
                else:
                    window.sort(key=lambda u: -len(u.audio))
                for utt in window:
                    pending[utt.index] = utt
                    yield utt.index, torch.from_numpy(utt.audio)
                window = []
            if row is None:
                return

    start = time.perf_counter()
    transcripts = dsmlab.iter_transcripts(model, feed(), batching.size, margin, min_frames)
    for index, transcript in transcripts:
        utt = pending.pop(index)
        min_frames.pop(index, None)
        write(utterance_record(utt, transcript, normalize, merge_compounds))
        audio_s += transcript.audio_s
        elapsed = time.perf_counter() - start - data_s
        bar.set_postfix(audio_h=f"{audio_s / 3600:.3f}", rtfx=f"{audio_s / elapsed:.1f}")
    compute_s = time.perf_counter() - start - data_s
    bar.close()
    return {"audio_s": audio_s, "compute_s": compute_s, "data_s": data_s}


def base_record(utt: Utterance, status: str, error: str | None = None) -> dict:
    return {
        "index": utt.index,
        "id": utt.id,
        "status": status,
        "error": error,
        "reference": utt.text,
        "speaker": utt.speaker,
        "lookahead": utt.lookahead,
        "homophones": utt.homophones,
        "audio_path": utt.path,
        "audio_s": None if utt.audio is None else len(utt.audio) / dsmlab.SAMPLE_RATE,
    }


def utterance_record(
    utt: Utterance, transcript: dsmlab.Transcript, normalize, merge_compounds: bool = False
) -> dict:
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
    record |= dsmlab.utterance_errors(record["ref_norm"], record["hyp_norm"], merge_compounds)
    record["wer"] = record["word_errors"] / record["reference_words"]
    record["matches"] = metrics.match_words(utt.words, words, normalize) if utt.words else []
    return record


def warm_up(model: dsmlab.DSMModel, batch_size: int) -> None:
    """One short untimed pass, so compilation, CUDA graphs and allocation stay out of RTFx.
    On CPU nothing is compiled (dsmlab runs moshi eagerly there) and the pass would only add
    its own time to the run (3 s at batch 32 here), so it is skipped."""
    if model.device.type != "cuda":
        return
    silence = torch.zeros(model.sample_rate)
    silences = ((i, silence) for i in range(batch_size))
    for _ in dsmlab.iter_transcripts(model, silences, batch_size):
        pass


def scorable(text: str, normalize: Callable[[str], str]) -> bool:
    """A reference worth scoring: not a dataset's placeholder, and words left once normalized."""
    return text.strip() not in SKIP_REFERENCES and bool(normalize(text).strip())


def parse(parser, argv: list[str] | None) -> argparse.Namespace:
    """Parse `argv` (the process's arguments when None) and keep them for results.json."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    return args
