"""Give a trained model semantic-VAD heads: a per-frame end-of-turn probability that tells a
pause in an unfinished sentence from the end of a turn.

    python -m dsmlab.train.vad_heads --model runs/recipe/models/synth-d16 \\
        --corpus runs/recipe/corpus

Kyutai's `-candle` checkpoints carry 4 linear heads of 6 classes on the transformer output
(`extra_heads.N.weight`) and read head 2, class 0 as P(end of turn); their training recipe is
not published. Here head 2 learns from conversations built from the training split
(`dsmlab.conversations`: turns of one to three sentences between two voices, pauses of 0.3 to
2 s inside unfinished sentences and between a turn's sentences), first with the LM (`tune_lm`,
`--tune-lm` steps; 0 keeps it frozen), then alone on the tuned LM's outputs. Each step is
labelled by what the moment turns out to be:

- class 0, end of turn: from a turn's last word until the other speaker starts;
- class 1, speaking: inside a sentence's words, and before the conversation's first word;
- class 2, unfinished: a pause inside a sentence (after a filler too);
- class 3, finished: a pause between two sentences of one turn.

Classes 4 and 5 are not used, and heads 0, 1 and 3 are written as zeros (uniform), only so the
layout matches Kyutai's (what they hold in Kyutai's checkpoints is not published). Two pause
classes rather than one "not the end": P(end of turn) is class 0 either way, and the others
say what the head takes a silence for. Features come from the teacher-forced pass over the
conversation's codes from the model's own Mimi (with the one-frame audio shift of
dsmlab.train.lm), so step t of training is step t of streaming inference.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import sys
from pathlib import Path

import torch
from moshi.utils.compile import no_compile
from tqdm import tqdm

from .. import conversations
from ..audio import FRAME_RATE, FRAME_SIZE, SAMPLE_RATE
from ..checkpoint import write_checkpoint
from ..cli import ArgumentParser, non_negative_int, positive_int, run_cli
from ..conditioning import condition_tensors
from ..conversations import Conversation
from ..data import load_data
from ..errors import DSMLabError
from ..loading import load
from ..model import DSMModel
from ..vad import END_OF_TURN_HEAD
from . import lora
from .codes import Example, Speller, encode_by_length
from .lm import batch_codes, teacher_forced, text_divergence

NUM_HEADS, HEAD_DIM = 4, 6  # Kyutai's layout
END_OF_TURN, SPEAKING, UNFINISHED, FINISHED = 0, 1, 2, 3  # classes of head END_OF_TURN_HEAD
CLASS_NAMES = {
    END_OF_TURN: conversations.END_OF_TURN,
    SPEAKING: "speaking",
    UNFINISHED: conversations.UNFINISHED,
    FINISHED: conversations.FINISHED,
}
# a pause after a filler is one inside an unfinished sentence: the same class
CLASS_OF_PAUSE = {name: label for label, name in CLASS_NAMES.items()}
CLASS_OF_PAUSE[conversations.HESITATION] = UNFINISHED
TURNS, SENTENCES = 6, 3  # per conversation, per turn (at most)
TURN_GAPS_S = (0.8, 1.5, 2.5, 4.0)
PAUSES_S = (0.3, 0.6, 1.0, 1.5, 2.0)
TUNE_STEPS = 500  # the recipe's
IGNORED = -100  # label of steps past a conversation's end
TUNE_FRAMES, TUNE_RANK, TUNE_SCALING, TUNE_LR = 300, 16, 2.0, 2e-3  # joint LM tuning (LoRA)
TEXT_WEIGHT = 10.0  # of the text divergence from the base LM, against the head's loss
REPORT_NAME = "vad_report.json"  # beside the weights; its presence marks the heads trained


def frame_labels(conversation: Conversation, n_frames: int) -> torch.Tensor:
    """Class of each step: by the boundary whose silence holds the frame's start, SPEAKING
    where none does."""
    labels = torch.full((n_frames,), SPEAKING)
    starts = torch.arange(n_frames) / FRAME_RATE
    for b in conversation.boundaries:
        inside = (starts >= b.time) & (starts < b.time + b.pause_s)
        labels[inside] = CLASS_OF_PAUSE[b.kind]
    return labels


def corpus_conversations(corpus: Path, split: str, limit: int, seed: int) -> list[Conversation]:
    """Conversations built from the first `limit` rows of a corpus split."""
    data = load_data(str(corpus), split=split, max_samples=limit)
    usable = [u for u in data if u.audio is not None and u.words]
    if not usable:
        raise DSMLabError(f"{corpus} ({split}): no row with audio and word times")
    rng = random.Random(seed)
    count = max(1, round(len(usable) / (TURNS * (SENTENCES + 1) / 2)))  # each row about once
    plans = conversations.plan_turns(usable, count, TURNS, SENTENCES, rng)
    return [
        conversations.build_conversation(p, SAMPLE_RATE, TURN_GAPS_S, PAUSES_S, rng) for p in plans
    ]


@torch.no_grad()
def conversation_examples(model: DSMModel, talks: list[Conversation]) -> list[Example]:
    """Each conversation as the LM's training data: its codes from the model's own Mimi,
    encoded frame by frame, and its words' tokens and times."""
    pcms = [torch.from_numpy(c.audio) for c in talks]
    pcms = [torch.nn.functional.pad(p, (0, -len(p) % FRAME_SIZE)) for p in pcms]
    codes = encode_by_length(model.mimi, [len(p) for p in pcms], pcms.__getitem__, "codes")
    spell = Speller(model.tokenizer)
    return [
        Example.of_words(c, talk.words, spell, "") for c, talk in zip(codes, talks, strict=True)
    ]


@torch.no_grad()
def features(
    model: DSMModel,
    talks: list[Conversation],
    examples: list[Example] | None = None,
    batch_size: int = 8,
):
    """(transformer outputs [N, dim], labels [N]) over every step of the conversations."""
    delay_frames = round(model.delay_s * FRAME_RATE)
    examples = examples or conversation_examples(model, talks)
    xs, ys = [], []
    with no_compile():
        for first in range(0, len(examples), batch_size):
            chunk = examples[first : first + batch_size]
            # a delay-conditioned model's heads are fit at the delay it runs at (its default)
            out, _ = teacher_forced(
                model.lm, batch_codes(chunk, delay_frames), model.condition_tensors(len(chunk))
            )
            for i, example in enumerate(chunk):
                steps = example.codes.shape[1] - 1  # this one's steps, without batch padding
                xs.append(out[i, :steps])
                ys.append(frame_labels(talks[first + i], steps))
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


def tune_lm(
    model: DSMModel,
    talks: list[Conversation],
    examples: list[Example],
    steps: int,
    seed: int = 0,
    batch_size: int = 6,
) -> list[dict]:
    """Train the LM (LoRA adapters, merged at the end) jointly with an end-of-turn head on
    windows of the conversations, so that its output comes to carry what the head needs: an LM
    trained on whole sentences has no reason to tell an unfinished sentence from a finished
    one. Its text stays the base LM's: the text loss is the divergence from the frozen base's
    text distribution at every step (fit to the words themselves, 2000 sentences in
    conversations cost the default model 13 points of test WER in 500 steps). Returns the log."""
    lm = model.lm
    labels = [frame_labels(t, e.codes.shape[1] - 1) for t, e in zip(talks, examples, strict=True)]
    base = copy.deepcopy(lm).eval().requires_grad_(False)
    torch.manual_seed(seed)  # the adapters' and the head's initial weights
    lora.add_lora(lm, TUNE_RANK, TUNE_SCALING)
    head = torch.nn.Linear(lm.dim, HEAD_DIM, bias=False)
    trainable = [p for p in lm.parameters() if p.requires_grad] + list(head.parameters())
    optimizer = torch.optim.AdamW(trainable, lr=TUNE_LR, weight_decay=0.01, betas=(0.9, 0.95))
    generator = torch.Generator().manual_seed(seed)
    log = []
    with no_compile():
        for step in tqdm(range(1, steps + 1), desc=f"tune {model.name}", unit="step"):
            lm.train()
            picks = torch.randint(len(examples), (batch_size,), generator=generator).tolist()
            windows = [_window(examples[i], labels[i], generator) for i in picks]
            # a conditioned model at every delay it serves, each window at one of them
            delays_s = [model.delay_s] * batch_size
            conditions = None
            if model.delays_s:
                drawn = torch.randint(len(model.delays_s), (batch_size,), generator=generator)
                delays_s = [model.delays_s[i] for i in drawn.tolist()]
                with torch.no_grad():  # the conditioner is not trained: a constant input
                    conditions = condition_tensors(lm, delays_s)
            delays = [round(d * FRAME_RATE) for d in delays_s]
            codes = batch_codes([w[0] for w in windows], delays)
            with torch.no_grad():
                _, target = teacher_forced(base, codes, conditions)
            out, logits = teacher_forced(lm, codes, conditions)
            text = text_divergence(logits, target)
            targets = torch.nn.utils.rnn.pad_sequence(
                [w[1] for w in windows], batch_first=True, padding_value=IGNORED
            )  # a conversation shorter than the window: its padded steps are not labelled
            turn = torch.nn.functional.cross_entropy(
                head(out.float()).flatten(0, 1), targets.flatten(), ignore_index=IGNORED
            )
            optimizer.zero_grad()
            (TEXT_WEIGHT * text + turn).backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            if step == 1 or step % 50 == 0:
                entry = {"step": step, "text_divergence": text.item(), "turn_loss": turn.item()}
                log.append({k: round(v, 4) for k, v in entry.items()})
    lm.eval()
    lora.merge(lm)
    return log


def _window(example: Example, labels: torch.Tensor, generator: torch.Generator):
    """A TUNE_FRAMES-step window of a conversation at a random start: (Example, labels)."""
    steps = min(TUNE_FRAMES, len(labels))
    skip = int(torch.randint(len(labels) - steps + 1, (), generator=generator))
    return example.window(skip, steps), labels[skip : skip + steps]


def held_out_report(x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor) -> dict:
    """Per class of step: how many, the mean P(end of turn), and the share of steps at which
    P(end of turn) >= 0.5 (for a pause, a false trigger; for an end of turn, a detection)."""
    p_end = torch.softmax(x @ weight.T, dim=1)[:, END_OF_TURN]
    report = {}
    for label, name in CLASS_NAMES.items():
        mine = p_end[y == label]
        if len(mine):
            report[name] = {
                "steps": len(mine),
                "mean_p_end": round(float(mine.mean()), 3),
                "share_p_end_over_half": round(float((mine >= 0.5).float().mean()), 3),
            }
    return report


def add_vad_heads(
    model_dir: Path,
    corpus: Path,
    limit: int = 2000,
    seed: int = 0,
    held_out: int = 200,
    tune_steps: int = TUNE_STEPS,
) -> dict:
    """Fit head 2 of `model_dir`'s checkpoint on conversations of `limit` training rows, write
    the 4 heads into its weights, and return its report on conversations of the validation
    split (also written as `vad_report.json` beside the weights)."""
    if not (model_dir / "model.safetensors").is_file():
        raise DSMLabError(f"{model_dir}: no model.safetensors; train one with dsmlab.train")
    model = load(str(model_dir), device="cpu")
    model.lm.eval()
    talks = corpus_conversations(corpus, "train", limit, seed)
    examples = conversation_examples(model, talks)  # Mimi is not tuned: encoded once
    tuning = tune_lm(model, talks, examples, tune_steps, seed) if tune_steps else []
    x, y = features(model, talks, examples)
    dim = x.shape[1]
    fitted = fit_head(x, y, seed=seed)
    heads = torch.nn.ModuleList(
        torch.nn.Linear(dim, HEAD_DIM, bias=False) for _ in range(NUM_HEADS)
    )
    with torch.no_grad():
        for n, head in enumerate(heads):
            head.weight.copy_(fitted if n == END_OF_TURN_HEAD else torch.zeros(HEAD_DIM, dim))
    held = corpus_conversations(corpus, "validation", held_out, seed)
    held_x, held_y = features(model, held)
    model.lm.extra_heads = heads
    report = {
        "train_steps": len(y),
        "lm_tuning": {"steps": tune_steps, "log": tuning} if tune_steps else None,
        "class_shares": {
            CLASS_NAMES[c]: round(float((y == c).float().mean()), 3) for c in CLASS_NAMES
        },
        "training": held_out_report(x, y, fitted),
        "validation_conversations": held_out_report(held_x, held_y, fitted),
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
    parser.add_argument("--corpus", type=Path, required=True, help="made by dsmlab.train.corpus")
    parser.add_argument("--utterances", type=positive_int, default=2000, help="training rows used")
    parser.add_argument(
        "--tune-lm",
        type=non_negative_int,
        default=TUNE_STEPS,
        help="steps of LM tuning with the head (0: the LM stays frozen)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    def body() -> int:
        report = add_vad_heads(
            args.model, args.corpus, args.utterances, args.seed, tune_steps=args.tune_lm
        )
        print(json.dumps(report, indent=2))
        return 0

    return run_cli(body, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
