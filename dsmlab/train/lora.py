"""LoRA on a DSM language model through moshi's own modules, as moshi-finetune applies it.

`add_lora` wraps every linear layer in moshi's `LoRALinear` (`replace_all_linear_with_lora`,
the call moshi's loader makes for a checkpoint whose config says `lora: true`), starts the
adapters at zero (lora_B = 0, as moshi-finetune initialises them: the wrapped model is the
base model until it trains) and leaves only the adapters trainable, or the adapters and the
input embedding tables (`embeddings`, moshi-finetune's `ft_embed`). `merge` folds them back
into plain linear layers (`replace_lora_with_linear`), so the result is an ordinary checkpoint.
The adapter alone is a safetensors file of the trained weights (`lora_A` / `lora_B`, and the
embedding tables when they trained, as moshi-finetune saves them): moshi's
`get_moshi_lm(..., lora_weights=..., lm_kwargs={..., "lora": True, "lora_rank": r,
"lora_scaling": s})` applies it to the base weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from moshi.modules.lora import LoRALinear, replace_all_linear_with_lora, replace_lora_with_linear
from safetensors.torch import save_file

ADAPTER_WEIGHTS = "lora.safetensors"
ADAPTER_CONFIG = "adapter.json"


def add_lora(lm: torch.nn.Module, rank: int, scaling: float, embeddings: bool = False) -> None:
    """Wrap every linear layer of `lm` in an adapter of `rank`; only the adapters train, and
    with `embeddings` the tables that turn each audio code and text token into the LM's input
    too: how the LM reads a code, which the adapters reach only after the codebooks' sum."""
    replace_all_linear_with_lora(lm, rank, scaling)
    for module in lm.modules():
        if isinstance(module, LoRALinear):
            torch.nn.init.zeros_(module.lora_B.weight)
    tables = {id(p) for p in embedding_weights(lm)} if embeddings else set()
    for name, parameter in lm.named_parameters():
        parameter.requires_grad = ".lora_" in name or id(parameter) in tables


def embedding_weights(lm: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The input tables of the audio codebooks and the text (not the delay table's)."""
    return [table.weight for table in (*lm.emb, lm.text_emb)]


def adapter_state(lm: torch.nn.Module) -> dict[str, torch.Tensor]:
    """What trains: the adapters, and the embedding tables where they train."""
    return {
        name: p.detach().contiguous().cpu()
        for name, p in lm.named_parameters()
        if ".lora_" in name or p.requires_grad
    }


def merge(lm: torch.nn.Module) -> None:
    """Fold the adapters into the weights they adapt: plain linear layers again."""
    replace_lora_with_linear(lm)
    for parameter in lm.parameters():
        parameter.requires_grad = False


def save_adapter(lm: torch.nn.Module, out: Path, about: dict) -> Path:
    """The adapter alone in `out` (ADAPTER_WEIGHTS) and what it applies to (ADAPTER_CONFIG)."""
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{ADAPTER_WEIGHTS}.tmp"
    save_file(adapter_state(lm), str(tmp))
    tmp.replace(out / ADAPTER_WEIGHTS)
    (out / ADAPTER_CONFIG).write_text(json.dumps(about, indent=2) + "\n")
    return out


class TrainableState:
    """The trainable parameters of a module as a state dict: what a resumable LoRA training
    saves (the adapters, not a copy of the frozen base)."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.module = module

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {n: p.detach().clone() for n, p in self.module.named_parameters() if p.requires_grad}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing = set(self.state_dict()) - set(state)
        if missing:
            raise KeyError(f"saved state lacks {sorted(missing)[:3]}")
        self.module.load_state_dict(state, strict=False)
