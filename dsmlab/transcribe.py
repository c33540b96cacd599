"""Offline transcription: Kyutai's padding, continuous batching through the scheduler, words out.

model = dsmlab.load("stt-2.6b-en")
print(dsmlab.transcribe(model, "speech.wav").text)
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from .audio import FRAME_RATE, AudioInput, load_audio
from .errors import DSMLabError
from .model import DSMModel
from .scheduler import run_streams
from .stepper import Stepper
from .timing import Word, decode_text, words_from_tokens
from .vad import end_of_turn_frames

RIGHT_MARGIN_S = 0.5  # silence after the delay, as in Kyutai's evaluation script


@dataclass
class Transcript:
    """One input's result. `tokens` holds the text token of every frame fed, padding included."""

    text: str
    words: list[Word]
    tokens: list[int]
    end_of_turn: list[float] | None  # per frame, when the model has VAD heads
    audio_s: float  # duration of the input audio
    model: str
    delay_s: float
    prefix_s: float
    frame_rate: float = FRAME_RATE

    def end_of_turn_times(self, threshold: float = 0.5, hold_frames: int = 1) -> list[float]:
        """Audio times (s) at which an `EndOfTurnDetector` fires on this transcript's VAD."""
        if self.end_of_turn is None:
            return []
        frames = end_of_turn_frames(self.end_of_turn, threshold, hold_frames)
        return [round((f + 1) / self.frame_rate - self.prefix_s, 4) for f in frames]

    def to_dict(self) -> dict:
        return {
            "text": self.text,
            "words": [w.to_dict() for w in self.words],
            "tokens": self.tokens,
            "end_of_turn": self.end_of_turn,
            "audio_s": round(self.audio_s, 4),
            "model": self.model,
            "delay_s": self.delay_s,
            "prefix_s": self.prefix_s,
        }


def pad_for_model(
    pcm: torch.Tensor,
    model: DSMModel,
    right_margin_s: float = RIGHT_MARGIN_S,
    min_frames: int = 0,
) -> torch.Tensor:
    """Silence prefix on the left, delay + margin on the right, then up to a whole frame (and
    up to `min_frames` frames: a static batch pads each stream to its longest)."""
    sr = model.sample_rate
    left = round(model.prefix_s * sr)
    right = round((model.delay_s + right_margin_s) * sr)
    right += -(left + pcm.numel() + right) % model.frame_size
    right += max(0, min_frames * model.frame_size - (left + pcm.numel() + right))
    return torch.nn.functional.pad(pcm, (left, right))


def padded_frames(samples: int, model: DSMModel, right_margin_s: float = RIGHT_MARGIN_S) -> int:
    """Frames `pad_for_model` gives audio of `samples` samples."""
    total = round(model.prefix_s * model.sample_rate) + samples
    total += round((model.delay_s + right_margin_s) * model.sample_rate)
    return -(-total // model.frame_size)


def transcribe(
    model: DSMModel,
    audio: AudioInput,
    sample_rate: int | None = None,
    right_margin_s: float = RIGHT_MARGIN_S,
) -> Transcript:
    """Transcribe one file or array (any sample rate, mono or not)."""
    pcm = load_audio(audio, sample_rate)
    ((_, transcript),) = iter_transcripts(model, [(0, pcm)], 1, right_margin_s)
    return transcript


def transcribe_batch(
    model: DSMModel,
    audios: Sequence[AudioInput],
    sample_rates: Sequence[int | None] | None = None,
    batch_size: int = 8,
    right_margin_s: float = RIGHT_MARGIN_S,
    progress: bool = False,
) -> list[Transcript]:
    """Transcribe many inputs, `batch_size` streams at a time; results in input order.

    Longest inputs go first, and a finished stream's slot is refilled at once, so little
    compute goes to padding. Each input gets the tokens it would get alone.
    """
    if not len(audios):
        return []
    rates = list(sample_rates) if sample_rates is not None else [None] * len(audios)
    if len(rates) != len(audios):
        raise DSMLabError(f"{len(audios)} audio inputs but {len(rates)} sample rates")
    pcms = [load_audio(a, sr) for a, sr in zip(audios, rates, strict=True)]
    order = sorted(range(len(pcms)), key=lambda i: -pcms[i].numel())
    results: dict[Hashable, Transcript] = {}
    total_s = sum(p.numel() for p in pcms) / model.sample_rate
    bar = tqdm(total=round(total_s, 1), unit="audio s", disable=not progress)
    for key, transcript in iter_transcripts(
        model, ((i, pcms[i]) for i in order), batch_size, right_margin_s
    ):
        results[key] = transcript
        bar.update(round(transcript.audio_s, 1))
    bar.close()
    return [results[i] for i in range(len(pcms))]


def iter_transcripts(
    model: DSMModel,
    items: Iterable[tuple[Hashable, torch.Tensor]],
    batch_size: int,
    right_margin_s: float = RIGHT_MARGIN_S,
    min_frames: Mapping[Hashable, int] | None = None,
) -> Iterator[tuple[Hashable, Transcript]]:
    """(key, 24 kHz mono pcm) in, (key, Transcript) out as each finishes (not in input order).
    `min_frames[key]` pads a stream beyond its own padding (its tokens there are kept)."""
    durations: dict[Hashable, float] = {}

    def padded() -> Iterator[tuple[Hashable, torch.Tensor]]:
        for key, pcm in items:
            durations[key] = pcm.numel() / model.sample_rate
            least = min_frames.get(key, 0) if min_frames is not None else 0
            yield key, pad_for_model(pcm, model, right_margin_s, least)

    with Stepper(model, batch_size) as stepper:
        for result in run_streams(stepper, padded()):
            yield (
                result.key,
                to_transcript(
                    model,
                    result.tokens,
                    result.end_of_turn,
                    durations.pop(result.key),
                    result.token_probs,
                ),
            )


def to_transcript(
    model: DSMModel,
    tokens: np.ndarray,
    end_of_turn: np.ndarray | None,
    audio_s: float,
    token_probs: np.ndarray | None = None,
) -> Transcript:
    """Tokens of a padded stream -> text, words (with confidences when `token_probs` are
    given) and per-frame VAD probabilities."""
    words = words_from_tokens(
        tokens,
        model.tokenizer,
        prefix_s=model.prefix_s,
        delay_s=model.delay_s,
        frame_rate=model.frame_rate,
        padding_id=model.padding_id,
        end_of_padding_id=model.end_of_padding_id,
        audio_end=audio_s,
        token_probs=token_probs,
    )
    return Transcript(
        text=decode_text(tokens, model.tokenizer, model.padding_id).strip(),
        words=words,
        tokens=[int(t) for t in tokens],
        end_of_turn=[round(float(p), 5) for p in end_of_turn] if end_of_turn is not None else None,
        audio_s=audio_s,
        model=model.name,
        delay_s=model.delay_s,
        prefix_s=model.prefix_s,
        frame_rate=model.frame_rate,
    )
