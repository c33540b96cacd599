"""`DSMModel`: Mimi, the DSM language model and the tokenizer, with the STT facts of config.json.

A plain record: loading (`dsmlab.load`), random architectures and training all build it with
`DSMModel.from_parts`; streaming, transcription and checkpoint writing take it as an argument.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import torch
from moshi.models import LMModel, MimiModel
from sentencepiece import SentencePieceProcessor

from .conditioning import (
    check_delay,
    condition_tensors,
    conditioned_delays,
    delay_label,
)
from .errors import DSMLabError
from .timing import END_OF_PADDING_ID, PADDING_ID


@dataclass
class DSMModel:
    """A loaded DSM speech-to-text model. Build it with `dsmlab.load`."""

    name: str
    source: str  # hf://owner/name, a local directory, or random:<architecture>
    mimi: MimiModel
    lm: LMModel
    tokenizer: SentencePieceProcessor
    delay_s: float  # the text stream lags the audio by this much (a training-time choice)
    prefix_s: float  # silence the model expects before the audio starts
    padding_id: int = PADDING_ID
    end_of_padding_id: int = END_OF_PADDING_ID
    config: dict = field(default_factory=dict)  # config.json as read or to be written
    mimi_config: dict | None = None  # None: the released Mimi's
    files: dict[str, Path] = field(default_factory=dict)  # checkpoint file name -> local path

    @classmethod
    def from_parts(
        cls,
        config: dict,
        mimi: MimiModel,
        lm: LMModel,
        tokenizer: SentencePieceProcessor,
        *,
        name: str,
        source: str,
        mimi_config: dict | None = None,
        files: dict[str, Path] | None = None,
    ) -> DSMModel:
        """The one constructor: delay, prefix and token ids come from `config` and the LM."""
        stt = config.get("stt_config") or {}
        if "audio_delay_seconds" not in stt:
            raise DSMLabError(
                f"{name}: config.json has no stt_config.audio_delay_seconds; "
                "is this a speech-to-text checkpoint?"
            )
        served = conditioned_delays(config)
        if served:
            check_delay(float(stt["audio_delay_seconds"]), served, name, conditioned=True)
        return cls(
            name=name,
            source=source,
            mimi=mimi,
            lm=lm,
            tokenizer=tokenizer,
            delay_s=float(stt["audio_delay_seconds"]),
            prefix_s=float(stt.get("audio_silence_prefix_seconds", 0.0)),
            padding_id=int(config.get("text_padding_token_id", lm.existing_text_padding_id)),
            end_of_padding_id=int(lm.existing_text_end_padding_id),
            config=config,
            mimi_config=mimi_config,
            files=dict(files or {}),
        )

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
    def delays_s(self) -> list[float]:
        """The delays a delay-conditioned model serves ([] for a fixed-delay model)."""
        return conditioned_delays(self.config)

    def at_delay(self, delay_s: float) -> DSMModel:
        """This delay-conditioned model run at another of its delays (named `name@delay`);
        the weights are shared, not copied. A fixed-delay model accepts its own delay only.
        VAD heads, if any, were fit at the delay the config names (`vad_heads`)."""
        if not self.delays_s:
            check_delay(delay_s, [self.delay_s], self.name, conditioned=False)
            return self
        delay_s = check_delay(delay_s, self.delays_s, self.name, conditioned=True)
        base = self.name.removesuffix(f"@{delay_label(self.delay_s)}")
        return dataclasses.replace(self, name=f"{base}@{delay_label(delay_s)}", delay_s=delay_s)

    def condition_tensors(self, batch_size: int) -> dict | None:
        """What moshi's `LMGen(condition_tensors=...)` needs to run `batch_size` streams of this
        model at its delay; None for a fixed-delay model."""
        return condition_tensors(self.lm, [self.delay_s] * batch_size) if self.delays_s else None

    @property
    def delay_frames(self) -> int:
        return round(self.delay_s * self.frame_rate)

    def describe(self) -> dict:
        """What a result file should record about the model."""
        return {
            "model": self.name,
            "source": self.source,
            "delay_s": self.delay_s,
            "prefix_s": self.prefix_s,
            "has_vad": self.has_vad,
        }
