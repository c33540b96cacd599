"""Find and load a DSM speech-to-text checkpoint: a short name, a Hugging Face repo or a local dir.

All three go through moshi's `CheckpointInfo`, with every file resolved and checked here first
(config, Mimi config, safetensors headers), so a missing, corrupt or foreign file, or an
unreachable hub, gives one line that names the model, the file and the way out.
"""

from __future__ import annotations

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

from .bundled import bundled_models
from .checkpoint import (
    CONFIG_NAME,
    check_config,
    check_mimi_config,
    check_weights,
    extra_heads_in,
    read_json,
)
from .errors import DSMLabError, UsageError
from .model import DSMModel

KNOWN_MODELS: dict[str, str] = {
    "stt-1b-en_fr": "kyutai/stt-1b-en_fr",
    "stt-2.6b-en": "kyutai/stt-2.6b-en",
    # Same model as stt-1b-en_fr, packaged with the semantic-VAD heads (extra_heads.*).
    "stt-1b-en_fr-candle": "kyutai/stt-1b-en_fr-candle",
}


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


def available_models() -> list[str]:
    """Short names dsmlab knows: the bundled models, then the released ones."""
    return [*bundled_models(), *KNOWN_MODELS]


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
        raise UsageError(
            f"unknown model '{text}': use a short name ({', '.join(available_models())}), "
            "a Hugging Face repo id (owner/name) or an existing checkpoint directory"
        )
    return ModelSource(name=text.split("/")[-1], repo_id=text, revision=revision)


@dataclass(frozen=True)
class CheckpointFiles:
    """A checkpoint's files, resolved to local paths and checked, with its config."""

    source: ModelSource
    config: dict
    config_path: Path
    weights: Path
    mimi: Path
    tokenizer: Path
    mimi_config_path: Path | None
    mimi_config: dict | None


def checkpoint_files(source: ModelSource) -> CheckpointFiles:
    """Fetch (from the hub if needed) and check every file before anything is built."""
    config_path = fetch_file(source, CONFIG_NAME)
    config = check_config(read_json(config_path, source.name), source.name)
    weights = fetch_file(source, config.get("moshi_name", MOSHI_NAME))
    mimi = fetch_file(source, config.get("mimi_name", MIMI_NAME))
    for path in (weights, mimi):
        check_weights(path, source.name)
    tokenizer = fetch_file(source, config.get("tokenizer_name", TEXT_TOKENIZER_NAME))
    mimi_config_path = mimi_config = None
    if config.get("mimi_config_name"):
        mimi_config_path = fetch_file(source, config["mimi_config_name"])
        mimi_config = check_mimi_config(read_json(mimi_config_path, source.name), source.name)
    return CheckpointFiles(
        source, config, config_path, weights, mimi, tokenizer, mimi_config_path, mimi_config
    )


def load(
    spec: str | Path,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    revision: str | None = None,
) -> DSMModel:
    """Load a DSM STT model. CUDA (bf16) when available, else CPU (fp32); `device` overrides.
    A delay-conditioned model runs at its config's delay, or at the one `spec@seconds` names."""
    spec, delay_s = split_delay(spec)
    source = resolve(spec, revision)
    device = pick_device(device)
    if dtype is None:
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    files = checkpoint_files(source)
    info = CheckpointInfo.from_hf_repo(
        source.repo_id or source.where,
        moshi_weights=files.weights,
        mimi_weights=files.mimi,
        tokenizer=files.tokenizer,
        config_path=files.config_path,
        mimi_config_path=files.mimi_config_path,
    )
    overrides = {} if "extra_heads_num_heads" in files.config else extra_heads_in(files.weights)
    try:
        mimi = info.get_mimi(device=device)
        lm = info.get_moshi(device=device, dtype=dtype, lm_kwargs_overrides=overrides)
        tokenizer = info.get_text_tokenizer()
    except Exception as e:  # torch, moshi and sentencepiece each raise their own types
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DSMLabError(
            f"{source.name}: the files in {source.where} do not load: {first}"
        ) from None
    model = DSMModel.from_parts(
        files.config,
        mimi,
        lm,
        tokenizer,
        name=source.name,
        source=source.where,
        mimi_config=files.mimi_config,
        files={
            path.name: path
            for path in (files.config_path, files.weights, files.mimi, files.tokenizer)
            + ((files.mimi_config_path,) if files.mimi_config_path else ())
        },
    )
    if delay_s is None and not model.delays_s:
        return model
    # a conditioned model's runs are named with their delay, the default one too
    return model.at_delay(model.delay_s if delay_s is None else delay_s)


def split_delay(spec: str | Path) -> tuple[str | Path, float | None]:
    """("dir", 0.64) for "dir@0.64"; an existing path, or a spec without a numeric @ suffix,
    is left whole."""
    head, at, tail = str(spec).rpartition("@")
    if not at or Path(spec).exists():
        return spec, None
    try:
        delay_s = float(tail.removesuffix("s"))
    except ValueError:
        return spec, None
    return head, delay_s


def pick_device(device: str | torch.device | None) -> torch.device:
    """CUDA when present and nothing was asked for; an unusable request is an error."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise UsageError(f"unknown device '{device}': use cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise UsageError(f"device '{device}' is not supported: use cpu, cuda or cuda:N")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"device '{device}' asked for, but CUDA is not available; use cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(
                f"device '{device}' asked for, but there are {torch.cuda.device_count()} GPUs"
            )
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
