"""The released DSM-STT architectures and a tiny one, built with random weights.

`save_random` writes a checkpoint in the Hugging Face layout (config.json, safetensors weights,
Mimi file and config, sentencepiece tokenizer), so `dsmlab.load(dir)` takes the same path as for
a real model. Tests use "tiny"; benchmarks on machines without the released weights use the
real architectures.
"""

from __future__ import annotations

import copy
import io
import random
from pathlib import Path

import sentencepiece
import torch
from moshi.models.loaders import _mimi_config as MIMI_CONFIG  # the released Mimi's config
from moshi.models.loaders import get_mimi, get_moshi_lm

from .audio import FRAME_RATE, FRAME_SIZE, SAMPLE_RATE
from .checkpoint import lm_kwargs, write_checkpoint
from .errors import UsageError
from .model import DSMModel
from .timing import END_OF_PADDING_ID, PADDING_ID

_LM_COMMON = {
    "card": 2048,
    "n_q": 32,
    "dep_q": 0,
    "delays": [0] * 33,
    "existing_text_padding_id": PADDING_ID,
    "hidden_scale": 4.125,
    "causal": True,
    "layer_scale": None,
    "max_period": 100000.0,
    "gating": "silu",
    "norm": "rms_norm_f32",
    "positional_embedding": "rope",
    "depformer_dim": 1024,
    "depformer_num_heads": 16,
    "depformer_num_layers": 6,
    "depformer_dim_feedforward": None,
    "depformer_multi_linear": True,
    "depformer_pos_emb": "none",
    "depformer_weights_per_step": True,
    "conditioners": {},
    "cross_attention": False,
    "lm_gen_config": {"temp": 0.0, "temp_text": 0.0, "top_k": 250, "top_k_text": 50},
    "model_type": "stt",
}

# config.json of each released model (kyutai/stt-2.6b-en, kyutai/stt-1b-en_fr), weights aside.
ARCHITECTURES: dict[str, dict] = {
    "stt-2.6b-en": _LM_COMMON
    | {
        "dim": 2048,
        "text_card": 4000,
        "num_heads": 32,
        "num_layers": 48,
        "context": 375,
        "stt_config": {"audio_delay_seconds": 2.5, "audio_silence_prefix_seconds": 1.0},
    },
    "stt-1b-en_fr": _LM_COMMON
    | {
        "dim": 2048,
        "text_card": 8000,
        "num_heads": 16,
        "num_layers": 16,
        "context": 750,
        "stt_config": {"audio_delay_seconds": 0.5, "audio_silence_prefix_seconds": 0.0},
    },
    # A few MB: for tests and CPU experiments. Same layout, small dims, 8 codebooks of 64.
    "tiny": _LM_COMMON
    | {
        "card": 64,
        "n_q": 8,
        "delays": [0] * 9,
        "dim": 64,
        "text_card": 256,
        "num_heads": 4,
        "num_layers": 2,
        "context": 100,
        "stt_config": {"audio_delay_seconds": 0.24, "audio_silence_prefix_seconds": 0.16},
    },
}

TINY_MIMI_CONFIG = {
    "sample_rate": SAMPLE_RATE,
    "channels": 1,
    "frame_rate": FRAME_RATE,
    "seanet": MIMI_CONFIG["seanet"] | {"dimension": 32, "n_filters": 4},
    "quantizer": {
        "dimension": 16,
        "n_q": 8,
        "bins": 64,
        "input_dimension": 32,
        "output_dimension": 32,
    },
    "transformer": MIMI_CONFIG["transformer"]
    | {
        "d_model": 32,
        "num_heads": 2,
        "num_layers": 1,
        "context": 25,
        "dim_feedforward": 64,
        "input_dimension": 32,
        "output_dimensions": [32],
    },
}


def build_random(
    arch: str,
    seed: int = 0,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    vad_heads: bool = False,
) -> DSMModel:
    """An in-memory model of architecture `arch` with random weights (no files written)."""
    config = _config(arch, vad_heads)
    mimi_config = TINY_MIMI_CONFIG if arch == "tiny" else None  # None: the released Mimi
    torch.manual_seed(seed)
    mimi = get_mimi(None, mimi_config or MIMI_CONFIG, device=device, num_codebooks=config["n_q"])
    fill_codebooks(mimi, seed)
    lm = get_moshi_lm(None, lm_kwargs=lm_kwargs(config), device=device, dtype=dtype)
    tokenizer = train_tokenizer(config["text_card"], seed)
    return DSMModel.from_parts(
        config,
        mimi,
        lm,
        sentencepiece.SentencePieceProcessor(model_proto=tokenizer),
        name=f"random-{arch}",
        source=f"random:{arch}",
        mimi_config=mimi_config,
    )


def save_random(arch: str, out_dir: str | Path, seed: int = 0, vad_heads: bool = False) -> Path:
    """Write a random-weight checkpoint of `arch` in the Hugging Face layout; returns the dir."""
    return write_checkpoint(build_random(arch, seed, vad_heads=vad_heads), out_dir)


@torch.no_grad()
def fill_codebooks(
    mimi, seed: int, audio: torch.Tensor | None = None, kmeans_iters: int = 0
) -> None:
    """Fill the quantizer codebooks from the encoder's own latents, level by level.

    A fresh Mimi's codebooks are all zero (every code 0), and random entries at the wrong
    scale map every frame to one code. Entries are drawn from the residuals of `audio`
    ([B, 1, T] at 24 kHz; default: calibration noise bursts and tones), then refined by
    `kmeans_iters` Lloyd iterations, so the codes follow the signal.
    """
    generator = torch.Generator().manual_seed(seed)
    if audio is None:
        audio = _calibration_audio(generator)
    latent = mimi._encode_to_unquantized_latent(audio.to(next(mimi.parameters()).device))
    for rvq in (mimi.quantizer.rvq_first, mimi.quantizer.rvq_rest):
        x = rvq.input_proj(latent)
        residual = x.transpose(1, 2).reshape(-1, x.shape[1])
        for layer in rvq.vq.layers:
            codebook = layer._codebook
            bins = codebook.embedding_sum.shape[0]
            picks = torch.randint(len(residual), (bins,), generator=generator)
            noise = 1e-3 * torch.randn(bins, residual.shape[1], generator=generator)
            entries = residual[picks] + noise.to(residual)
            for _ in range(kmeans_iters):
                assign = torch.cdist(residual, entries).argmin(dim=1)
                sums = torch.zeros_like(entries).index_add_(0, assign, residual)
                counts = torch.bincount(assign, minlength=bins).to(residual)
                used = counts > 0
                entries[used] = sums[used] / counts[used, None]
            codebook.embedding_sum.data.copy_(entries)
            codebook.cluster_usage.data.fill_(1.0)
            codebook._initialized.data.fill_(1.0)
            codebook._cached_initialized = False
            codebook._embedding = None  # drop the cached codebook
            residual = residual - entries[torch.cdist(residual, entries).argmin(dim=1)]


def _calibration_audio(generator: torch.Generator, seconds: float = 8.0) -> torch.Tensor:
    """[4, 1, T] at 24 kHz: noise under random envelopes plus tones, quiet to loud."""
    n = int(seconds * SAMPLE_RATE)
    t = torch.arange(n) / SAMPLE_RATE
    rows = []
    for _ in range(4):
        frames = n // FRAME_SIZE
        envelope = torch.rand(frames, generator=generator).repeat_interleave(FRAME_SIZE)
        freq = 100 + 900 * torch.rand(1, generator=generator)
        tone = torch.sin(2 * torch.pi * freq * t)
        noise = torch.randn(n, generator=generator)
        rows.append(0.3 * envelope[:n] * (noise + tone))
    return torch.stack(rows)[:, None]


def train_tokenizer(vocab_size: int, seed: int = 0) -> bytes:
    """A sentencepiece model of exactly `vocab_size` pieces, trained on seeded pseudo-words."""
    rng = random.Random(seed)
    syllables = [c + v for c in "bcdfghjklmnprstvwz" for v in "aeiou"]
    words = ["".join(rng.choices(syllables, k=rng.randint(1, 4))) for _ in range(4 * vocab_size)]
    lines = [" ".join(rng.choices(words, k=12)) for _ in range(6 * vocab_size)]
    return sentencepiece_model(lines, vocab_size, "unigram", character_coverage=1.0)


def sentencepiece_model(
    lines: list[str], vocab_size: int, model_type: str, character_coverage: float | None = None
) -> bytes:
    """Train a sentencepiece model with Kyutai's special ids: 0 unk (and end of padding in the
    text stream), 1 bos, 2 eos, 3 pad; real pieces start at 4."""
    model = io.BytesIO()
    extra = {} if character_coverage is None else {"character_coverage": character_coverage}
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=model,
        vocab_size=vocab_size,
        model_type=model_type,
        unk_id=END_OF_PADDING_ID,
        bos_id=1,
        eos_id=2,
        pad_id=PADDING_ID,
        minloglevel=2,
        **extra,
    )
    return model.getvalue()


def _config(arch: str, vad_heads: bool) -> dict:
    if arch not in ARCHITECTURES:
        raise UsageError(f"unknown architecture '{arch}': use one of {', '.join(ARCHITECTURES)}")
    config = copy.deepcopy(ARCHITECTURES[arch])
    if vad_heads:
        config |= {"extra_heads_num_heads": 4, "extra_heads_dim": 6}
    return config
