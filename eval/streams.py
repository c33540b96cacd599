"""Long streams for long-form evaluation, and one pass of a model over each, as live.

A stream is either stitched from a dataset's utterances (a seeded order, cycling through the
rows as often as the length asks, with seeded silences between them; the reference words'
times shifted into the stream), or one long recording taken as it is (an Open ASR Leaderboard
long-form set: a whole talk and its transcript), read in chunks. Either way the audio reaches
the model frame by frame and never sits whole in memory: stitched streams are assembled from
the utterances as they are fed, recordings decoded a chunk at a time (`dsmlab.read_chunks`).

`run_stream` feeds a stream through one slot of a `dsmlab.Stepper` in one pass, with no
segmentation and no reset, the checkpoint's silence prefix first and the flush trick at the
very end only, and records the speed and memory of each window of the stream as it grows.
"""

from __future__ import annotations

import random
import resource
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

import dsmlab
from dsmlab.data import audio_source

GAPS_S = (0.3, 1.2)  # silence between stitched utterances, drawn uniformly
WINDOW_S = 30.0  # the stream is scored, timed and measured per window of this length
RECORDING_CHUNK_S = 30.0  # a recording is decoded this much at a time


@dataclass(frozen=True)
class Sentence:
    """One utterance placed in a stitched stream."""

    index: int  # the utterance's row in the dataset
    id: str
    text: str
    offset_s: float  # where its audio starts in the stream
    duration_s: float
    words: list[dict] | None  # reference words, their times in the stream


@dataclass
class Stream:
    """What a stream holds and what it should be transcribed as."""

    name: str
    duration_s: float
    sentences: list[Sentence] = field(default_factory=list)  # empty for a recording
    text: str = ""  # a recording's whole reference
    audio: object = None  # a recording's audio cell ({bytes, path}), decoded in chunks


def stitch(
    utterances: Sequence,
    seconds: float,
    seed: int,
    gaps_s: tuple[float, float] = GAPS_S,
    name: str = "stream",
) -> Stream:
    """A stream of about `seconds` from `utterances` (each with .index, .id, .text, .audio at
    24 kHz and .words or None): a silence drawn from `gaps_s`, an utterance, a silence, ...
    The order is a seeded shuffle of the rows, shuffled again each time they are used up, so a
    stream longer than the dataset repeats it in another order."""
    if not utterances:
        raise dsmlab.DSMLabError("no usable utterances to stitch a stream from")
    rng = random.Random(seed)
    order: list = []
    sentences, clock = [], 0.0
    while clock < seconds:
        if not order:
            order = list(utterances)
            rng.shuffle(order)
        utt = order.pop()
        clock += _frame_aligned(rng.uniform(*gaps_s))
        duration = len(utt.audio) / dsmlab.SAMPLE_RATE
        words = None
        if utt.words:
            words = [w | {"start": w["start"] + clock, "end": w["end"] + clock} for w in utt.words]
        sentences.append(Sentence(utt.index, str(utt.id), utt.text, clock, duration, words))
        clock += duration
    clock += _frame_aligned(rng.uniform(*gaps_s))
    return Stream(name, round(clock, 6), sentences)


def _frame_aligned(seconds: float) -> float:
    """Silences a whole number of samples long, so stream times are exact."""
    return round(seconds * dsmlab.SAMPLE_RATE) / dsmlab.SAMPLE_RATE


def stitched_audio(stream: Stream, audio_of: Callable[[int], np.ndarray]) -> Iterator[np.ndarray]:
    """The stitched stream's audio, piece by piece (silence, then an utterance, ...):
    `audio_of(row index)` gives an utterance's 24 kHz samples."""
    clock = 0
    for sentence in stream.sentences:
        start = round(sentence.offset_s * dsmlab.SAMPLE_RATE)
        yield np.zeros(start - clock, np.float32)
        audio = audio_of(sentence.index)
        yield audio
        clock = start + len(audio)
    yield np.zeros(max(0, round(stream.duration_s * dsmlab.SAMPLE_RATE) - clock), np.float32)


def recording_audio(stream: Stream) -> Iterator[np.ndarray]:
    """A recording's audio, decoded and resampled a chunk at a time."""
    source = audio_source(stream.audio, stream.name)
    for chunk in dsmlab.read_chunks(source, RECORDING_CHUNK_S, name=stream.name):
        yield chunk.numpy()


def frames(
    pieces: Iterable[np.ndarray], frame_size: int = dsmlab.FRAME_SIZE
) -> Iterator[np.ndarray]:
    """Pieces of audio of any length as frames of `frame_size`; the last padded with silence."""
    carry = np.zeros(0, np.float32)
    for piece in pieces:
        carry = np.concatenate([carry, np.asarray(piece, np.float32)])
        whole = len(carry) // frame_size * frame_size
        yield from carry[:whole].reshape(-1, frame_size)
        carry = carry[whole:]
    if len(carry):
        yield np.pad(carry, (0, frame_size - len(carry)))


@dataclass
class StreamRun:
    """The tokens and words of one pass over a stream, and how it ran, window by window."""

    tokens: list[int]
    words: list[dsmlab.Word]
    audio_s: float
    windows: list[dict]  # per WINDOW_S of audio fed: compute seconds, RTFx, memory


def run_stream(
    model: dsmlab.DSMModel,
    audio: Iterable[np.ndarray],
    expected_s: float | None = None,
    window_s: float = WINDOW_S,
    desc: str | None = None,
) -> StreamRun:
    """Feed the stream's audio (pieces of 24 kHz samples) through one slot in one pass: the
    checkpoint's silence prefix, the audio frame by frame, then the flush trick (the delay's
    silence pushed at once). `expected_s` only sizes the progress bar."""
    fed = [0]

    def counted() -> Iterator[np.ndarray]:
        for piece in audio:
            fed[0] += len(piece)
            yield piece

    prefix = round(model.prefix_s * model.frame_rate)
    silence = np.zeros((prefix, model.frame_size), np.float32)
    per_window = max(1, round(window_s * model.frame_rate))
    tokens: list[int] = []
    windows: list[dict] = []
    total = prefix + int(np.ceil(expected_s * model.frame_rate)) if expected_s else None
    quiet = {"disable": True} if desc is None else {}  # else tqdm's defaults (TQDM_DISABLE=1)
    bar = tqdm(total=total, desc=desc, unit="frame", leave=False, **quiet)
    with dsmlab.Stepper(model, batch_size=1) as stepper, bar:
        started = time.perf_counter()
        for frame in _chain(silence, frames(counted())):
            batch = torch.from_numpy(frame).to(model.device).view(1, 1, -1)
            tokens.append(int(stepper.step_tensors(batch)[0][0]))
            bar.update(1)
            fed_frames = len(tokens) - prefix  # windows are of the stream, not of the prefix
            if fed_frames == 0:
                started = time.perf_counter()
            elif fed_frames > 0 and fed_frames % per_window == 0:
                windows.append(_window(len(windows), window_s, started, model.device))
                started = time.perf_counter()
        if (len(tokens) - prefix) % per_window:
            seconds = ((len(tokens) - prefix) % per_window) / model.frame_rate
            windows.append(_window(len(windows), seconds, started, model.device, window_s))
        flushed = stepper.flush([0])
    audio_s = fed[0] / dsmlab.SAMPLE_RATE
    tokens += flushed.tokens[0].tolist()
    words = dsmlab.to_transcript(model, np.asarray(tokens), None, audio_s).words
    return StreamRun(tokens, words, audio_s, windows)


def _chain(*parts: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    for part in parts:
        yield from part


def _window(
    index: int,
    seconds: float,
    started: float,
    device: torch.device,
    window_s: float | None = None,
) -> dict:
    """Compute time and memory of one window just fed (stream seconds `seconds`)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    compute = time.perf_counter() - started
    found = {
        "start_s": round(index * (window_s or seconds), 3),
        "audio_s": round(seconds, 3),
        "compute_s": round(compute, 4),
        "rtfx": round(seconds / compute, 2) if compute > 0 else None,
        "rss_mb": _rss_mb(),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    if device.type == "cuda":
        found["cuda_peak_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return found


def _rss_mb() -> float | None:
    """The process's resident memory now (Linux); None elsewhere."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return round(pages * resource.getpagesize() / 2**20, 1)
