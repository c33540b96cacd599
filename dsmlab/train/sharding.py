"""Fine-tuning past one GPU's memory: the LM's weights, gradients and optimizer state sharded
across the torchrun processes (FSDP), as moshi-finetune shards Moshi.

`shard` makes each weight-owning module a unit gathered for its own forward and backward.
PyTorch's `fully_shard` re-classes what it wraps, and moshi's streaming modules refuse that
(abc.ABC comes first among their bases), so the units are the outermost modules below them:
a layer's norms, its attention's projections, its gating (whose forward reads its linear
layers' weights directly), the embeddings, the text head, the VAD heads. The root unit is a
plain `_Root` holding the LM, whose forward is the LM's `forward_text`, the method training
and moshi's `LMGen` call instead of `forward`, pointed at the root for this LM. A delay
conditioner's table (read before `forward_text`, through no forward; finetune freezes it)
stays whole on every process.

Gradients are summed across processes, not averaged, as finetune's unsharded data parallel
sums them: the loss of each process's share is already divided by the whole batch's weight.
Every process must run the same calls on the LM (validation included), since each unit
gathers from all of them; `reshard` frees the weights the root keeps after an inference.

`ShardedState` is the trainable state as one full state dict: gathered on every process (a
collective) and written by one; on resume every process reads the file and keeps its shard.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from moshi.modules.streaming import StreamingModule
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import FSDPModule, fully_shard

FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)


class _Root(torch.nn.Module):
    def __init__(self, lm: torch.nn.Module) -> None:
        super().__init__()
        self.lm = lm

    def forward(self, *args, **kwargs):
        return type(self.lm).forward_text(self.lm, *args, **kwargs)


def shard(lm: torch.nn.Module) -> None:
    """Shard `lm` in place across the processes of the default group."""
    mesh = init_device_mesh(lm.device.type, (dist.get_world_size(),))
    kept = lm.condition_provider if lm.condition_provider is not None else torch.nn.Module()
    for unit in _units(lm, kept):
        fully_shard(unit, mesh=mesh)
    root = _Root(lm)
    fully_shard(root, mesh=mesh, ignored_params=set(kept.parameters()))
    lm.forward_text = root.__call__  # an instance attribute: this LM only
    for module in _sharded(lm):
        module.set_gradient_divide_factor(1.0)
        module.set_force_sum_reduction_for_comms(True)


def reshard(lm: torch.nn.Module) -> None:
    """Free the weights an inference left gathered."""
    for module in _sharded(lm):
        module.reshard()


def _sharded(lm: torch.nn.Module) -> list[FSDPModule]:
    """The units `shard` made of `lm`, its root (`lm.forward_text`'s owner) first."""
    return [m for m in lm.forward_text.__self__.modules() if isinstance(m, FSDPModule)]


def _units(module: torch.nn.Module, kept: torch.nn.Module) -> list[torch.nn.Module]:
    """The outermost modules under `module` that hold weights and that FSDP can wrap: not
    moshi's streaming modules, not containers (never called), not `kept`."""
    if module is kept or next(module.parameters(), None) is None:
        return []
    if not isinstance(module, StreamingModule | torch.nn.ModuleList | torch.nn.ModuleDict):
        return [module]
    return [unit for child in module.children() for unit in _units(child, kept)]


def full_weights(lm: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every weight of a sharded `lm`, whole, on CPU, on rank 0 (an empty dict elsewhere); a
    collective: every process calls it."""
    reshard(lm)
    return get_model_state_dict(lm, options=FULL)


class ShardedState:
    """The trainable weights of a sharded LM, or with `optimizer` its optimizer's state, for
    `resumable.Checkpointed`: full state dicts, so a sharded training resumes on any number of
    processes."""

    def __init__(self, lm: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None):
        self.lm, self.optimizer = lm, optimizer

    def state_dict(self) -> dict:
        if self.optimizer is not None:
            return get_optimizer_state_dict(self.lm, self.optimizer, options=FULL)
        trainable = self._trainable()
        return {n: w for n, w in full_weights(self.lm).items() if n in trainable}

    def load_state_dict(self, state: dict) -> None:
        options = StateDictOptions(full_state_dict=True, strict=False)
        if self.optimizer is not None:
            set_optimizer_state_dict(self.lm, self.optimizer, state, options=options)
        else:
            if missing := self._trainable() - set(state):
                raise KeyError(f"saved state lacks {sorted(missing)[:3]}")
            set_model_state_dict(self.lm, state, options=options)

    def _trainable(self) -> set[str]:
        return {n for n, p in self.lm.named_parameters() if p.requires_grad}
