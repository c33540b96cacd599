"""Moving a model to another delay: which delays it can be tuned at, the ramp between, and the
tuned model written at its new delay.

Tuning a model straight at a new delay asks it, from the first step, to write every word
several frames away from where it learnt to: full fine-tuning first learns the new padding and
forgets the words (FINETUNE.md). A ramp moves the text stream one frame at a time over the
first steps, so each step's target is at most a frame from what the model already writes.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from ..conditioning import check_delay
from ..errors import UsageError
from ..model import DSMModel


def checked_delay(model, delay_s: float | None, ramp_steps: int = 0) -> float:
    """The delay to tune `model` (a DSMModel) at: its own by default; a new one must be whole
    frames and inside the LM's attention context; a delay-conditioned model keeps to its delays
    (and has no delay to ramp from: `ramp_steps` must be 0)."""
    if ramp_steps and model.delays_s:
        raise UsageError("--delay-ramp moves a fixed-delay model; this one serves its delays")
    if delay_s is None:
        return model.delay_s
    if model.delays_s:
        return check_delay(delay_s, model.delays_s, model.name, conditioned=True)
    frames = delay_s * model.frame_rate
    frame_s = 1 / model.frame_rate
    if abs(frames - round(frames)) > 1e-3:
        raise UsageError(
            f"--delay {delay_s:g} is not a whole number of {frame_s:g} s frames; "
            f"use e.g. {round(frames) * frame_s:g}"
        )
    if round(frames) >= model.lm.context:
        raise UsageError(
            f"--delay {delay_s:g} s is past the attention context of {model.name} "
            f"({model.lm.context * frame_s:g} s): it would write words it can no longer hear"
        )
    return round(frames) * frame_s


def ramped_frames(step: int, ramp_steps: int, start: int, end: int) -> int:
    """The text stream's delay in frames at training step `step` (1-based): from `start` (the
    model's own) to `end` in even steps over the first `ramp_steps`, then `end`."""
    if step >= ramp_steps:
        return end
    return start + round((end - start) * step / ramp_steps)


def tuned_model(base: DSMModel, lm: torch.nn.Module, delay_s: float, out: Path) -> DSMModel:
    """`base` with `lm`, at `delay_s` (config.json's `audio_delay_seconds`), named after `out`."""
    config = copy.deepcopy(base.config)
    config["stt_config"]["audio_delay_seconds"] = delay_s
    named = {"name": out.name, "source": str(out), "mimi_config": base.mimi_config}
    return DSMModel.from_parts(config, base.mimi, lm, base.tokenizer, **named).at_delay(delay_s)
