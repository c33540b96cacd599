"""Kyutai's `scripts/stt_from_file_pytorch.py` flow, written out with moshi alone (no dsmlab):
the loader a checkpoint must satisfy to be usable with Kyutai's own tools.

    info = CheckpointInfo.from_hf_repo(hf_repo, moshi_weights=..., mimi_weights=...,
                                       tokenizer=..., config_path=...)
    mimi, tokenizer, lm = info.get_mimi(), info.get_text_tokenizer(), info.get_moshi()
    with mimi.streaming(1), lm_gen.streaming(1): per 80 ms frame, mimi.encode -> lm_gen.step

Padding follows Kyutai's evaluation script: the silence prefix, then delay + 0.5 s.
"""

import math

import torch
from moshi.models import LMGen
from moshi.models.loaders import CheckpointInfo


def load(hf_repo=None, directory=None, dtype=torch.float32):
    """(mimi, tokenizer, lm, info) as the script loads them: from a hub repo, or with every
    file given as a local override (its --moshi-weight/--mimi-weight/--tokenizer/--config-path).
    moshi reads `mimi_config_name` relative to the working directory when no repo is given."""
    files = {}
    if directory is not None:
        files = {
            "moshi_weights": str(directory / "model.safetensors"),
            "mimi_weights": str(directory / "mimi.safetensors"),
            "tokenizer": str(directory / "tokenizer.model"),
            "config_path": str(directory / "config.json"),
        }
    info = CheckpointInfo.from_hf_repo(hf_repo, **files)
    return (
        info.get_mimi(device="cpu"),
        info.get_text_tokenizer(),
        info.get_moshi(device="cpu", dtype=dtype),
        info,
    )


@torch.no_grad()
def transcribe(mimi, tokenizer, lm, info, pcm_24k: torch.Tensor) -> str:
    """The text of one utterance: the script's per-frame loop, greedy, all tokens decoded."""
    lm_gen = LMGen(lm, temp=0, temp_text=0.0)
    prefix = info.stt_config.get("audio_silence_prefix_seconds", 1.0)
    delay = info.stt_config.get("audio_delay_seconds", 5.0)
    padding_id = info.raw_config.get("text_padding_token_id", 3)
    audio = torch.nn.functional.pad(
        pcm_24k, (int(prefix * mimi.sample_rate), int((delay + 0.5) * mimi.sample_rate))
    )
    audio = torch.nn.functional.pad(audio, (0, -audio.numel() % mimi.frame_size))
    tokens = []
    with mimi.streaming(1), lm_gen.streaming(1):
        for start in range(0, audio.numel(), mimi.frame_size):
            codes = mimi.encode(audio[None, None, start : start + mimi.frame_size])
            out = lm_gen.step(codes)
            if out is not None:
                tokens.append(int(out[0, 0, 0]))
    assert len(tokens) == math.ceil(audio.numel() / mimi.frame_size)
    return tokenizer.decode([t for t in tokens if t > padding_id])
