"""Give a trained model semantic-VAD heads: end-of-turn probability per frame, offline.

    python -m dsmlab.train.vad_heads --model runs/recipe/models/synth-d16 \\
        --corpus runs/recipe/corpus --tokenizer runs/recipe/tokenizer

Kyutai's `-candle` checkpoints carry 4 linear heads of 6 classes on the transformer output
(`extra_heads.N.weight`) and read head 2, class 0 as P(end of turn). Their training recipe is
not published. Here the LM stays frozen and head 2 alone is fit: class 0 on every step whose
frame starts after the utterance's last word ends (the speaker is done), class 1 before.
Heads 0, 1 and 3 are written as zeros (uniform), only so the layout matches Kyutai's. Features
come from the teacher-forced forward pass on the training codes (with the one-frame audio
shift of dsmlab.train.lm), so step t of training is step t of streaming inference.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from moshi.utils.compile import no_compile

from ..audio import FRAME_RATE, SAMPLE_RATE
from ..checkpoint import write_checkpoint
from ..cli import ArgumentParser, run_cli
from ..errors import DSMLabError
from ..loading import load
from ..model import DSMModel
from ..transcribe import transcribe_batch
from ..vad import END_OF_TURN_HEAD
from .audio_tokenizer import row_pcm, split_rows
from .codes import encode_split
from .lm import batch_codes, teacher_forced

NUM_HEADS, HEAD_DIM = 4, 6  # Kyutai's layout
END_OF_TURN, SPEAKING = 0, 1  # classes of head END_OF_TURN_HEAD
REPORT_NAME = "vad_report.json"  # beside the weights; its presence marks the heads trained


def end_of_turn_labels(last_end_s: float, n_frames: int) -> torch.Tensor:
    """Class of each step: END_OF_TURN once the frame starts at or after the last word's end."""
    starts = torch.arange(n_frames) / FRAME_RATE
    return torch.where(starts >= last_end_s, END_OF_TURN, SPEAKING)


@torch.no_grad()
def features(model: DSMModel, corpus: Path, tokenizer_dir: Path, limit: int, batch_size: int = 64):
    """(transformer outputs [N, dim], labels [N]) over every step of `limit` training rows."""
    delay_frames = round(model.delay_s * FRAME_RATE)
    examples = encode_split(model.mimi, corpus, "train", tokenizer_dir, model.tokenizer)[:limit]
    xs, ys = [], []
    with no_compile():
        for first in range(0, len(examples), batch_size):
            chunk = examples[first : first + batch_size]
            codes = batch_codes(chunk, delay_frames)
            # a delay-conditioned model's heads are fit at the delay it runs at (its default)
            out, _ = teacher_forced(model.lm, codes, model.condition_tensors(len(chunk)))
            for i, example in enumerate(chunk):
                steps = example.codes.shape[1] - 1  # this row's steps, without batch padding
                last_end = example.ends[-1]
                xs.append(out[i, :steps])
                ys.append(end_of_turn_labels(last_end, steps))
    return torch.cat(xs), torch.cat(ys)


def fit_head(x: torch.Tensor, y: torch.Tensor, steps: int = 400, seed: int = 0) -> torch.Tensor:
    """[HEAD_DIM, dim] weights of a linear softmax classifier (no bias, as moshi's heads)."""
    torch.manual_seed(seed)
    head = torch.nn.Linear(x.shape[1], HEAD_DIM, bias=False)
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-2)
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(head(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return head.weight.detach()


def detection_report(model: DSMModel, corpus: Path) -> list[dict]:
    """End-of-turn events on the held-out test split, for a grid of detector settings: how
    long after the last word the detector fires, and how often it fires too early or never."""
    rows = split_rows(corpus, "test")
    transcripts = transcribe_batch(
        model, [row_pcm(r) for r in rows], [SAMPLE_RATE] * len(rows), batch_size=16
    )
    report = []
    for threshold in (0.5, 0.7, 0.9):
        for hold in (1, 2, 3):
            delays, early = [], 0
            for row, transcript in zip(rows, transcripts, strict=True):
                last_end = row["words"][-1]["end"]
                fired = transcript.end_of_turn_times(threshold, hold)
                early += any(t < last_end for t in fired)
                delays += [t - last_end for t in fired if t >= last_end][:1]
            report.append(
                {
                    "threshold": threshold,
                    "hold_frames": hold,
                    "median_delay_s": round(float(np.median(delays)), 3) if delays else None,
                    "p90_delay_s": round(float(np.percentile(delays, 90)), 3) if delays else None,
                    "fired_before_end": round(early / len(rows), 3),
                    "missed": round(1 - len(delays) / len(rows), 3),
                }
            )
    return report


def add_vad_heads(
    model_dir: Path, corpus: Path, tokenizer_dir: Path, limit: int = 2000, seed: int = 0
) -> dict:
    """Fit head 2 of `model_dir`'s checkpoint, write the 4 heads into its weights, and return
    its report on the test split (also written as `vad_report.json` beside the weights)."""
    weights_path = model_dir / "model.safetensors"
    if not weights_path.is_file():
        raise DSMLabError(f"{model_dir}: no model.safetensors; train one with dsmlab.train")
    mimi_file = tokenizer_dir / "mimi.safetensors"
    if (
        not mimi_file.is_file()
        or mimi_file.read_bytes() != (model_dir / "mimi.safetensors").read_bytes()
    ):
        raise DSMLabError(
            f"{tokenizer_dir} is not the audio tokenizer of {model_dir}; pass the --tokenizer "
            "the model was trained with (its cached codes are reused)"
        )
    model = load(str(model_dir), device="cpu")
    model.lm.eval()
    x, y = features(model, corpus, tokenizer_dir, limit)
    dim = x.shape[1]
    heads = torch.nn.ModuleList(
        torch.nn.Linear(dim, HEAD_DIM, bias=False) for _ in range(NUM_HEADS)
    )
    fitted = fit_head(x, y, seed=seed)
    with torch.no_grad():
        for n, head in enumerate(heads):
            head.weight.copy_(fitted if n == END_OF_TURN_HEAD else torch.zeros(HEAD_DIM, dim))
    model.lm.extra_heads = heads
    report = {
        "train_steps": len(y),
        "end_of_turn_share": round(float((y == END_OF_TURN).float().mean()), 3),
        "test_split": detection_report(model, corpus),
    }
    write_checkpoint(model, model_dir, reports={REPORT_NAME: report})
    return report


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(
        prog="python -m dsmlab.train.vad_heads",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", type=Path, required=True, help="a model dir from dsmlab.train")
    parser.add_argument("--corpus", type=Path, required=True, help="made by dsmlab.synth")
    parser.add_argument("--tokenizer", type=Path, required=True, help="the model's audio tokenizer")
    parser.add_argument("--utterances", type=int, default=2000, help="training rows used")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    def body() -> int:
        report = add_vad_heads(args.model, args.corpus, args.tokenizer, args.utterances, args.seed)
        print(json.dumps(report, indent=2))
        return 0

    return run_cli(body, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
