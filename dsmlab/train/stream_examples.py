"""Training examples as streams: several utterances (each its own voice) with silences of
varied length between them, longer than the LM's context, often cut from the middle.

Why (measured on the bundle of 9bc8de1, whose LMs learned from single sentences followed by
1.78 s of silence): fed a stream, they wrote the first sentence or two and then nothing. One
sentence after 4 s of silence got 100% WER (22% alone); after 2 s, 32%. A model that has only
ever seen speech in the first seconds of an example has learnt that nothing comes later. Here
every example runs past the context (so the attention window slides, as it does on a live
stream after `context` frames), speech comes after silences of every length, and most
examples start mid-stream, with no initial token in view after the first `context` frames.

An example is built from the per-utterance codes of `codes.Example` (the utterance and TAIL_S
of silence): utterance k's frames up to its end, then the gap's frames (its silent tail, cut
or extended by repeating its last, silent, frame), word times shifted by each piece's offset.
The Mimi encoder is causal and short-sighted (its transformer sees 2 s), so codes joined this
way are close to the codes of the joined audio; the evaluation (`eval.longform`) streams real
joined audio.
"""

from __future__ import annotations

import math

import torch

from ..audio import FRAME_RATE
from .codes import TAIL_S, Example

FRAMES = 300  # per example: 24 s, past the bundled LM's context of 200 frames (16 s)
GAPS_S = (0.1, 8.0)  # silence added between utterances, log-uniform (beside their own)
FROM_START = 0.25  # share of examples that begin where a stream begins (the initial token)
TAIL_FRAMES = math.ceil(TAIL_S * FRAME_RATE)  # codes.Example's silent tail, in frames


def stream_frames_for(model) -> int:
    """Frames of a training stream: half as long again as the LM's context, so the attention
    window slides in every example (300 for the bundled models' 200)."""
    return model.lm.context * 3 // 2


def stream_example(
    examples: list[Example],
    frames: int,
    generator: torch.Generator,
    replay: list[Example] | None = None,
    replay_share: float = 0.0,
) -> Example:
    """One example of `frames` + 1 code frames (LMGen drops frame 0), drawn with `generator`.
    With `replay`, each utterance comes from it with probability `replay_share` (fine-tuning
    keeps hearing what the model first learned from)."""
    from_start = torch.rand((), generator=generator).item() < FROM_START
    pieces, word_ids, starts, ends, texts = [], [], [], [], []
    offset = 0
    skip = None  # frames cut from the front, drawn once the first utterance is known
    while offset < (skip or 0) + frames + 1:
        pool = examples
        if replay and torch.rand((), generator=generator).item() < replay_share:
            pool = replay
        e = pool[int(torch.randint(len(pool), (), generator=generator))]
        speech = e.codes.shape[1] - TAIL_FRAMES
        low, high = (math.log(g * FRAME_RATE) for g in GAPS_S)
        gap = round(math.exp(low + (high - low) * torch.rand((), generator=generator).item()))
        piece = e.codes[:, : speech + gap]
        if piece.shape[1] < speech + gap:  # a longer silence: repeat the last, silent, frame
            extra = speech + gap - piece.shape[1]
            piece = torch.cat([piece, piece[:, -1:].expand(-1, extra)], dim=1)
        if skip is None:
            skip = 0 if from_start else int(torch.randint(speech, (), generator=generator))
        pieces.append(piece)
        shift = offset / FRAME_RATE
        word_ids += e.word_ids
        starts += [s + shift for s in e.starts]
        ends += [s + shift for s in e.ends]
        texts.append(e.text)
        offset += piece.shape[1]
    stream = Example(torch.cat(pieces, dim=1), word_ids, starts, ends, " ".join(texts))
    return stream.window(skip, frames)
