"""Find and load a DSM speech-to-text checkpoint: a short name, a Hugging Face repo or a local dir.

All three go through moshi's `CheckpointInfo`, with every file resolved here first, so a missing
file or an unreachable hub gives one line that names the model, the file and the way out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from huggingface_hub import hf_hub_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
)
from moshi.models.loaders import MIMI_NAME, MOSHI_NAME, TEXT_TOKENIZER_NAME, CheckpointInfo
from safetensors import safe_open

from .errors import DSMLabError
from .model import DSMModel

KNOWN_MODELS: dict[str, str] = {
    "stt-1b-en_fr": "kyutai/stt-1b-en_fr",
    "stt-2.6b-en": "kyutai/stt-2.6b-en",
    # Same model as stt-1b-en_fr, packaged with the semantic-VAD heads (extra_heads.*).
    "stt-1b-en_fr-candle": "kyutai/stt-1b-en_fr-candle",
}
SAFETENSORS_SUFFIXES = (".safetensors", ".sft", ".sfts")
# Small DSM models trained by dsmlab at several delays (python -m dsmlab.train), in the
# repository: they load offline by their directory name.
BUNDLED_DIR = Path(__file__).resolve().parent.parent / "data" / "models"


def bundled_models() -> dict[str, Path]:
    """Short name -> directory of every bundled checkpoint, shortest delay first."""
    if not BUNDLED_DIR.is_dir():
        return {}
    found = [d for d in BUNDLED_DIR.iterdir() if (d / "config.json").is_file()]

    def delay(d: Path) -> float:
        return json.loads((d / "config.json").read_text())["stt_config"]["audio_delay_seconds"]

    return {d.name: d for d in sorted(found, key=lambda d: (delay(d), d.name))}


@dataclass(frozen=True)
class ModelSource:
    """Where a checkpoint lives: exactly one of `repo_id` and `local_dir` is set."""

    name: str
    repo_id: str | None = None
    local_dir: Path | None = None
    revision: str | None = None

    @property
    def where(self) -> str:
        return str(self.local_dir) if self.local_dir else f"hf://{self.repo_id}"


def resolve(spec: str | Path, revision: str | None = None) -> ModelSource:
    """Turn a short name, a repo id (owner/name) or a directory into a `ModelSource`."""
    text = str(spec)
    path = Path(text).expanduser()
    if path.is_dir():
        return ModelSource(name=path.resolve().name, local_dir=path.resolve())
    bundled = bundled_models()
    if text in bundled:
        return ModelSource(name=text, local_dir=bundled[text])
    if text in KNOWN_MODELS:
        return ModelSource(name=text, repo_id=KNOWN_MODELS[text], revision=revision)
    looks_like_path = text.startswith((".", "/", "~")) or path.suffix or text.count("/") != 1
    if looks_like_path:
        raise DSMLabError(
            f"unknown model '{text}': use a short name "
            f"({', '.join([*bundled, *KNOWN_MODELS])}), "
            "a Hugging Face repo id (owner/name) or an existing checkpoint directory"
        )
    return ModelSource(name=text.split("/")[-1], repo_id=text, revision=revision)


def load(
    spec: str | Path,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    revision: str | None = None,
) -> DSMModel:
    """Load a DSM STT model. CUDA (bf16) when available, else CPU (fp32); `device` overrides."""
    source = resolve(spec, revision)
    device = pick_device(device)
    if dtype is None:
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    config_path = fetch_file(source, "config.json")
    config = _read_config(source, config_path)
    if config.get("model_type") not in ("stt", None):
        raise DSMLabError(
            f"{source.name}: config.json says model_type '{config['model_type']}'; "
            "dsmlab loads speech-to-text checkpoints (model_type 'stt')"
        )
    stt = config.get("stt_config") or {}
    if "audio_delay_seconds" not in stt:
        raise DSMLabError(
            f"{source.name}: config.json has no stt_config.audio_delay_seconds; "
            "is this a speech-to-text checkpoint?"
        )
    names = {
        "moshi_name": config.get("moshi_name", MOSHI_NAME),
        "mimi_name": config.get("mimi_name", MIMI_NAME),
    }
    for key, filename in names.items():
        if not filename.endswith(SAFETENSORS_SUFFIXES):
            raise DSMLabError(
                f"{source.name}: refusing to load {key} '{filename}': only safetensors weights "
                "are loaded (pickled checkpoints can run arbitrary code)"
            )
    moshi_path = fetch_file(source, names["moshi_name"])
    mimi_path = fetch_file(source, names["mimi_name"])
    tokenizer_path = fetch_file(source, config.get("tokenizer_name", TEXT_TOKENIZER_NAME))
    mimi_config_name = config.get("mimi_config_name")
    mimi_config_path = fetch_file(source, mimi_config_name) if mimi_config_name else None

    info = CheckpointInfo.from_hf_repo(
        source.repo_id or source.where,
        moshi_weights=moshi_path,
        mimi_weights=mimi_path,
        tokenizer=tokenizer_path,
        config_path=config_path,
        mimi_config_path=mimi_config_path,
    )
    overrides = {} if "extra_heads_num_heads" in config else extra_heads_in(moshi_path)
    try:
        mimi = info.get_mimi(device=device)
        lm = info.get_moshi(device=device, dtype=dtype, lm_kwargs_overrides=overrides)
        tokenizer = info.get_text_tokenizer()
    except (RuntimeError, KeyError, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DSMLabError(
            f"{source.name}: the files in {source.where} do not load: {first}"
        ) from None
    return DSMModel(
        name=source.name,
        source=source.where,
        mimi=mimi,
        lm=lm,
        tokenizer=tokenizer,
        delay_s=float(stt["audio_delay_seconds"]),
        prefix_s=float(stt.get("audio_silence_prefix_seconds", 0.0)),
        padding_id=int(config.get("text_padding_token_id", lm.existing_text_padding_id)),
        end_of_padding_id=int(lm.existing_text_end_padding_id),
        config=config,
    )


def pick_device(device: str | torch.device | None) -> torch.device:
    """CUDA when present and nothing was asked for; an unusable request is an error."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except RuntimeError:
        raise DSMLabError(f"unknown device '{device}': use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DSMLabError(f"device '{device}' asked for, but CUDA is not available; use cpu")
    return device


def fetch_file(source: ModelSource, filename: str) -> Path:
    """A local path to `filename` of the checkpoint, downloading it from the hub if needed."""
    if source.local_dir is not None:
        path = source.local_dir / filename
        if not path.is_file():
            raise DSMLabError(
                f"{source.name}: {path} is missing; a checkpoint directory holds config.json "
                "and the weights, Mimi and tokenizer files it names"
            )
        return path
    try:
        return Path(hf_hub_download(source.repo_id, filename, revision=source.revision))
    except LocalEntryNotFoundError:
        reason = "the hub is unreachable and the file is not in the local HF cache"
    except EntryNotFoundError:
        reason = "the repo has no such file"
    except RepositoryNotFoundError:
        reason = "no such repo, or it needs `huggingface-cli login`"
    except Exception as e:  # network and HTTP errors come in many types
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    raise DSMLabError(
        f"{source.name}: cannot get {filename} from {source.repo_id} ({reason}). "
        "Download it once with network access (it stays in the HF cache; HF_HUB_OFFLINE=1 "
        "then uses the cache), or load a local directory in the same layout"
    ) from None


def extra_heads_in(weights: Path) -> dict[str, int]:
    """LM kwargs for the semantic-VAD heads found in the weights (`extra_heads.N.weight`)."""
    with safe_open(str(weights), framework="pt") as f:
        heads = sorted(k for k in f.keys() if k.startswith("extra_heads."))
        if not heads:
            return {}
        dim = f.get_slice(heads[0]).get_shape()[0]
    return {"extra_heads_num_heads": len(heads), "extra_heads_dim": int(dim)}


def _read_config(source: ModelSource, path: Path) -> dict:
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DSMLabError(f"{source.name}: {path} is not valid JSON ({e})") from None
    if not isinstance(config, dict):
        raise DSMLabError(f"{source.name}: {path} must hold a JSON object")
    return config
