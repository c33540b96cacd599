"""Train a small DSM-ASR model on the synthetic corpus, with the text stream N frames late.

    python -m dsmlab.train.lm --corpus runs/synth8k --delay-frames 8 --out runs/synth-d8

The audio tokenizer (a small Mimi whose codebooks are fit by k-means on the corpus) is built
once into --audio-tokenizer and shared by every delay; the corpus codes are cached there.
The text stream is built from word timings as moshi-finetune's interleaver does: a word's
tokens from frame round(start * FRAME_RATE) + N, token 0 on the frame before, padding (3)
elsewhere. Seeded; logs loss and validation WER as it goes.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sentencepiece
import torch
from moshi.models.loaders import get_moshi_lm
from moshi.utils.compile import no_compile

from ..architectures import ARCHITECTURES, sentencepiece_model
from ..audio import FRAME_RATE, FRAME_SIZE, SAMPLE_RATE
from ..checkpoint import lm_kwargs, write_checkpoint
from ..cli import ArgumentParser, run_cli
from ..model import DSMModel
from ..normalizers import get_normalizer
from ..scoring import error_rates
from ..timing import END_OF_PADDING_ID, PADDING_ID
from ..transcribe import iter_transcripts
from .audio_tokenizer import audio_tokenizer, row_pcm, split_rows, streaming_encode
from .corpus import vocabulary

PADDING_WEIGHT = 0.5  # loss weight of padding tokens, as moshi-finetune's default
# Share of input word tokens replaced by random words. With the true previous words as
# input, a small model memorises training sentences instead of listening (validation WER
# stayed above 90% while training loss fell to 0.01); corrupting the input forbids that.
TEXT_INPUT_NOISE = 0.5
AUDIO_CODE_NOISE = 0.1  # share of input audio codes replaced by random codes (augmentation)
TAIL_S = 1.28 + 0.5  # silence after each utterance: the longest delay plus Kyutai's margin

SMALL_LM = ARCHITECTURES["tiny"] | {
    "card": 256,
    "n_q": 8,
    "delays": [0] * 9,
    "dim": 128,
    "num_heads": 4,
    "num_layers": 4,
    "context": 200,
}


@dataclass
class Example:
    codes: torch.Tensor  # [n_q, T] Mimi codes of the utterance and TAIL_S of silence
    word_ids: list[list[int]]
    starts: list[float]
    text: str


def text_stream(
    word_ids: list[list[int]],
    starts: list[float],
    n_frames: int,
    delay_frames: int,
    frame_rate: float = FRAME_RATE,
) -> list[int]:
    """The text token of each frame: each word from frame round(start * rate) + delay (or
    right after the previous word if it is still being written), token 0 on the frame before
    it when that frame is padding, padding elsewhere. Tokens past `n_frames` are dropped."""
    tokens = [PADDING_ID] * n_frames
    free = 0
    for ids, start in zip(word_ids, starts, strict=True):
        first = max(round(start * frame_rate) + delay_frames, free)
        if 0 < first <= n_frames and tokens[first - 1] == PADDING_ID:
            tokens[first - 1] = END_OF_PADDING_ID
        for k, token in enumerate(ids):
            if first + k < n_frames:
                tokens[first + k] = token
        free = first + len(ids)
    return tokens


def word_tokenizer(seed: int = 0) -> bytes:
    """A sentencepiece word model over the corpus vocabulary: one piece per word."""
    words = vocabulary()
    rng = random.Random(seed)
    lines = [" ".join(rng.sample(words, 12)) for _ in range(200 * len(words) // 12)]
    return sentencepiece_model(lines, len(words) + 4, "word")


@torch.no_grad()
def encode_split(mimi, corpus: Path, split: str, cache: Path, tokenizer) -> list[Example]:
    """Mimi codes of every utterance of a split (cached next to the audio tokenizer)."""
    rows = split_rows(corpus, split)
    path = cache / f"codes-{split}-{rows._fingerprint}.pt"
    if path.is_file():
        codes = torch.load(path)
    else:
        pcms = []
        for row in rows:
            pcm = torch.nn.functional.pad(row_pcm(row), (0, round(TAIL_S * SAMPLE_RATE)))
            pcms.append(torch.nn.functional.pad(pcm, (0, -len(pcm) % FRAME_SIZE)))
        codes = [None] * len(pcms)
        order = sorted(range(len(pcms)), key=lambda i: len(pcms[i]))
        for chunk in (order[i : i + 64] for i in range(0, len(order), 64)):
            codes_chunk = streaming_encode(mimi, [pcms[i] for i in chunk])
            for i, c in zip(chunk, codes_chunk, strict=True):
                codes[i] = c.to(torch.int16)
        torch.save(codes, path)
    return [
        Example(
            c.long(),
            [tokenizer.encode(w["word"]) for w in row["words"]],
            [w["start"] for w in row["words"]],
            row["text"],
        )
        for c, row in zip(codes, rows, strict=True)
    ]


def word_separation(
    train_set: list[Example], valid_set: list[Example], card: int, frames: int = 4
) -> float:
    """How well tokens separate words: a validation word is given the training word whose
    mean bag of codes (all codebooks, its first `frames` frames) is nearest (cosine);
    returns the accuracy. Chance is 1 / vocabulary."""

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

    train_labels, train_bags = bags(train_set)
    valid_labels, valid_bags = bags(valid_set)
    words = sorted(set(train_labels))
    index = torch.tensor([words.index(w) for w in train_labels])
    centroids = torch.zeros(len(words), train_bags.shape[1]).index_add_(0, index, train_bags)
    centroids = centroids / centroids.norm(dim=1, keepdim=True).clamp(min=1e-9)
    predicted = (valid_bags @ centroids.T).argmax(dim=1)
    return float(
        np.mean([words[p] == w for p, w in zip(predicted.tolist(), valid_labels, strict=True)])
    )


def batch_codes(examples: list[Example], delay_frames: int) -> torch.Tensor:
    """[B, 1 + n_q, T - 1] training codes. LMGen drops audio frame 0 and sees frame t at step
    t, while LMModel.forward predicts text t from position t - 1: so audio is shifted by one
    frame, and the model sees in training exactly what it sees at inference."""
    length = max(e.codes.shape[1] for e in examples)
    rows = []
    for e in examples:
        stream = torch.tensor(text_stream(e.word_ids, e.starts, length, delay_frames))
        audio = e.codes
        if audio.shape[1] < length:  # more trailing silence: repeat the last (silent) frame
            audio = torch.cat([audio, audio[:, -1:].expand(-1, length - audio.shape[1])], 1)
        rows.append(torch.cat([stream[None, : length - 1], audio[:, 1:]], dim=0))
    return torch.stack(rows)


def teacher_forced(lm, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Transformer outputs [B, T, dim] and text logits [B, T, text_card] for each position of
    `codes` ([B, 1 + n_q, T]), as LMModel.forward computes them (the initial token first, all
    delays 0) without its depformer part, which a dep_q = 0 STT model does not have."""
    initial = lm._get_initial_token().expand(codes.shape[0], -1, -1)
    out, logits = lm.forward_text(torch.cat([initial, codes[:, :, :-1]], dim=2))
    return out, logits[:, 0]


def corrupt_inputs(codes: torch.Tensor, vocab: int, card: int, generator) -> torch.Tensor:
    """A copy of `codes` for the input side only (targets stay clean): word tokens (ids > 3)
    replaced by random words with probability TEXT_INPUT_NOISE, audio codes by random codes
    with probability AUDIO_CODE_NOISE."""
    text, audio = codes[:, 0], codes[:, 1:]
    swap = (text > PADDING_ID) & (torch.rand(text.shape, generator=generator) < TEXT_INPUT_NOISE)
    noisy = codes.clone()
    noisy[:, 0] = torch.where(
        swap, torch.randint(PADDING_ID + 1, vocab, text.shape, generator=generator), text
    )
    flip = torch.rand(audio.shape, generator=generator) < AUDIO_CODE_NOISE
    noisy[:, 1:] = torch.where(flip, torch.randint(card, audio.shape, generator=generator), audio)
    return noisy


def train(
    corpus: Path,
    out: Path,
    delay_frames: int,
    audio_dir: Path,
    steps: int = 2000,
    batch_size: int = 32,
    lr: float = 2e-3,
    seed: int = 0,
    device: str = "cpu",
    log_every: int = 50,
    eval_every: int = 500,
    encoder_steps: int = 400,
) -> Path:
    """Train one model and write it to `out` (HF layout); see the module docstring."""
    torch.manual_seed(seed)
    tokenizer_bytes = word_tokenizer(seed)
    tokenizer = sentencepiece.SentencePieceProcessor(model_proto=tokenizer_bytes)
    mimi = audio_tokenizer(audio_dir, corpus, seed, encoder_steps)
    train_set = encode_split(mimi, corpus, "train", audio_dir, tokenizer)
    valid_rows = split_rows(corpus, "validation")
    valid_items = validation_items(valid_rows)  # decoded once, scored at every evaluation
    report = audio_dir / "tokenizer_report.json"
    if not report.is_file():
        valid_set = encode_split(mimi, corpus, "validation", audio_dir, tokenizer)
        separation = word_separation(train_set, valid_set, mimi.cardinality)
        report.write_text(
            json.dumps(
                {"word_separation_accuracy": separation, "chance": 1 / len(vocabulary())}, indent=2
            )
        )
    config = SMALL_LM | {
        "text_card": tokenizer.get_piece_size(),
        "stt_config": {
            "audio_delay_seconds": delay_frames / FRAME_RATE,
            "audio_silence_prefix_seconds": 0.0,
        },
    }
    lm = get_moshi_lm(None, lm_kwargs=lm_kwargs(config), device=device, dtype=torch.float32)
    model = DSMModel.from_parts(
        config,
        mimi.to(device),
        lm.train(),
        tokenizer,
        name=out.name,
        source=str(out),
        mimi_config=json.loads((audio_dir / "mimi_config.json").read_text()),
    )
    optimizer = torch.optim.AdamW(lm.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.95))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / 100) * 0.5 * (1 + math.cos(math.pi * s / steps))
    )
    weights = torch.ones(tokenizer.get_piece_size(), device=device)
    weights[PADDING_ID] = PADDING_WEIGHT
    order = torch.Generator().manual_seed(seed)
    log = []
    start = time.perf_counter()
    with no_compile():
        for step in range(1, steps + 1):
            picks = torch.randint(len(train_set), (batch_size,), generator=order).tolist()
            codes = batch_codes([train_set[i] for i in picks], delay_frames)
            noisy = corrupt_inputs(codes, tokenizer.get_piece_size(), mimi.cardinality, order)
            codes, noisy = codes.to(device), noisy.to(device)
            _, logits = teacher_forced(lm, noisy)
            loss = torch.nn.functional.cross_entropy(
                logits.flatten(0, 1), codes[:, 0].flatten(), weight=weights
            )
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(lm.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            entry = {
                "step": step,
                "loss": round(loss.item(), 4),
                "elapsed_s": round(time.perf_counter() - start, 1),
            }
            if step % eval_every == 0 or step == steps:
                entry["validation_wer"] = validation_wer(model, valid_items)
                lm.train()
            if step % log_every == 0 or "validation_wer" in entry:
                print(json.dumps(entry), flush=True)
                log.append(entry)
    lm.eval()
    return write_checkpoint(model, out, reports={"training_log.json": log})


def validation_items(rows, limit: int = 60) -> list[tuple[str, torch.Tensor]]:
    """(reference text, 24 kHz audio) of the first `limit` validation utterances."""
    return [(rows[i]["text"], row_pcm(rows[i])) for i in range(min(limit, len(rows)))]


def validation_wer(model: DSMModel, items: list[tuple[str, torch.Tensor]]) -> float:
    """Corpus WER of greedy decoding on the validation items."""
    model.lm.eval()
    normalize = get_normalizer("whisper", "en")
    audio = [(i, pcm) for i, (_, pcm) in enumerate(items)]
    pairs = [
        (normalize(items[i][0]), normalize(t.text)) for i, t in iter_transcripts(model, audio, 16)
    ]
    references, hypotheses = zip(*pairs, strict=True)
    return round(error_rates(references, hypotheses)["wer"], 4)


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(
        prog="python -m dsmlab.train.lm",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--corpus", type=Path, required=True, help="made by dsmlab.synth")
    parser.add_argument("--delay-frames", type=int, required=True, help="text delay, frames")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--audio-tokenizer", type=Path, default=Path("runs/audio-tokenizer"))
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument(
        "--encoder-steps",
        type=int,
        default=400,
        help="audio tokenizer: encoder training steps (when it is built)",
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    options = {
        k: getattr(args, k)
        for k in (
            "steps",
            "batch_size",
            "lr",
            "seed",
            "device",
            "log_every",
            "eval_every",
            "encoder_steps",
        )
    }

    def body() -> int:
        print(train(args.corpus, args.out, args.delay_frames, args.audio_tokenizer, **options))
        return 0

    return run_cli(body, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
