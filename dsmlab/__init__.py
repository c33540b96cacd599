"""dsmlab: a research and evaluation workbench for Kyutai's Delayed Streams Modeling STT models."""

from .audio import FRAME_RATE, FRAME_SIZE, SAMPLE_RATE, load_audio
from .checkpoint import KNOWN_MODELS, load
from .engine import Engine, FlushResult, StepOutput, StreamResult, flush_frames
from .errors import DSMLabError
from .model import DSMModel
from .timing import Word, words_from_tokens
from .transcribe import Transcript
from .vad import EndOfTurnDetector, end_of_turn_frames

__all__ = [
    "DSMLabError",
    "DSMModel",
    "EndOfTurnDetector",
    "Engine",
    "FRAME_RATE",
    "FRAME_SIZE",
    "FlushResult",
    "KNOWN_MODELS",
    "SAMPLE_RATE",
    "StepOutput",
    "StreamResult",
    "Transcript",
    "Word",
    "end_of_turn_frames",
    "flush_frames",
    "load",
    "load_audio",
    "words_from_tokens",
]
