"""Word and character error rates (jiwer): the one implementation training and evaluation share.

Inputs are normalized texts (see `dsmlab.normalizers`); an empty hypothesis is fine, an empty
reference is not scored by callers (its WER is undefined).
"""

from __future__ import annotations

from collections.abc import Sequence

import jiwer
import numpy as np


def utterance_wer(reference: str, hypothesis: str) -> float:
    """(S + D + I) / reference words of one utterance."""
    return jiwer.process_words(reference, hypothesis).wer


def error_rates(references: Sequence[str], hypotheses: Sequence[str]) -> dict:
    """Corpus WER (all errors over all reference words), the mean of per-utterance WERs (what
    Kyutai's evaluation script calls `wer`), corpus CER and the error counts."""
    words = jiwer.process_words(list(references), list(hypotheses))
    per_utterance = [utterance_wer(r, h) for r, h in zip(references, hypotheses, strict=True)]
    return {
        "wer": words.wer,
        "mean_utterance_wer": float(np.mean(per_utterance)),
        "cer": jiwer.process_characters(list(references), list(hypotheses)).cer,
        "substitutions": words.substitutions,
        "deletions": words.deletions,
        "insertions": words.insertions,
        "hits": words.hits,
        "reference_words": words.hits + words.substitutions + words.deletions,
    }
