"""Train a small DSM-ASR model at a chosen delay: the text stream N frames after the audio.

    python -m dsmlab.train.lm --corpus runs/recipe/corpus --tokenizer runs/recipe/tokenizer \
        --delay-frames 8 --out runs/recipe/models/synth-d8

Given several delays (`--delay-frames 2 4 8 16`), one delay-conditioned model learns them all:
each example draws one, and the model is told which through moshi's conditioner
(`dsmlab.conditioning`); load it at a delay with `dsmlab.load("dir@0.64")`.

The text stream is built from word timings as moshi-finetune's interleaver does: a word's
tokens from frame round(start * FRAME_RATE) + N, token 0 on the frame before, padding (3)
elsewhere. Each example is a stream of several utterances, longer than the LM's context and
often cut from its middle (`stream_examples`: models trained on single sentences stopped
listening after one or two on a stream); `--stream-frames 0` trains on single utterances, as
the bundles before did. Seeded and resumable: every --save-every steps the training's state
goes to <out>/training.pt, and the same command continues from there, taking the very batches
an uninterrupted run takes. Logs loss and validation WER (training_log.json).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import sentencepiece
import torch
from moshi.models.loaders import get_moshi_lm
from moshi.utils.compile import no_compile
from tqdm import tqdm

from ..architectures import ARCHITECTURES
from ..audio import FRAME_RATE
from ..checkpoint import lm_kwargs, write_checkpoint
from ..cli import ArgumentParser, non_negative_int, positive_float, positive_int, run_cli
from ..conditioning import condition_tensors, delay_conditioner, delay_label
from ..model import DSMModel
from ..normalizers import get_normalizer
from ..scoring import error_rates
from ..timing import END_OF_PADDING_ID, PADDING_ID
from ..transcribe import iter_transcripts
from .audio_tokenizer import load_tokenizer, row_pcm, split_rows
from .codes import Example, encode_split, word_tokenizer
from .resumable import Checkpointed
from .schedule import warmup_cosine
from .stream_examples import FRAMES as STREAM_FRAMES
from .stream_examples import stream_example
from .workers import take_free_cores

PADDING_WEIGHT = 0.5  # loss weight of padding tokens, as moshi-finetune's default
# Share of input word tokens replaced by random words. With the true previous words as
# input, a small model memorises training sentences instead of listening; corrupting the
# input forbids that.
TEXT_INPUT_NOISE = 0.5
AUDIO_CODE_NOISE = 0.1  # share of input audio codes replaced by random codes (augmentation)
VALIDATION_UTTERANCES = 60
# per delay. At 4000, WER was level past 0.32 s; 8000 lowered 0.64 and 1.28 s by 4.7 points
# (paired, beyond noise) and 0.16 / 0.32 s within noise (README "The LM's steps, again").
STEPS = 8000
# Examples per step: single utterances (about 55 frames with their silent tail), or streams of
# STREAM_FRAMES + 1 frames: about the same frames per step either way.
UTTERANCE_BATCH, STREAM_BATCH = 32, 6

SMALL_LM = ARCHITECTURES["tiny"] | {
    "card": 256,
    "n_q": 8,
    "delays": [0] * 9,
    "dim": 128,
    "num_heads": 4,
    "num_layers": 4,
    "context": 200,
}


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


def batch_codes(examples: list[Example], delay_frames: int | list[int]) -> torch.Tensor:
    """[B, 1 + n_q, T - 1] training codes (one delay, or one per example). LMGen drops audio
    frame 0 and sees frame t at step t, while LMModel.forward predicts text t from position
    t - 1: so audio is shifted by one frame, and the model sees in training exactly what it
    sees at inference."""
    length = max(e.codes.shape[1] for e in examples)
    if isinstance(delay_frames, int):
        delay_frames = [delay_frames] * len(examples)
    rows = []
    for e, delay in zip(examples, delay_frames, strict=True):
        stream = torch.tensor(text_stream(e.word_ids, e.starts, length, delay))
        audio = e.codes
        if audio.shape[1] < length:  # more trailing silence: repeat the last (silent) frame
            audio = torch.cat([audio, audio[:, -1:].expand(-1, length - audio.shape[1])], 1)
        rows.append(torch.cat([stream[None, : length - 1], audio[:, 1:]], dim=0))
    return torch.stack(rows)


def teacher_forced(
    lm, codes: torch.Tensor, conditions: dict | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Transformer outputs [B, T, dim] and text logits [B, T, text_card] for each position of
    `codes` ([B, 1 + n_q, T]), as LMModel.forward computes them (the initial token first, all
    delays 0) without its depformer part, which a dep_q = 0 STT model does not have.
    `conditions`: moshi's condition tensors, as `LMGen` takes them (a conditioned model)."""
    initial = lm._get_initial_token().expand(codes.shape[0], -1, -1)
    added = lm.fuser.get_sum(conditions) if conditions else None  # as LMGen adds them
    out, logits = lm.forward_text(torch.cat([initial, codes[:, :, :-1]], dim=2), added)
    return out, logits[:, 0]


def training_codes(
    batch: list[Example],
    delay_frames: list[int],
    vocab: int,
    card: int,
    generator,
    audio_noise: float = AUDIO_CODE_NOISE,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(targets, inputs) of one batch: `batch_codes`, and a copy corrupted (`corrupt_inputs`)."""
    codes = batch_codes(batch, delay_frames)
    return codes, corrupt_inputs(codes, vocab, card, generator, audio_noise)


def text_divergence(logits: torch.Tensor, base_logits: torch.Tensor) -> torch.Tensor:
    """KL(base || tuned) of the text distributions ([B, T, card] logits each), the mean over
    positions: how far tuning moved what the LM writes."""
    return torch.nn.functional.kl_div(
        logits.float().log_softmax(-1).flatten(0, 1),
        base_logits.float().log_softmax(-1).flatten(0, 1),
        log_target=True,
        reduction="batchmean",
    )


def text_loss(
    lm,
    codes: torch.Tensor,
    noisy: torch.Tensor,
    conditions: dict | None,
    weights: torch.Tensor,
    total_weight: float | None = None,
) -> torch.Tensor:
    """Cross-entropy of the text stream of `codes` predicted from `noisy` (`training_codes`),
    padding weighted by `weights`, on the LM's device. The weighted sum is divided by
    `total_weight` (default: this batch's): the shares of a batch split across processes then
    sum to the whole batch's loss."""
    codes, noisy = codes.to(lm.device), noisy.to(lm.device)
    _, logits = teacher_forced(lm, noisy, conditions)
    targets = codes[:, 0].flatten()
    summed = torch.nn.functional.cross_entropy(
        logits.flatten(0, 1).float(), targets, weight=weights, reduction="sum"
    )
    return summed / (total_weight or weights[targets].sum())


def padding_weights(vocab: int, device) -> torch.Tensor:
    """Per-token loss weights: padding at PADDING_WEIGHT, as moshi-finetune weighs it."""
    weights = torch.ones(vocab, device=device)
    weights[PADDING_ID] = PADDING_WEIGHT
    return weights


def corrupt_inputs(
    codes: torch.Tensor, vocab: int, card: int, generator, audio_noise: float = AUDIO_CODE_NOISE
) -> torch.Tensor:
    """A copy of `codes` for the input side only (targets stay clean): word tokens (ids > 3)
    replaced by random words with probability TEXT_INPUT_NOISE, audio codes by random codes
    with probability `audio_noise`."""
    text, audio = codes[:, 0], codes[:, 1:]
    swap = (text > PADDING_ID) & (torch.rand(text.shape, generator=generator) < TEXT_INPUT_NOISE)
    noisy = codes.clone()
    noisy[:, 0] = torch.where(
        swap, torch.randint(PADDING_ID + 1, vocab, text.shape, generator=generator), text
    )
    flip = torch.rand(audio.shape, generator=generator) < audio_noise
    noisy[:, 1:] = torch.where(flip, torch.randint(card, audio.shape, generator=generator), audio)
    return noisy


def model_config(text_card: int, delays_frames: list[int], dim: int, num_layers: int) -> dict:
    """The LM's config.json: SMALL_LM at this width and depth (moshi's head count stays, so a
    wider model has wider heads), with the text vocabulary and the delay (frames, ascending).
    Several delays: a delay conditioner, and the longest as the delay `dsmlab.load` runs at."""
    several = len(delays_frames) > 1
    conditioner = delay_conditioner([d / FRAME_RATE for d in delays_frames]) if several else {}
    return (
        SMALL_LM
        | conditioner
        | {
            "dim": dim,
            "num_layers": num_layers,
            "text_card": text_card,
            "stt_config": {
                "audio_delay_seconds": delays_frames[-1] / FRAME_RATE,
                "audio_silence_prefix_seconds": 0.0,
            },
        }
    )


def train(
    corpus: Path,
    tokenizer_dir: Path,
    out: Path,
    delay_frames: int | list[int],
    steps: int = STEPS,
    batch_size: int | None = None,
    lr: float = 2e-3,
    seed: int = 0,
    device: str = "cpu",
    eval_every: int = 500,
    save_every: int = 100,
    dim: int = SMALL_LM["dim"],
    num_layers: int = SMALL_LM["num_layers"],
    stream_frames: int = STREAM_FRAMES,
) -> Path:
    """Train one model and write it to `out` (HF layout); see the module docstring.
    `stream_frames`: each example a stream of that many frames (`stream_examples`); 0: each
    example one utterance and its silent tail. `batch_size`: STREAM_BATCH or UTTERANCE_BATCH."""
    delays = [delay_frames] if isinstance(delay_frames, int) else sorted(set(delay_frames))
    batch_size = batch_size or (STREAM_BATCH if stream_frames else UTTERANCE_BATCH)
    torch.manual_seed(seed)
    tokenizer_bytes = word_tokenizer(seed)
    tokenizer = sentencepiece.SentencePieceProcessor(model_proto=tokenizer_bytes)
    mimi, mimi_config = load_tokenizer(tokenizer_dir)
    train_set = encode_split(mimi, corpus, "train", tokenizer_dir, tokenizer)
    valid_rows = split_rows(corpus, "validation")
    valid_items = [
        (valid_rows[i]["text"], row_pcm(valid_rows[i]))
        for i in range(min(VALIDATION_UTTERANCES, len(valid_rows)))
    ]
    config = model_config(tokenizer.get_piece_size(), delays, dim, num_layers)
    lm = get_moshi_lm(None, lm_kwargs=lm_kwargs(config), device=device, dtype=torch.float32)
    model = DSMModel.from_parts(
        config,
        mimi.to(device),
        lm.train(),
        tokenizer,
        name=out.name,
        source=str(out),
        mimi_config=mimi_config,
    )
    optimizer = torch.optim.AdamW(lm.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.95))
    schedule = warmup_cosine(optimizer, 100, steps)
    settings = {"delay_frames": delays, "stream_frames": stream_frames, "batch_size": batch_size}
    state = Checkpointed(out / "training.pt", seed, settings)
    modules = {"lm": lm, "optimizer": optimizer, "schedule": schedule}
    first, log = state.resume(modules)
    weights = padding_weights(tokenizer.get_piece_size(), device)
    with no_compile(), tqdm(total=steps, initial=first, desc=out.name, unit="step") as bar:
        for step in range(first + 1, steps + 1):
            take_free_cores()  # in a recipe's pool: every core once the other jobs are done
            order = torch.Generator().manual_seed(seed * 1_000_003 + step)
            if stream_frames:
                batch = [stream_example(train_set, stream_frames, order) for _ in range(batch_size)]
            else:
                picks = torch.randint(len(train_set), (batch_size,), generator=order).tolist()
                batch = [train_set[i] for i in picks]
            drawn = [delays[0]] * batch_size
            conditions = None
            if len(delays) > 1:  # a fixed-delay run draws nothing more: same batches as before
                drawn = [
                    delays[k] for k in torch.randint(len(delays), (batch_size,), generator=order)
                ]
                conditions = condition_tensors(lm, [d / FRAME_RATE for d in drawn])
            codes, noisy = training_codes(batch, drawn, len(weights), lm.card, order)
            loss = text_loss(lm, codes, noisy, conditions, weights)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(lm.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
            entry = {"step": step, "loss": round(loss.item(), 4)}
            if step % eval_every == 0 or step == steps:
                entry |= validation_entry(model, valid_items)
                bar.write(json.dumps(entry))
                lm.train()
            if step == 1 or step % 25 == 0 or "validation_wer" in entry:  # from the untrained loss
                log.append(entry)
            if step % save_every == 0 or step == steps:
                state.save(modules, step, log)
    lm.eval()
    return write_checkpoint(model, out, reports={"training_log.json": log})


def validation_entry(model: DSMModel, items: list[tuple[str, torch.Tensor]]) -> dict:
    """{"validation_wer": ...}; for a delay-conditioned model the mean over its delays, and
    each delay's in "validation_wer_by_delay"."""
    if not model.delays_s:
        return {"validation_wer": validation_wer(model, items)}
    by_delay = {delay_label(d): validation_wer(model.at_delay(d), items) for d in model.delays_s}
    mean = round(sum(by_delay.values()) / len(by_delay), 4)
    return {"validation_wer": mean, "validation_wer_by_delay": by_delay}


def validation_wer(model: DSMModel, items: list[tuple[str, torch.Tensor]]) -> float:
    """Corpus WER of greedy decoding on the validation items (Whisper's normalizer)."""
    model.lm.eval()
    normalize = get_normalizer("whisper", "en")
    audio = [(i, pcm) for i, (_, pcm) in enumerate(items)]
    transcripts = iter_transcripts(model, audio, 16)
    pairs = [(normalize(items[i][0]), normalize(t.text)) for i, t in transcripts]
    references, hypotheses = zip(*pairs, strict=True)
    return round(error_rates(references, hypotheses)["corpus_wer"], 4)


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m dsmlab.train.lm", description=__doc__)
    parser.add_argument("--corpus", type=Path, required=True, help="made by dsmlab.train.corpus")
    parser.add_argument(
        "--tokenizer", type=Path, required=True, help="made by dsmlab.train.audio_tokenizer"
    )
    parser.add_argument(
        "--delay-frames",
        type=non_negative_int,
        nargs="+",
        required=True,
        help="one delay, or several for one delay-conditioned model",
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=positive_int, default=STEPS)
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        help=f"examples per step (default: {STREAM_BATCH} streams, {UTTERANCE_BATCH} utterances)",
    )
    parser.add_argument(
        "--stream-frames",
        type=non_negative_int,
        default=STREAM_FRAMES,
        help="frames of each training stream (0: one utterance per example)",
    )
    parser.add_argument("--lr", type=positive_float, default=2e-3)
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--eval-every", type=positive_int, default=500)
    parser.add_argument("--save-every", type=positive_int, default=100)
    parser.add_argument("--dim", type=positive_int, default=SMALL_LM["dim"], help="LM width")
    parser.add_argument("--num-layers", type=positive_int, default=SMALL_LM["num_layers"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    options = (
        "steps",
        "batch_size",
        "lr",
        "seed",
        "device",
        "eval_every",
        "save_every",
        "dim",
        "num_layers",
        "stream_frames",
    )

    def body() -> int:
        kwargs = {k: getattr(args, k) for k in options}
        print(train(args.corpus, args.tokenizer, args.out, args.delay_frames, **kwargs))
        return 0

    return run_cli(body, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
