"""Evaluation protocols: how each tool pads, batches, scores and times, named and selectable.

The same model and data give different numbers under Kyutai's evaluation script
(delayed-streams-modeling, scripts/stt_evaluate_on_dataset.py) and the Open ASR Leaderboard's
kyutai runner (open_asr_leaderboard, kyutai/run_eval.py): `--protocol` picks whose conventions
a run follows, and results.json records them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import dsmlab


@dataclass(frozen=True)
class Protocol:
    name: str
    trailing_margin_s: float  # silence after the delay, at the end of each utterance
    static_batch: int | None  # dataset order, each batch padded to its longest; None: dsmlab's
    normalizer: str  # the default of --normalizer
    warm_up: bool  # an untimed pass before timing
    speed_includes_data: bool  # the speed figure counts decoding and resampling
    source: str

    def describe(self, batch_size: int, device: str) -> dict:
        """Every convention in words; the speed's as it applied on `device` (a warm-up pass
        runs on CUDA only: on CPU nothing is compiled)."""
        warmed = self.warm_up and device.startswith("cuda")
        return asdict(self) | {
            "prefix": "the checkpoint's audio_silence_prefix_seconds (0 when absent; Kyutai's "
            "scripts assume 1 s then)",
            "trailing": f"audio_delay_seconds + {self.trailing_margin_s} s of silence",
            "batching": (
                f"static batches of {batch_size} in dataset order, each padded to its longest"
                if self.static_batch
                else f"continuous batching over {batch_size} slots: longest first (in windows "
                "of 8 x batch), a slot refilled as soon as its stream ends"
            ),
            "batch_size": batch_size,
            "speed": (
                "RTFx = audio s / (decoding, resampling, padding and inference s)"
                if self.speed_includes_data
                else "RTFx = audio s / inference s (decoding and resampling excluded)"
            )
            + f", on {device}"
            + (", after an untimed warm-up pass" if warmed else ", no warm-up"),
        }


PROTOCOLS = {
    "dsmlab": Protocol(
        name="dsmlab",
        trailing_margin_s=0.5,
        static_batch=None,
        normalizer="whisper",
        warm_up=True,
        speed_includes_data=False,
        source="dsmlab",
    ),
    "kyutai": Protocol(
        name="kyutai",
        trailing_margin_s=0.5,
        static_batch=32,
        normalizer="whisper",
        warm_up=False,
        speed_includes_data=False,
        source="kyutai-labs/delayed-streams-modeling scripts/stt_evaluate_on_dataset.py",
    ),
    "oalb": Protocol(
        name="oalb",
        trailing_margin_s=0.0,
        static_batch=64,
        normalizer="oalb",
        warm_up=True,
        speed_includes_data=True,
        source="huggingface/open_asr_leaderboard kyutai/run_eval.py, run_kyutai.sh",
    ),
}

ALIGNMENT = {
    "whisper": "Levenshtein over words (jiwer)",
    "none": "Levenshtein over words (jiwer)",
    "oalb": "kaldialign with merge_compounds, as the leaderboard scores: a compound split on "
    "one side and joined on the other is no error",
}

DEFINITIONS = {
    "corpus_wer": "all word errors (S + D + I) over all reference words: the leaderboard's WER",
    "mean_utterance_wer": "the mean of per-utterance WERs: what Kyutai's evaluation script "
    "prints as wer",
    "corpus_cer": "all character errors over all reference characters",
    "mean_utterance_cer": "the mean of per-utterance CERs: what Kyutai's script prints as cer",
}


def get(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise dsmlab.UsageError(f"unknown protocol {name!r}: choose one of {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]
