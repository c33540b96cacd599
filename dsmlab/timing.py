"""Token stream -> words with timestamps.

In a DSM text stream END_OF_PADDING_ID (0) ends a run of padding: the word that follows starts
on the next frame. A word's start is its first frame, its end the next word's start; times are
frame / FRAME_RATE minus the silence prefix and the delay (Kyutai's convention,
scripts/stt_from_file_pytorch.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from sentencepiece import SentencePieceProcessor

from .audio import FRAME_RATE

# The text stream's special tokens (Kyutai's convention; a checkpoint may override the padding
# id with `text_padding_token_id`): ids above PADDING_ID are sentencepiece pieces.
PADDING_ID = 3  # nothing to write on this frame
END_OF_PADDING_ID = 0  # the padding ends: a word starts on the next frame
WORD_START = "\u2581"  # sentencepiece's word-start mark
UNCLOSED_WORD_S = 1.0  # a last word with no closing boundary ends at most this long after it starts


@dataclass
class Word:
    word: str
    start: float  # seconds into the original audio
    end: float
    emitted: float  # audio time at which the word's last token came out of the model
    confidence: float | None = None  # probability the model gave the word's tokens

    def to_dict(self) -> dict:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


@dataclass
class _Span:
    ids: list[int]
    frames: list[int]  # frame of each token
    first: int  # frame of the first token
    last: int  # frame of the last token
    start: float  # frame where the word starts (may precede `first`)


def words_from_tokens(
    tokens: Sequence[int],
    tokenizer: SentencePieceProcessor,
    *,
    prefix_s: float,
    delay_s: float,
    frame_rate: float = FRAME_RATE,
    padding_id: int = PADDING_ID,
    end_of_padding_id: int = END_OF_PADDING_ID,
    audio_end: float | None = None,
    token_probs: Sequence[float] | None = None,
) -> list[Word]:
    """Words from one stream's tokens, one per frame from the first frame fed.

    Handles several words between two boundaries (each starts at its own first token) and a
    last word with no closing boundary: all its tokens count, and it ends `UNCLOSED_WORD_S`
    after its start (or after its last token, or at the stream end).
    Times are clipped to [0, audio_end] when `audio_end` is given. With `token_probs` (the
    probability of each frame's token as decoded), each word's confidence is the product over
    its tokens.
    """
    tokens = [int(t) for t in tokens]
    segments = _segments(tokens, padding_id, end_of_padding_id)
    spans: list[tuple[_Span, float]] = []  # (word, frame where it ends)
    for seg_start, seg_stop, closed in segments:
        words_here: list[_Span] = []
        for pos in range(seg_start, seg_stop):
            token = tokens[pos]
            if token <= padding_id:
                continue
            starts_word = tokenizer.id_to_piece(token).startswith(WORD_START)
            if words_here and not starts_word:
                words_here[-1].ids.append(token)
                words_here[-1].frames.append(pos)
                words_here[-1].last = pos
            elif not words_here and not starts_word and spans:
                spans[-1][0].ids.append(token)  # a word split across a boundary: keep it whole
                spans[-1][0].frames.append(pos)
                spans[-1][0].last = pos
                spans[-1] = (spans[-1][0], seg_stop)
            else:
                start = seg_start if not words_here else pos
                words_here.append(_Span([token], [pos], pos, pos, start))
        for i, span in enumerate(words_here):
            if i + 1 < len(words_here):
                end: float = words_here[i + 1].start
            elif closed:
                end = seg_stop  # the next boundary
            else:  # no closing boundary: at most UNCLOSED_WORD_S after the word starts
                end = min(
                    max(span.start + UNCLOSED_WORD_S * frame_rate, span.last + 1), len(tokens)
                )
            spans.append((span, end))

    offset = prefix_s + delay_s
    limit = float("inf") if audio_end is None else audio_end

    def clock(frame: float) -> float:
        return min(max(0.0, frame / frame_rate - offset), limit)

    words = []
    for span, end in spans:
        text = tokenizer.decode(span.ids).strip()
        if text:
            emitted = (span.last + 1) / frame_rate - prefix_s
            confidence = None
            if token_probs is not None:
                confidence = float(np.prod([token_probs[f] for f in span.frames]))
            words.append(Word(text, clock(span.start), clock(end), emitted, confidence))
    return words


def _segments(
    tokens: list[int], padding_id: int, end_of_padding_id: int
) -> list[tuple[int, int, bool]]:
    """(start, stop, closed): frames between boundaries; text before the first one counts."""
    boundaries = [i for i, t in enumerate(tokens) if t == end_of_padding_id]
    starts = [b + 1 for b in boundaries]
    first_text = next((i for i, t in enumerate(tokens) if t > padding_id), None)
    if first_text is not None and (not boundaries or first_text < boundaries[0]):
        starts.insert(0, first_text)
    segments = []
    for i, start in enumerate(starts):
        if i + 1 < len(starts):
            segments.append((start, starts[i + 1] - 1, True))  # up to the next boundary
        else:
            segments.append((start, len(tokens), False))
    return segments


def decode_text(
    tokens: Sequence[int], tokenizer: SentencePieceProcessor, padding_id: int = PADDING_ID
) -> str:
    """The transcript: every token above the padding id, decoded at once."""
    return tokenizer.decode([int(t) for t in tokens if int(t) > padding_id])
