"""The LM's training data: each utterance as Mimi codes, with its words' tokens and start times.

Codes are computed frame by frame, as streaming inference computes them, over the utterance and
TAIL_S of silence after it, so the last word's tokens, written a delay later, are learned with
the audio the model will hear then. They are cached beside the audio tokenizer, one file per
corpus split (keyed by the split's fingerprint). A word the word tokenizer cannot spell (a
filler, "uh") gets no tokens rather than the unknown id, which is the end-of-padding mark
(`Speller`, which fine-tuning and the VAD round use too).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from moshi.models import MimiModel
from tqdm import tqdm

from ..architectures import sentencepiece_model
from ..audio import FRAME_RATE, FRAME_SIZE, SAMPLE_RATE
from ..normalizers import get_normalizer
from .audio_tokenizer import row_pcm, split_rows, streaming_encode
from .sentences import vocabulary

LONGEST_DELAY_S = 1.28
TAIL_S = LONGEST_DELAY_S + 0.5  # Kyutai's evaluation pads the delay + 0.5 s
ENCODE_BATCH = 64


@dataclass
class Example:
    codes: torch.Tensor  # [n_q, T] Mimi codes of the utterance and TAIL_S of silence
    word_ids: list[list[int]]
    starts: list[float]
    ends: list[float]
    text: str

    @classmethod
    def of_words(cls, codes: torch.Tensor, words: list[dict], spell: Speller, text: str) -> Example:
        """`codes` and timed `words` ({"word", "start", "end"} each), spelled by `spell`: the
        one way training data turns words into tokens, so none becomes the unknown id."""
        return cls(
            codes.long(),
            [spell(w["word"]) for w in words],
            [w["start"] for w in words],
            [w["end"] for w in words],
            text,
        )

    def window(self, skip: int, frames: int) -> Example:
        """Frames `skip` to `skip + frames` (frames + 1 code frames: LMGen drops frame 0) and
        the words that start inside them, their times shifted; a word begun before the cut is
        unheard."""
        cut = skip / FRAME_RATE
        kept = [k for k, start in enumerate(self.starts) if start >= cut]
        return Example(
            self.codes[:, skip : skip + frames + 1],
            [self.word_ids[k] for k in kept],
            [self.starts[k] - cut for k in kept],
            [self.ends[k] - cut for k in kept],
            self.text,
        )


class Speller:
    """A word's tokens in the model's tokenizer. A word it cannot spell (an unknown piece:
    "Peter." for a tokenizer of lower-case words) is written in its normalized form ("peter")
    if the tokenizer spells that; else its unknown pieces are dropped. An unknown id in the
    text stream would teach the model to write it (in moshi's tokenizers it is token 0, the
    end-of-padding mark). Counts both cases for the summary."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer, self.unknown = tokenizer, tokenizer.unk_id()
        self.normalize = get_normalizer("whisper", "en")
        self.respelled = self.unspellable = 0

    def __call__(self, word: str) -> list[int]:
        ids = self.tokenizer.encode(word)
        if self.unknown not in ids:
            return ids
        normalized = self.tokenizer.encode(self.normalize(word))
        if normalized and self.unknown not in normalized:
            self.respelled += 1
            return normalized
        self.unspellable += 1
        return [i for i in ids if i != self.unknown]

    def summary(self, what: str) -> str | None:
        """One line on the words it could not spell as they are, or None if there were none:
        a training run's fillers ("uh", "um") outside the grammar's tokenizer say so here."""
        if not (self.respelled or self.unspellable):
            return None
        return (
            f"{what}, words the tokenizer cannot spell: {self.unspellable} get no tokens, "
            f"{self.respelled} are written in their normalized form"
        )


def word_tokenizer(seed: int = 0) -> bytes:
    """A sentencepiece word model over the corpus vocabulary: one piece per word. Every letter
    is covered: at sentencepiece's default (99.95% of the characters) a rare letter's words fell
    out of the vocabulary at some seeds, and training refused the seed."""
    words = vocabulary()
    rng = random.Random(seed)
    lines = [" ".join(rng.sample(words, 12)) for _ in range(200 * len(words) // 12)]
    return sentencepiece_model(lines, len(words) + 4, "word", character_coverage=1.0)


@torch.no_grad()
def encode_split(
    mimi: MimiModel, corpus: Path, split: str, cache: Path, tokenizer, limit: int | None = None
) -> list[Example]:
    """Examples of a split's first `limit` rows (all by default), codes cached in `cache`."""
    rows = split_rows(corpus, split)
    if limit is not None:
        rows = rows.select(range(min(limit, len(rows))))
    path = cache / f"codes-{split}-{rows._fingerprint}.pt"
    if path.is_file():
        codes = torch.load(path)
    else:
        codes = _encode(mimi, rows, desc=f"codes of {split}")
        tmp = path.with_name(f".{path.name}.tmp")
        torch.save(codes, tmp)
        tmp.replace(path)
    spell = Speller(tokenizer)
    examples = [
        Example.of_words(c, row["words"], spell, row["text"])
        for c, row in zip(codes, rows, strict=True)
    ]
    if summary := spell.summary(split):
        tqdm.write(summary)
    return examples


def _encode(mimi: MimiModel, rows, desc: str) -> list[torch.Tensor]:
    """Codes of every row. The audio is decoded twice (once for the lengths) rather than held:
    20000 utterances at 24 kHz take 8 GB."""
    lengths = [len(tail_padded(row_pcm(row))) for row in rows]
    return encode_by_length(mimi, lengths, lambda i: tail_padded(row_pcm(rows[i])), desc)


def encode_by_length(
    mimi: MimiModel, lengths: list[int], pcm_of: Callable[[int], torch.Tensor], desc: str
) -> list[torch.Tensor]:
    """int16 codes (on the CPU) of inputs 0 .. n - 1, each `pcm_of(i)` of `lengths[i]` samples,
    encoded frame by frame in batches of similar length on Mimi's device."""
    device = next(mimi.parameters()).device
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    codes: list[torch.Tensor | None] = [None] * len(lengths)
    for first in tqdm(range(0, len(order), ENCODE_BATCH), desc=desc, unit="batch"):
        chunk = order[first : first + ENCODE_BATCH]
        pcms = [pcm_of(i).to(device) for i in chunk]
        for i, c in zip(chunk, streaming_encode(mimi, pcms), strict=True):
            codes[i] = c.cpu().to(torch.int16)
    return codes


def tail_padded(pcm: torch.Tensor) -> torch.Tensor:
    """The utterance, TAIL_S of silence, then up to a whole number of frames."""
    pcm = torch.nn.functional.pad(pcm, (0, round(TAIL_S * SAMPLE_RATE)))
    return torch.nn.functional.pad(pcm, (0, -len(pcm) % FRAME_SIZE))


def word_separation(
    reference: list[Example], probe: list[Example], card: int, frames: int = 4
) -> float:
    """How well codes separate words: a `probe` word is given the `reference` word whose mean
    bag of codes (all codebooks, the word's first `frames` frames) is nearest (cosine); returns
    the accuracy. Chance is 1 / vocabulary."""

    def bags(examples: list[Example]) -> tuple[list[int], torch.Tensor]:
        labels, rows = [], []
        for e in examples:
            for ids, start in zip(e.word_ids, e.starts, strict=True):
                first = round(start * FRAME_RATE) + 1  # codes hold frame 0, LMGen drops it
                segment = e.codes[:, first : first + frames]
                offsets = torch.arange(segment.shape[0])[:, None] * card
                rows.append(
                    torch.bincount(
                        (segment + offsets).flatten(), minlength=card * segment.shape[0]
                    ).float()
                )
                labels.append(ids[0])
        bag = torch.stack(rows)
        return labels, bag / bag.norm(dim=1, keepdim=True).clamp(min=1e-9)

    train_labels, train_bags = bags(reference)
    probe_labels, probe_bags = bags(probe)
    words = sorted(set(train_labels))
    index = torch.tensor([words.index(w) for w in train_labels])
    centroids = torch.zeros(len(words), train_bags.shape[1]).index_add_(0, index, train_bags)
    centroids = centroids / centroids.norm(dim=1, keepdim=True).clamp(min=1e-9)
    predicted = (probe_bags @ centroids.T).argmax(dim=1)
    return float(
        np.mean([words[p] == w for p, w in zip(predicted.tolist(), probe_labels, strict=True)])
    )
