"""The audio tokenizer of the trained models: a small Mimi whose encoder learns the phones.

Kyutai's Mimi learns its codes from a huge amount of speech; a small one trained for minutes on
a CPU does not. So the encoder is taught what the codes must carry: for every 20 ms, the phone
being spoken then (the synthesizers report each phone's start and end), on speech from many
voices, synthesizers and rooms. Its latents then follow the sounds of the words and hardly the
voice. espeak-ng names its phones its own way, flite and festival use the same radio phone
set: one head per phone set, on one shared encoder. The codebooks are fit by k-means on the
latents. The report gives the frame accuracy on held-out voices and synthesizers.

    python -m dsmlab.train.audio_tokenizer --corpus runs/recipe/corpus --out runs/recipe/tokenizer
"""

from __future__ import annotations

import copy
import json
import random
import sys
from pathlib import Path

import torch
from moshi.models import MimiModel
from moshi.models.loaders import get_mimi
from moshi.utils.compile import no_compile
from safetensors.torch import save_file
from tqdm import tqdm

from ..architectures import MIMI_CONFIG, fill_codebooks
from ..audio import FRAME_RATE, FRAME_SIZE, SAMPLE_RATE, load_audio
from ..cli import ArgumentParser, non_negative_int, positive_int, run_cli
from ..errors import DSMLabError
from .resumable import Checkpointed
from .schedule import warmup_cosine

LATENT = 64
SMALL_MIMI_CONFIG = {
    "sample_rate": SAMPLE_RATE,
    "channels": 1,
    "frame_rate": FRAME_RATE,
    "seanet": MIMI_CONFIG["seanet"] | {"dimension": LATENT, "n_filters": 8},
    "quantizer": {
        "dimension": 32,
        "n_q": 8,
        "bins": 256,
        "input_dimension": LATENT,
        "output_dimension": LATENT,
    },
    "transformer": MIMI_CONFIG["transformer"]
    | {
        "d_model": LATENT,
        "num_heads": 4,
        "num_layers": 2,
        "context": 50,  # 2 s at the encoder's 25 Hz
        "dim_feedforward": 2 * LATENT,
        "input_dimension": LATENT,
        "output_dimensions": [LATENT],
    },
}
QUANTIZER_UTTERANCES = 300  # whose latents the codebooks are fit on
# Phone accuracy on held-out voices nearly doubles from 800 to 1600 steps and the LM's WER
# follows (README, the tokenizer study); naming each phone a frame late adds about a point.
# 30-frame cuts make a step 2.5x cheaper than whole utterances, so 4000 steps cost what 1600
# did, and test phone accuracy rises from 47.7 to 68.7% (README, what limits the models).
STEPS = 4000
CROP_FRAMES = 30
PHONE_LAG = 1
REPORTED_SPLITS = ("validation", "test", "unseen-flite", "festival")
SUB_FRAMES = 4  # phone labels per 80 ms frame: one each 20 ms
SILENCE = 0  # the label of pauses and of time outside the speech
IGNORED = -100  # a label left out of the loss (cross_entropy's ignore_index)
CROP_WARMUP = 4  # frames at the start of a late cut whose phones are not learned


def phone_set(synthesizer: str) -> str:
    """espeak-ng's own phone names, or the radio phone set of flite and festival."""
    return "espeak" if synthesizer == "espeak-ng" else "radio"


def is_pause(phone: str) -> bool:
    return phone.startswith("_") or phone in ("pau", "h#")


def inventories(rows) -> dict[str, list[str]]:
    """Every phone set's phones (pauses aside) in `rows`, sorted: the heads' classes."""
    found: dict[str, set[str]] = {}
    for synthesizer, phones in zip(rows["synthesizer"], rows["phones"], strict=True):
        names = found.setdefault(phone_set(synthesizer), set())
        names.update(p["phone"] for p in phones if not is_pause(p["phone"]))
    return {name: sorted(phones) for name, phones in sorted(found.items())}


def phone_labels(
    phones: list[dict], frames: int, classes: dict[str, int], lag: int = 0
) -> torch.Tensor:
    """[frames * SUB_FRAMES] labels: the phone at the middle of each 20 ms, `lag` frames
    earlier (SILENCE in pauses, before the audio, and for a phone the inventory lacks)."""
    times = (torch.arange(frames * SUB_FRAMES) + 0.5) / (FRAME_RATE * SUB_FRAMES) - lag / FRAME_RATE
    labels = torch.full((len(times),), SILENCE)
    for p in phones:
        if not is_pause(p["phone"]) and p["phone"] in classes:
            labels[(times >= p["start"]) & (times < p["end"])] = classes[p["phone"]]
    return labels


class PhoneHeads(torch.nn.Module):
    """Latent [B, D, T] at 12.5 Hz -> for one phone set, logits [B, T * SUB_FRAMES, classes]."""

    def __init__(self, dim: int, sets: dict[str, list[str]]) -> None:
        super().__init__()
        self.heads = torch.nn.ModuleDict(
            {
                name: torch.nn.Linear(dim, SUB_FRAMES * (len(phones) + 1))
                for name, phones in sets.items()
            }
        )

    def forward(self, latent: torch.Tensor, name: str) -> torch.Tensor:
        logits = self.heads[name](latent.transpose(1, 2))
        b, t, _ = logits.shape
        return logits.reshape(b, t * SUB_FRAMES, -1)


def load_tokenizer(directory: Path) -> tuple[MimiModel, dict]:
    """The audio tokenizer built in `directory`, and its Mimi config."""
    files = [directory / "mimi.safetensors", directory / "mimi_config.json"]
    if not all(f.is_file() for f in files):
        raise DSMLabError(
            f"{directory}: no audio tokenizer; build one with "
            "python -m dsmlab.train.audio_tokenizer --out " + str(directory)
        )
    config = json.loads(files[1].read_text())
    return get_mimi(files[0], config, num_codebooks=config["quantizer"]["n_q"]), config


def new_mimi(seed: int) -> MimiModel:
    torch.manual_seed(seed)
    config = copy.deepcopy(SMALL_MIMI_CONFIG)
    return get_mimi(None, config, num_codebooks=config["quantizer"]["n_q"])


def build(
    corpus: Path,
    out: Path,
    steps: int = STEPS,
    batch_size: int = 16,
    seed: int = 0,
    lag: int = PHONE_LAG,
    crop: int = CROP_FRAMES,
) -> Path:
    """Train the encoder, fit the codebooks, write mimi.safetensors and mimi_config.json into
    `out` (with training.pt, the resumable state, and training_log.json). With `lag` > 0 the
    latent of frame t learns the phones of frame t - lag: the causal encoder then hears each
    phone's whole sound before naming it (the LM's delay covers the lag)."""
    rows = split_rows(corpus, "train")
    mimi = new_mimi(seed)
    state = Checkpointed(out / "training.pt", seed)
    log, heads, sets = train_encoder(mimi, rows, steps, state, batch_size, seed, lag, crop)
    report = {
        f"phone_accuracy_{split}": round(
            frame_accuracy(mimi, heads, sets, split_rows(corpus, split), lag=lag), 4
        )
        for split in REPORTED_SPLITS
        if split in splits_of(corpus)
    } | {"phones": {name: len(phones) for name, phones in sets.items()}, "phone_lag": lag}
    picks = random.Random(seed).sample(range(len(rows)), min(QUANTIZER_UTTERANCES, len(rows)))
    fit_quantizer(mimi, [row_pcm(rows[i]) for i in picks], seed)
    out.mkdir(parents=True, exist_ok=True)
    for name, write in (
        ("mimi.safetensors", lambda p: save_file(_state(mimi), p)),
        ("mimi_config.json", lambda p: Path(p).write_text(json.dumps(SMALL_MIMI_CONFIG, indent=2))),
        ("training_log.json", lambda p: Path(p).write_text(json.dumps(log, indent=1))),
        ("report.json", lambda p: Path(p).write_text(json.dumps(report, indent=2))),
    ):
        tmp = out / f".{name}.tmp"
        write(str(tmp))
        tmp.replace(out / name)
    return out


def _state(mimi: MimiModel) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous() for k, v in mimi.state_dict().items()}


def train_encoder(
    mimi: MimiModel,
    rows,
    steps: int,
    state: Checkpointed,
    batch_size: int = 16,
    seed: int = 0,
    lag: int = 0,
    crop: int = 0,
) -> tuple[list[dict], PhoneHeads, dict[str, list[str]]]:
    """Train Mimi's encoder (SEANet, transformer, downsampling) and the phone heads on corpus
    rows; resumes from `state`. Returns the log (loss every 25 steps), heads and classes."""
    sets = inventories(rows)
    heads = PhoneHeads(mimi.dimension, sets)
    params = [
        *mimi.encoder.parameters(),
        *mimi.encoder_transformer.parameters(),
        *mimi.downsample.parameters(),
        *heads.parameters(),
    ]
    optimizer = torch.optim.AdamW(params, lr=2e-3, weight_decay=0.01)
    schedule = warmup_cosine(optimizer, 50, steps)
    modules = {"mimi": mimi, "heads": heads, "optimizer": optimizer, "schedule": schedule}
    start, log = state.resume(modules)
    with (
        no_compile(),
        torch.enable_grad(),
        tqdm(total=steps, initial=start, desc="audio tokenizer", unit="step") as bar,
    ):
        for step in range(start + 1, steps + 1):
            rng = random.Random(f"{seed}-{step}")
            picks = rng.sample(range(len(rows)), batch_size)
            loss = _loss(mimi, heads, [rows[i] for i in picks], sets, lag, crop, rng)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            schedule.step()
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
            if step % 25 == 0 or step == steps:
                log.append({"step": step, "loss": round(loss.item(), 4)})
            if step % 100 == 0 or step == steps:
                state.save(modules, step, log)
    mimi.zero_grad(set_to_none=True)
    return log, heads, sets


def _loss(
    mimi: MimiModel,
    heads: PhoneHeads,
    rows: list[dict],
    sets: dict,
    lag: int = 0,
    crop: int = 0,
    rng: random.Random | None = None,
) -> torch.Tensor:
    """Cross-entropy of each row's phones under its phone set's head, averaged over frames.
    With `crop` > 0 each row is cut to `crop` frames at a random place (`rng`), the first
    CROP_WARMUP frames of a cut that starts late left out of the loss: the causal encoder has
    not heard what came before them, as it always has when it streams."""
    pcms = [row_pcm(row) for row in rows]
    starts = [0] * len(rows)
    if crop:
        rng = rng or random.Random(0)
        starts = [rng.randrange(max(1, len(p) // FRAME_SIZE - crop + 1)) for p in pcms]
        pcms = [
            p[s * FRAME_SIZE : (s + crop) * FRAME_SIZE] for p, s in zip(pcms, starts, strict=True)
        ]
    audio, frames = _padded(pcms)
    latent = mimi._encode_to_unquantized_latent(audio)
    total, count = 0.0, 0
    for name, phones in sets.items():
        mine = [k for k, row in enumerate(rows) if phone_set(row["synthesizer"]) == name]
        if not mine:
            continue
        classes = {p: k + 1 for k, p in enumerate(phones)}
        labels = torch.stack(
            [_cut_labels(rows[k]["phones"], starts[k], frames, classes, lag) for k in mine]
        )
        logits = heads(latent[mine], name)
        total = total + torch.nn.functional.cross_entropy(
            logits.flatten(0, 1), labels.flatten(), reduction="sum", ignore_index=IGNORED
        )
        count += int((labels != IGNORED).sum())
    return total / max(count, 1)


def _cut_labels(phones: list[dict], start: int, frames: int, classes: dict, lag: int):
    """The labels of frames [start, start + frames), the warm-up of a late cut IGNORED."""
    labels = phone_labels(phones, start + frames, classes, lag)[start * SUB_FRAMES :]
    if start:
        labels[: CROP_WARMUP * SUB_FRAMES] = IGNORED
    return labels


@torch.no_grad()
def frame_accuracy(
    mimi: MimiModel, heads: PhoneHeads, sets: dict, rows, limit: int = 100, lag: int = 0
) -> float:
    """Share of 20 ms steps inside phones whose phone the head names, on `limit` rows: how
    much of the speech the latents carry, before quantization."""
    hits = total = 0
    with no_compile():
        for row in rows.select(range(min(limit, len(rows)))):
            name = phone_set(row["synthesizer"])
            classes = {p: k + 1 for k, p in enumerate(sets[name])}
            audio, frames = _audio([row])
            labels = phone_labels(row["phones"], frames, classes, lag)
            guess = heads(mimi._encode_to_unquantized_latent(audio), name)[0].argmax(-1)
            inside = labels != SILENCE
            hits += int((guess[inside] == labels[inside]).sum())
            total += int(inside.sum())
    return hits / max(total, 1)


def splits_of(corpus: Path) -> list[str]:
    import datasets

    return list(datasets.load_from_disk(str(corpus)))


def _audio(rows: list[dict]) -> tuple[torch.Tensor, int]:
    """Audio [B, 1, T] padded to the longest (a whole number of frames), and its frames."""
    return _padded([row_pcm(row) for row in rows])


def _padded(pcms: list[torch.Tensor]) -> tuple[torch.Tensor, int]:
    longest = max(len(a) for a in pcms)
    longest += -longest % FRAME_SIZE
    audio = torch.stack([torch.nn.functional.pad(a, (0, longest - len(a))) for a in pcms])
    return audio[:, None], longest // FRAME_SIZE


@torch.no_grad()
def fit_quantizer(mimi: MimiModel, audio: list[torch.Tensor], seed: int) -> None:
    """k-means codebooks on the encoder's latents of `audio` (a few hundred utterances)."""
    longest = max(len(a) for a in audio)
    longest += -longest % FRAME_SIZE
    batch = torch.stack([torch.nn.functional.pad(a, (0, longest - len(a))) for a in audio])
    with no_compile():
        fill_codebooks(mimi, seed, audio=batch[:, None], kmeans_iters=15)


@torch.no_grad()
def streaming_encode(mimi: MimiModel, pcms: list[torch.Tensor]) -> list[torch.Tensor]:
    """Codes as inference computes them, frame by frame: [n_q, frames] per input (each a
    multiple of the frame size long)."""
    length = max(len(p) for p in pcms)
    batch = torch.stack([torch.nn.functional.pad(p, (0, length - len(p))) for p in pcms])
    with no_compile(), mimi.streaming(len(pcms)):
        starts = range(0, length, FRAME_SIZE)
        frames = [mimi.encode(batch[:, None, i : i + FRAME_SIZE]) for i in starts]
    codes = torch.cat(frames, dim=-1)
    return [c[:, : len(p) // FRAME_SIZE] for c, p in zip(codes, pcms, strict=True)]


def split_rows(corpus: Path, split: str):
    """One split of a corpus made by dsmlab.train.corpus."""
    import datasets

    try:
        return datasets.load_from_disk(str(corpus))[split]
    except (FileNotFoundError, KeyError):
        raise DSMLabError(
            f"{corpus}: no '{split}' split; make one with "
            f"python -m dsmlab.train.corpus --out {corpus}"
        ) from None


def row_pcm(row) -> torch.Tensor:
    return load_audio(row["audio"]["bytes"], name=row["id"])


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m dsmlab.train.audio_tokenizer", description=__doc__)
    parser.add_argument("--corpus", type=Path, required=True, help="made by dsmlab.train.corpus")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=positive_int, default=STEPS)
    parser.add_argument("--batch-size", type=positive_int, default=16)
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument(
        "--phone-lag", type=non_negative_int, default=PHONE_LAG, help="frames the labels trail"
    )
    parser.add_argument(
        "--crop-frames",
        type=non_negative_int,
        default=CROP_FRAMES,
        help="learn from cuts of this many 80 ms frames (0: whole utterances)",
    )
    args = parser.parse_args(argv)

    def body() -> int:
        out = build(
            args.corpus,
            args.out,
            args.steps,
            args.batch_size,
            args.seed,
            args.phone_lag,
            args.crop_frames,
        )
        print(out)
        return 0

    return run_cli(body, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
