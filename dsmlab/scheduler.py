"""The offline scheduler: many streams known in advance, through the B slots of a `Stepper`.

Continuous batching: a stream takes a free slot, and a finished stream's slot is reset and
refilled at once, so little compute goes to padding. Every stream gets the tokens it would get
alone. The audio is known in advance, so Mimi may encode `encode_ahead` frames per call; slots
are then refilled every `encode_ahead` steps. Only the stepper's public methods are used, and
tokens stay on the device until a stream ends.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from .errors import UsageError
from .stepper import Stepper

# Frames per Mimi call. 1 makes the calls Kyutai's loop makes, so the codes are the same by
# construction. More is faster on CPU, but Mimi's convolutions then see other shapes and may
# round differently (eval.bench --encode-ahead measures both).
ENCODE_AHEAD = 1


@dataclass
class StreamResult:
    """One finished stream: a token (and VAD probability) per frame fed."""

    key: Hashable
    tokens: np.ndarray  # int64 [frames]
    end_of_turn: np.ndarray | None  # float32 [frames]
    token_probs: np.ndarray  # float32 [frames]: the probability of each token as decoded


@dataclass
class _Slot:
    key: Hashable
    pcm: torch.Tensor
    first_step: int  # the stepper's step count when the stream started
    frames: int  # the stream's length in frames
    frames_done: int = 0

    @property
    def frames_left(self) -> int:
        return self.frames - self.frames_done


class _History:
    """Per-step outputs ([B] tensors) kept from the oldest running stream's first step on."""

    def __init__(self, start: int) -> None:
        self.rows: list[torch.Tensor] = []
        self.start = start  # the stepper's step count at rows[0]

    def append(self, row: torch.Tensor) -> None:
        self.rows.append(row)

    def column(self, slot: int, first_step: int, frames: int) -> torch.Tensor:
        begin = first_step - self.start
        return torch.stack(self.rows[begin : begin + frames])[:, slot]

    def trim(self, oldest_needed: int) -> None:
        drop = oldest_needed - self.start
        if drop > 0:
            del self.rows[:drop]
            self.start += drop


def run_streams(
    stepper: Stepper,
    streams: Iterable[tuple[Hashable, torch.Tensor]],
    encode_ahead: int = ENCODE_AHEAD,
) -> Iterator[StreamResult]:
    """Feed each (key, pcm) stream through a free slot of a running `stepper`; yield each as
    it finishes. `pcm` is 1-D audio at the model's rate, a positive multiple of the frame size
    long (see `transcribe.pad_for_model`)."""
    if encode_ahead < 1:
        raise UsageError(f"encode_ahead must be at least 1 frame, got {encode_ahead}")
    model, batch = stepper.model, stepper.batch_size
    frame_size = model.frame_size
    pending = iter(streams)
    slots: list[_Slot | None] = [None] * batch
    tokens, end_of_turn = _History(stepper.steps), _History(stepper.steps)
    token_probs = _History(stepper.steps)
    exhausted = False
    while True:
        fresh = torch.zeros(batch, dtype=torch.bool)
        for s in range(batch):
            if slots[s] is None and not exhausted:
                item = next(pending, None)
                if item is None:
                    exhausted = True
                    continue
                key, pcm = _checked(item, frame_size, model.device)
                slots[s] = _Slot(key, pcm, stepper.steps, pcm.numel() // frame_size)
                fresh[s] = True
        if fresh.any():
            stepper.reset(fresh)
        occupied = torch.tensor([slot is not None for slot in slots])
        if not occupied.any():
            return
        chunk = torch.zeros(batch, 1, encode_ahead * frame_size, device=model.device)
        for s, slot in enumerate(slots):
            if slot is not None:
                begin = slot.frames_done * frame_size
                audio = slot.pcm[begin : begin + encode_ahead * frame_size]
                chunk[s, 0, : audio.numel()] = audio
        codes = stepper.encode(chunk, occupied)
        for k in range(encode_ahead):
            active = torch.tensor([slot is not None and slot.frames_left > 0 for slot in slots])
            if not active.any():
                break
            step_tokens, step_eot = stepper.step_codes(codes[:, :, k : k + 1], active)
            tokens.append(step_tokens)
            token_probs.append(stepper.token_probs)
            if step_eot is not None:
                end_of_turn.append(step_eot)
            for s, slot in enumerate(slots):
                if slot is not None and active[s]:
                    slot.frames_done += 1
                    if slot.frames_left == 0:
                        eot = end_of_turn if step_eot is not None else None
                        yield _result(slot, s, tokens, token_probs, eot)
                        slots[s] = None
        oldest = min((slot.first_step for slot in slots if slot is not None), default=stepper.steps)
        for history in (tokens, token_probs, end_of_turn):
            history.trim(oldest)


def _checked(
    item: tuple[Hashable, torch.Tensor], frame_size: int, device: torch.device
) -> tuple[Hashable, torch.Tensor]:
    key, pcm = item
    if pcm.ndim != 1 or pcm.numel() == 0 or pcm.numel() % frame_size:
        raise UsageError(
            f"stream {key!r}: expected 1-D audio of a positive multiple of {frame_size} "
            f"samples, got shape {tuple(pcm.shape)}"
        )
    return key, pcm.to(device)


def _result(
    slot: _Slot, s: int, tokens: _History, token_probs: _History, end_of_turn: _History | None
) -> StreamResult:
    def column(history: _History) -> np.ndarray:
        return history.column(s, slot.first_step, slot.frames).float().cpu().numpy()

    return StreamResult(
        slot.key,
        tokens.column(s, slot.first_step, slot.frames).cpu().numpy(),
        None if end_of_turn is None else column(end_of_turn),
        column(token_probs),
    )
