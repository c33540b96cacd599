"""The checkpoint layout, written and checked here only: Kyutai's STT repos' Hugging Face layout.

    config.json        LMModel kwargs, model_type "stt", stt_config, lm_gen_config, and the
                       names of the files below (moshi_name, mimi_name, tokenizer_name and,
                       when Mimi is not the released one, mimi_config_name)
    model.safetensors  the LM; semantic-VAD heads as `extra_heads.N.weight`, declared in
                       config.json by extra_heads_num_heads / extra_heads_dim
    mimi.safetensors   the audio tokenizer
    mimi_config.json   Mimi's config, only when it is not the released Mimi's
    tokenizer.model    sentencepiece

moshi's `CheckpointInfo.from_hf_repo` (and so Kyutai's scripts) reads such a folder as it reads
kyutai/stt-2.6b-en, and loads its weights strictly.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
from pathlib import Path

from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .errors import DSMLabError
from .model import DSMModel

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
MIMI_NAME = "mimi.safetensors"
MIMI_CONFIG_NAME = "mimi_config.json"
TOKENIZER_NAME = "tokenizer.model"
FILE_KEYS = ("moshi_name", "mimi_name", "tokenizer_name", "mimi_config_name")
SAFETENSORS_SUFFIXES = (".safetensors", ".sft", ".sfts")
# Keys moshi's loader takes out of config.json before the rest become LMModel kwargs.
NON_LM_KEYS = frozenset(
    {*FILE_KEYS, "lora_name", "model_type", "lm_gen_config", "tts_config", "stt_config"}
    | {"model_id"}
)
MIMI_CONFIG_KEYS = ("sample_rate", "channels", "frame_rate", "seanet", "quantizer", "transformer")
FINGERPRINT_SAMPLE = 1 << 20  # bytes read at the start, middle and end of a large file


def lm_kwargs(config: dict) -> dict:
    """The LMModel kwargs of a config.json, as moshi's loader derives them (a deep copy:
    moshi's loader writes into the conditioners' entries)."""
    return copy.deepcopy({k: v for k, v in config.items() if k not in NON_LM_KEYS})


def checkpoint_config(model: DSMModel) -> dict:
    """config.json for `model`: its config with the standard file names and its VAD heads."""
    config = {k: v for k, v in model.config.items() if k not in FILE_KEYS}
    config.pop("extra_heads_num_heads", None)
    config.pop("extra_heads_dim", None)
    if model.has_vad:
        config["extra_heads_num_heads"] = len(model.lm.extra_heads)
        config["extra_heads_dim"] = int(model.lm.extra_heads[0].out_features)
    config |= {"moshi_name": WEIGHTS_NAME, "mimi_name": MIMI_NAME, "tokenizer_name": TOKENIZER_NAME}
    if model.mimi_config is not None:
        config["mimi_config_name"] = MIMI_CONFIG_NAME
    return config


def write_checkpoint(
    model: DSMModel, out: str | Path, reports: dict[str, object] | None = None
) -> Path:
    """Write `model` in the layout above (plus `reports`: extra JSON files by name); each file
    is written under a temporary name and renamed, so a crash never leaves half a file."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lm_state = {k: v.detach().contiguous().cpu() for k, v in model.lm.state_dict().items()}
    _atomic(out / WEIGHTS_NAME, lambda p: save_file(lm_state, p))
    mimi_state = {k: v.detach().contiguous().cpu() for k, v in model.mimi.state_dict().items()}
    _atomic(out / MIMI_NAME, lambda p: save_file(mimi_state, p))
    tokenizer = model.tokenizer.serialized_model_proto()
    _atomic(out / TOKENIZER_NAME, lambda p: Path(p).write_bytes(tokenizer))
    files = {CONFIG_NAME: checkpoint_config(model), **(reports or {})}
    if model.mimi_config is not None:
        files[MIMI_CONFIG_NAME] = model.mimi_config
    for name, value in files.items():
        text = json.dumps(value, indent=2) + "\n"
        _atomic(out / name, lambda p, text=text: Path(p).write_text(text))
    return out


def read_json(path: Path, what: str) -> dict:
    """A JSON object from `path`, or a one-line error naming the file."""
    try:
        value = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DSMLabError(f"{what}: {path} is not valid JSON ({e})") from None
    if not isinstance(value, dict):
        raise DSMLabError(f"{what}: {path} must hold a JSON object")
    return value


def check_config(config: dict, name: str) -> dict:
    """Refuse, in one line, a config.json that is not a DSM speech-to-text checkpoint's."""
    if config.get("model_type") not in ("stt", None):
        raise DSMLabError(
            f"{name}: config.json says model_type {config['model_type']!r}; "
            "dsmlab loads speech-to-text checkpoints (model_type 'stt')"
        )
    stt = config.get("stt_config")
    if not isinstance(stt, dict) or "audio_delay_seconds" not in stt:
        raise DSMLabError(
            f"{name}: config.json has no stt_config.audio_delay_seconds; "
            "is this a speech-to-text checkpoint?"
        )
    for key in ("audio_delay_seconds", "audio_silence_prefix_seconds"):
        value = stt.get(key, 0.0)
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not (math.isfinite(value) and value >= 0)
        ):
            raise DSMLabError(
                f"{name}: config.json stt_config.{key} is {value!r}; it must be a number of "
                "seconds >= 0"
            )
    for key in FILE_KEYS:
        if key in config and not (isinstance(config[key], str) and config[key]):
            raise DSMLabError(
                f"{name}: config.json {key} is {config[key]!r}; it must be a file name"
            )
    return config


def check_weights(path: Path, what: str) -> list[str]:
    """The tensor names of a safetensors file; a one-line error when it is not one (pickles are
    refused: they can run code) or when it is truncated or corrupt."""
    if not path.name.endswith(SAFETENSORS_SUFFIXES):
        raise DSMLabError(
            f"{what}: refusing to load {path.name}: only safetensors weights are loaded "
            "(pickled checkpoints can run arbitrary code)"
        )
    try:
        with safe_open(str(path), framework="pt") as f:
            return list(f.keys())
    except (SafetensorError, OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DSMLabError(
            f"{what}: {path} is not a readable safetensors file ({first}); it may be truncated "
            "or corrupt: download or write it again"
        ) from None


def extra_heads_in(weights: Path) -> dict[str, int]:
    """LM kwargs for semantic-VAD heads found in the weights but not declared in config.json
    (as in Kyutai's `-candle` repos)."""
    with safe_open(str(weights), framework="pt") as f:
        heads = sorted(k for k in f.keys() if k.startswith("extra_heads."))
        if not heads:
            return {}
        dim = f.get_slice(heads[0]).get_shape()[0]
    return {"extra_heads_num_heads": len(heads), "extra_heads_dim": int(dim)}


def check_mimi_config(config: dict, what: str) -> dict:
    missing = [k for k in MIMI_CONFIG_KEYS if k not in config]
    if missing:
        raise DSMLabError(
            f"{what}: the Mimi config lacks {', '.join(missing)}; it needs "
            f"{', '.join(MIMI_CONFIG_KEYS)} (as moshi's loaders._mimi_config)"
        )
    return config


def model_identity(model: DSMModel) -> dict:
    """What fixes a model's outputs: its name, a fingerprint of each checkpoint file, and the
    LM's dtype and device type (not its path: a moved or copied checkpoint is the same model)."""
    return {
        "name": model.name,
        "files": {name: file_fingerprint(path) for name, path in sorted(model.files.items())},
        "dtype": str(model.lm.dtype).removeprefix("torch."),
        "device": model.device.type,
    }


def file_fingerprint(path: Path) -> str:
    """sha256 of a file's size and content; of files over 3 MiB, of the size and 1 MiB at the
    start, middle and end (a 5 GB checkpoint in milliseconds; a copy keeps it, any rewrite of
    the weights changes it almost surely)."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with path.open("rb") as f:
        if size <= 3 * FINGERPRINT_SAMPLE:
            digest.update(f.read())
        else:
            for offset in (0, (size - FINGERPRINT_SAMPLE) // 2, size - FINGERPRINT_SAMPLE):
                f.seek(offset)
                digest.update(f.read(FINGERPRINT_SAMPLE))
    return digest.hexdigest()[:16]


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    write(str(tmp))
    os.replace(tmp, path)
