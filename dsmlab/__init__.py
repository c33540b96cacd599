"""dsmlab: a research and evaluation workbench for Kyutai's Delayed Streams Modeling STT models.

    model = dsmlab.load("stt-2.6b-en")          # or a bundled model, "owner/repo", a folder
    transcript = dsmlab.transcribe(model, "speech.wav")

The names below are the public API, with `dsmlab.data` (speech datasets, kept out of this
import for its weight); `eval/` uses nothing else.
"""

from . import cli, intervals
from .alignment import AlignedWord, align_words
from .architectures import ARCHITECTURES, build_random, save_random
from .audio import FRAME_RATE, FRAME_SIZE, SAMPLE_RATE, AudioInput, load_audio, read_chunks
from .bundled import bundled_models, bundled_runs, default_model, test_split
from .checkpoint import file_fingerprint, model_identity
from .cli import run_cli
from .conditioning import model_family, same_delay
from .errors import DSMLabError, UsageError
from .loading import KNOWN_MODELS, available_models, load
from .model import DSMModel
from .normalizers import NORMALIZERS, get_normalizer
from .scheduler import ENCODE_AHEAD, StreamResult, run_streams
from .scoring import error_rates, lookahead_counts, utterance_errors, utterance_wer
from .stepper import FlushResult, StepOutput, Stepper, flush_frames
from .timing import END_OF_PADDING_ID, PADDING_ID, Word, words_from_tokens
from .transcribe import (
    Transcript,
    iter_transcripts,
    pad_for_model,
    padded_frames,
    to_transcript,
    transcribe,
    transcribe_batch,
)
from .vad import EndOfTurnDetector, end_of_turn_frames

__all__ = [
    "ARCHITECTURES",
    "AlignedWord",
    "AudioInput",
    "DSMLabError",
    "DSMModel",
    "ENCODE_AHEAD",
    "END_OF_PADDING_ID",
    "EndOfTurnDetector",
    "FRAME_RATE",
    "FRAME_SIZE",
    "FlushResult",
    "KNOWN_MODELS",
    "NORMALIZERS",
    "PADDING_ID",
    "SAMPLE_RATE",
    "StepOutput",
    "Stepper",
    "StreamResult",
    "Transcript",
    "UsageError",
    "Word",
    "align_words",
    "available_models",
    "build_random",
    "cli",
    "bundled_models",
    "bundled_runs",
    "default_model",
    "end_of_turn_frames",
    "error_rates",
    "file_fingerprint",
    "flush_frames",
    "get_normalizer",
    "intervals",
    "iter_transcripts",
    "load",
    "lookahead_counts",
    "load_audio",
    "read_chunks",
    "model_family",
    "model_identity",
    "pad_for_model",
    "padded_frames",
    "run_cli",
    "run_streams",
    "same_delay",
    "save_random",
    "test_split",
    "transcribe",
    "to_transcript",
    "transcribe_batch",
    "utterance_errors",
    "utterance_wer",
    "words_from_tokens",
]
