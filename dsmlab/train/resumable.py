"""A training's state on disk, so a killed training resumes where it was, losing nothing.

Modules, optimizer and schedule states, the step and the log are saved together, atomically
(a temporary file renamed over the last one). The trainings draw their batches from
generators seeded by (seed, step), so a resumed run takes the very steps an uninterrupted one
would have taken.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import DSMLabError


class Checkpointed:
    """`settings`: what else fixes the training (e.g. its delays), checked as the seed is."""

    def __init__(self, path: Path, seed: int, settings: dict | None = None) -> None:
        self.path, self.seed, self.settings = Path(path), seed, settings or {}

    def resume(self, modules: dict) -> tuple[int, list[dict]]:
        """Load the saved states into `modules` (name -> object with state_dict); returns the
        step it had reached and its log, or (0, []) for a fresh start."""
        if not self.path.is_file():
            return 0, []
        saved = torch.load(self.path, weights_only=False, mmap=True)  # every process reads it
        if saved["seed"] != self.seed:
            raise DSMLabError(
                f"{self.path} holds a training with seed {saved['seed']}, not {self.seed}: "
                "delete it to start again, or resume with its seed"
            )
        theirs, ours = _set(saved.get("settings", self.settings)), _set(self.settings)
        if theirs != ours:
            names = list(theirs) + [k for k in ours if k not in theirs]
            changed = "; ".join(
                f"{k}: {theirs.get(k)} there, {ours.get(k)} here"
                for k in names
                if theirs.get(k) != ours.get(k)
            )
            raise DSMLabError(
                f"{self.path} holds a training with other settings ({changed}): delete it to "
                "start again, or resume with its settings"
            )
        for name, module in modules.items():
            module.load_state_dict(saved["states"][name])
        return saved["step"], saved["log"]

    def save(self, modules: dict, step: int, log: list[dict], write: bool = True) -> None:
        """`write` False: only gather the states (a sharded training gathers them on every
        process and one process writes)."""
        states = {name: module.state_dict() for name, module in modules.items()}
        if not write:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        saved = {"states": states, "step": step, "log": list(log), "seed": self.seed}
        torch.save(saved | {"settings": self.settings}, tmp)
        tmp.replace(self.path)


def _set(settings: dict) -> dict:
    """The settings that are set: an option added since a training was saved (None) does not
    stop it resuming."""
    return {k: v for k, v in settings.items() if v is not None}
