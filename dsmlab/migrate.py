"""Rewrite an older checkpoint folder in the current layout, so moshi's strict loader takes it.

    python -m dsmlab migrate data/models/synth-d16

Older dsmlab checkpoints (and Kyutai's `-candle` repos) carry semantic-VAD heads in the
weights without declaring them in config.json; moshi's `get_moshi` then stops at
"Unexpected key(s) extra_heads.*". Migration loads the folder the lenient way, writes it back
with `checkpoint.write_checkpoint` (same tensors, same dtype), and checks that moshi's own
loader now loads it strictly. What cannot be migrated (pickled weights, missing or corrupt
files, weights that do not fit their config) is one line saying why.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from moshi.models.loaders import CheckpointInfo
from safetensors import safe_open

from .checkpoint import (
    CONFIG_NAME,
    MIMI_NAME,
    TOKENIZER_NAME,
    WEIGHTS_NAME,
    check_weights,
    checkpoint_config,
    read_json,
    write_checkpoint,
)
from .errors import DSMLabError, UsageError
from .loading import load


def migrate(directory: str | Path) -> list[str]:
    """Migrate the checkpoint in `directory` in place; returns what changed in config.json."""
    directory = Path(directory).resolve()
    if not (directory / CONFIG_NAME).is_file():
        raise UsageError(f"{directory}: no {CONFIG_NAME}; is it a checkpoint folder?")
    before = read_json(directory / CONFIG_NAME, directory.name)
    weights = directory / str(before.get("moshi_name", WEIGHTS_NAME))
    check_weights(weights, directory.name)
    model = load(directory, device="cpu", dtype=_stored_dtype(weights))
    after = checkpoint_config(model)
    changes = [
        f"{key}: {before.get(key, 'absent')} -> {after.get(key, 'absent')}"
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    ]
    write_checkpoint(model, directory)
    check_strict_load(directory)
    return changes


def check_strict_load(directory: Path) -> None:
    """Load `directory` with moshi's own loader, strictly, as Kyutai's scripts do (moshi reads
    `mimi_config_name` relative to the working directory when no hub repo is given)."""
    cwd, directory = os.getcwd(), directory.resolve()
    try:
        os.chdir(directory)
        info = CheckpointInfo.from_hf_repo(
            None,
            moshi_weights=str(directory / WEIGHTS_NAME),
            mimi_weights=str(directory / MIMI_NAME),
            tokenizer=str(directory / TOKENIZER_NAME),
            config_path=str(directory / CONFIG_NAME),
        )
        info.get_mimi(device="cpu")
        info.get_moshi(device="cpu", dtype=torch.float32)
    except Exception as e:  # moshi raises RuntimeError, KeyError, OSError...
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DSMLabError(f"{directory}: moshi's loader still refuses it: {first}") from None
    finally:
        os.chdir(cwd)


def _stored_dtype(weights: Path) -> torch.dtype:
    """The dtype the LM's floating-point tensors are stored in, kept by the migration."""
    with safe_open(str(weights), framework="pt") as f:
        for key in f.keys():
            tensor = f.get_slice(key)
            dtype = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}.get(
                tensor.get_dtype()
            )
            if dtype is not None:
                return dtype
    return torch.float32
