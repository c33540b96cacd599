"""`DSMModel`: Mimi, the DSM language model and the tokenizer, with the STT facts of config.json."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from moshi.models import LMModel, MimiModel
from sentencepiece import SentencePieceProcessor

if TYPE_CHECKING:
    from .audio import AudioInput
    from .engine import Engine
    from .transcribe import Transcript


@dataclass
class DSMModel:
    """A loaded DSM speech-to-text model. Build it with `dsmlab.load`."""

    name: str
    source: str  # hf://owner/name or a local directory
    mimi: MimiModel
    lm: LMModel
    tokenizer: SentencePieceProcessor
    delay_s: float  # the text stream lags the audio by this much (a training-time choice)
    prefix_s: float  # silence the model expects before the audio starts
    padding_id: int = 3
    end_of_padding_id: int = 0  # marks a word boundary in the text stream
    config: dict = field(default_factory=dict)

    @property
    def frame_rate(self) -> float:
        return float(self.mimi.frame_rate)

    @property
    def frame_size(self) -> int:
        return int(self.mimi.frame_size)

    @property
    def sample_rate(self) -> int:
        return int(self.mimi.sample_rate)

    @property
    def device(self) -> torch.device:
        return self.lm.device

    @property
    def has_vad(self) -> bool:
        """True when the checkpoint carries the semantic-VAD (end-of-turn) heads."""
        return len(self.lm.extra_heads) > 0

    @property
    def delay_frames(self) -> int:
        return round(self.delay_s * self.frame_rate)

    def streaming(self, batch_size: int = 1, temperature: float = 0.0) -> Engine:
        """A batched frame-by-frame engine: `with model.streaming(8) as engine: engine.step(..)`."""
        from .engine import Engine

        return Engine(self, batch_size, temperature)

    def transcribe(
        self, audio: AudioInput, sample_rate: int | None = None, **options
    ) -> Transcript:
        """Transcribe one file or array offline (Kyutai's padding); see `transcribe.transcribe`."""
        from .transcribe import transcribe

        return transcribe(self, audio, sample_rate, **options)

    def transcribe_batch(self, audios: list[AudioInput], **options) -> list[Transcript]:
        """Transcribe many inputs in shared batches; see `transcribe.transcribe_batch`."""
        from .transcribe import transcribe_batch

        return transcribe_batch(self, audios, **options)

    def describe(self) -> dict:
        """What a result file should record about the model."""
        return {
            "model": self.name,
            "source": self.source,
            "delay_s": self.delay_s,
            "prefix_s": self.prefix_s,
            "has_vad": self.has_vad,
        }
