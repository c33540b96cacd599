"""The audio tokenizer of the trained models: a small Mimi whose encoder is trained briefly
to predict log band energies, with codebooks fit by k-means on the corpus latents.

A random encoder's tokens hardly separate words (1.2% nearest-centroid word accuracy on the
corpus, chance 0.4%); after this short training, 32%. See `train.word_separation`.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch
from moshi.models.loaders import get_mimi
from moshi.utils.compile import no_compile
from safetensors.torch import save_file

from ..architectures import MIMI_CONFIG, fill_codebooks
from ..audio import FRAME_RATE, FRAME_SIZE, SAMPLE_RATE, load_audio
from ..errors import DSMLabError

SMALL_MIMI_CONFIG = {
    "sample_rate": SAMPLE_RATE,
    "channels": 1,
    "frame_rate": FRAME_RATE,
    "seanet": MIMI_CONFIG["seanet"] | {"dimension": 64, "n_filters": 8},
    "quantizer": {
        "dimension": 32,
        "n_q": 8,
        "bins": 256,
        "input_dimension": 64,
        "output_dimension": 64,
    },
    "transformer": MIMI_CONFIG["transformer"]
    | {
        "d_model": 64,
        "num_heads": 4,
        "num_layers": 1,
        "context": 25,
        "dim_feedforward": 128,
        "input_dimension": 64,
        "output_dimensions": [64],
    },
}


def audio_tokenizer(directory: Path, corpus: Path, seed: int = 0, encoder_steps: int = 400):
    """The shared small Mimi: loaded from `directory`, or built there.

    Built: the encoder is trained briefly to predict log band energies of each frame
    (`fit_encoder`: a random encoder's latents hardly separate words), then the codebooks
    are fit by k-means on the corpus latents.
    """
    weights = directory / "mimi.safetensors"
    if weights.is_file():
        config = json.loads((directory / "mimi_config.json").read_text())
        return get_mimi(weights, config, num_codebooks=config["quantizer"]["n_q"])
    torch.manual_seed(seed)
    mimi = get_mimi(None, SMALL_MIMI_CONFIG, num_codebooks=SMALL_MIMI_CONFIG["quantizer"]["n_q"])
    train = split_rows(corpus, "train")
    picks = random.Random(seed).sample(range(len(train)), min(600, len(train)))
    audio = [row_pcm(train[i]) for i in picks]
    length = min(len(a) for a in audio) // FRAME_SIZE * FRAME_SIZE
    batch = torch.stack([a[:length] for a in audio])[:, None]
    fit_encoder(mimi, batch, encoder_steps, seed)
    with torch.no_grad():
        fill_codebooks(mimi, seed, audio=batch[:300], kmeans_iters=15)
    directory.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in mimi.state_dict().items()}, weights)
    (directory / "mimi_config.json").write_text(json.dumps(SMALL_MIMI_CONFIG, indent=2))
    return mimi


def band_energies(audio: torch.Tensor, bands: int = 32, sub_frames: int = 4) -> torch.Tensor:
    """[B, T] 24 kHz -> [B, frames, sub_frames * bands]: log energies in log-spaced bands of
    each 20 ms sub-frame, grouped per 80 ms Mimi frame (a mel-like target)."""
    hop = FRAME_SIZE // sub_frames
    window = torch.hann_window(2 * hop)
    spec = torch.stft(audio, 2 * hop, hop, window=window, return_complex=True).abs() ** 2
    spec = spec[:, :, 1 : audio.shape[1] // hop + 1]  # frame k covers samples up to (k+1)*hop
    edges = torch.logspace(np.log10(2), np.log10(spec.shape[1] - 1), bands + 1).long()
    energies = torch.stack(
        [
            spec[:, lo : max(hi, lo + 1)].mean(1)
            for lo, hi in zip(edges[:-1], edges[1:], strict=True)
        ],
        1,
    )
    logs = torch.log(energies + 1e-6)  # [B, bands, T * sub_frames]
    frames = logs.shape[-1] // sub_frames
    return (
        logs[..., : frames * sub_frames]
        .reshape(logs.shape[0], bands, frames, sub_frames)
        .permute(0, 2, 3, 1)
        .reshape(logs.shape[0], frames, sub_frames * bands)
    )


def fit_encoder(
    mimi, audio: torch.Tensor, steps: int, seed: int, batch_size: int = 8, crop_frames: int = 20
) -> list:
    """Train Mimi's encoder so a linear map of each frame's latent predicts that frame's
    band energies; returns the losses. A short, CPU-sized substitute for Mimi's training."""
    target = band_energies(audio[:, 0])
    target = (target - target.mean((0, 1))) / (target.std((0, 1)) + 1e-5)
    head = torch.nn.Linear(mimi.dimension, target.shape[-1])
    params = [
        *mimi.encoder.parameters(),
        *mimi.encoder_transformer.parameters(),
        *mimi.downsample.parameters(),
        *head.parameters(),
    ]
    optimizer = torch.optim.Adam(params, lr=3e-3)
    generator = torch.Generator().manual_seed(seed)
    losses = []
    with no_compile(), torch.enable_grad():
        for _ in range(steps):
            picks = torch.randint(len(audio), (batch_size,), generator=generator)
            first = int(torch.randint(target.shape[1] - crop_frames, (1,), generator=generator))
            crop = audio[picks, :, first * FRAME_SIZE : (first + crop_frames) * FRAME_SIZE]
            latent = mimi._encode_to_unquantized_latent(crop)  # [B, D, crop_frames]
            predicted = head(latent.transpose(1, 2))
            goal = target[picks, first : first + crop_frames]
            loss = torch.nn.functional.mse_loss(predicted, goal)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    mimi.zero_grad(set_to_none=True)
    return losses


@torch.no_grad()
def streaming_encode(mimi, pcms: list[torch.Tensor]) -> list[torch.Tensor]:
    """Codes as inference computes them, frame by frame (one-shot encoding differs on about
    1% of codes here: float noise near codebook boundaries)."""
    length = max(len(p) for p in pcms)
    batch = torch.stack([torch.nn.functional.pad(p, (0, length - len(p))) for p in pcms])
    with mimi.streaming(len(pcms)):
        frames = [
            mimi.encode(batch[:, None, i : i + FRAME_SIZE]) for i in range(0, length, FRAME_SIZE)
        ]
    codes = torch.cat(frames, dim=-1)
    return [c[:, : len(p) // FRAME_SIZE] for c, p in zip(codes, pcms, strict=True)]


def split_rows(corpus: Path, split: str):
    """One split of a corpus made by dsmlab.synth."""
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
