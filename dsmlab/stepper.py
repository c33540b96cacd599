"""The streaming engine: B slots stepped together, frame by frame, on moshi's streaming state.

Each slot holds one stream. A slot whose stream is over is masked out (moshi's exec mask: its
state does not move) and a new stream can take it after a per-slot reset, as moshi-server's
batched ASR does. `Engine.run` uses this for continuous batching of many offline inputs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Hashable, Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from moshi.models import LMGen
from moshi.utils.compile import no_compile

from .errors import DSMLabError
from .vad import END_OF_TURN_HEAD

if TYPE_CHECKING:
    from .model import DSMModel


@dataclass
class StepOutput:
    """What one slot produced on one step."""

    slot: int
    frame: int  # index of the frame in the slot's stream, from 0
    token: int
    time: float  # stream seconds fed to the slot, this frame included
    end_of_turn: float | None  # VAD end-of-turn probability, when the model has the heads


@dataclass
class StreamResult:
    """One finished stream of `Engine.run`: a token (and VAD probability) per frame fed."""

    key: Hashable
    tokens: np.ndarray  # int64 [frames]
    end_of_turn: np.ndarray | None  # float32 [frames]


@dataclass
class FlushResult:
    """The flush trick on some slots: silence pushed at once instead of in real time."""

    slots: list[int]
    frames: int  # silent frames pushed
    tokens: np.ndarray  # int64 [len(slots), frames]
    step_wall_s: list[float]  # wall time from the flush's start to the end of each step
    stream_time: np.ndarray  # [len(slots), frames]: stream seconds fed after each step
    padding_id: int

    @property
    def wall_s(self) -> float:
        return self.step_wall_s[-1]

    def last_text_step(self, row: int = 0) -> int | None:
        """The flush step at which slot `slots[row]`'s last text token came out, if any."""
        steps = np.nonzero(self.tokens[row] > self.padding_id)[0]
        return int(steps[-1]) if len(steps) else None

    def last_text(self, row: int = 0) -> tuple[float, float] | None:
        """(stream time, wall seconds into the flush) at which the last text token came out."""
        step = self.last_text_step(row)
        if step is None:
            return None
        return float(self.stream_time[row, step]), self.step_wall_s[step]


# Frames per Mimi call in `Engine.run`. 1 makes the calls Kyutai's loop makes, so the codes are
# the same by construction. More is faster on CPU (4: 1.08x at batch 1, 1.18x at batch 8 on the
# bundled models), but the convolutions then see other shapes and may round differently: 2 and
# 8 changed 2.4% of one stream's tokens at batch 1 (eval.bench --encode-ahead measures both).
ENCODE_AHEAD = 1


def flush_frames(delay_s: float, frame_rate: float = 12.5) -> int:
    """Silent frames that push every pending word out: ceil(delay / frame) + 1."""
    return math.ceil(round(delay_s * frame_rate, 6)) + 1


class Engine:
    """Batched frame-by-frame DSM inference. Use as `with model.streaming(batch_size) as engine`."""

    def __init__(self, model: DSMModel, batch_size: int, temperature: float = 0.0):
        if batch_size < 1:
            raise DSMLabError(f"batch size must be at least 1, got {batch_size}")
        if temperature < 0:
            raise DSMLabError(f"temperature must be >= 0, got {temperature}")
        self.model = model
        self.batch_size = batch_size
        # Greedy text decoding by default, as Kyutai evaluates; temperature > 0 samples.
        self.lm_gen = LMGen(
            model.lm, use_sampling=temperature > 0, temp=temperature, temp_text=temperature
        )
        self.frames_fed = np.zeros(batch_size, dtype=np.int64)
        self.steps = 0  # batched steps run in this streaming session
        self._active = torch.ones(batch_size, dtype=torch.bool)
        self._stack: ExitStack | None = None

    def __enter__(self) -> Engine:
        self._stack = ExitStack()
        if self.model.device.type == "cpu":
            # moshi torch.compiles a few functions on first use: on CPU that costs ~9 s per
            # process and runs slower than eager afterwards (measured on the tiny model).
            self._stack.enter_context(no_compile())
        self._stack.enter_context(self.model.mimi.streaming(self.batch_size))
        self._stack.enter_context(self.lm_gen.streaming(self.batch_size))
        self.frames_fed[:] = 0
        self.steps = 0
        self._active[:] = True
        return self

    def __exit__(self, *exc) -> None:
        assert self._stack is not None
        self._stack.close()
        self._stack = None

    @torch.no_grad()
    def step_tensors(
        self, frames: torch.Tensor, active: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Advance the active slots by one frame; no host sync.

        `frames` is [B, 1920] or [B, 1, 1920] of 24 kHz audio; `active` a bool [B] mask (all by
        default). Returns the text token per slot ([B], on the device; -2 for inactive slots) and
        the end-of-turn probabilities ([B]) when the model has VAD heads, else None.
        """
        if self._stack is None:
            raise DSMLabError("the engine is not running; use `with model.streaming(B) as engine`")
        frames = self._check_frames(frames)
        if active is None:
            active = torch.ones(self.batch_size, dtype=torch.bool)
        active = active.to(dtype=torch.bool, device="cpu")
        if not torch.equal(active, self._active):
            self._set_active(active)
        return self._step_codes(self.model.mimi.encode(frames), active)

    def _step_codes(
        self, codes: torch.Tensor, active: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The LM's step on one frame of Mimi codes ([B, n_q, 1]) for the `active` slots."""
        end_of_turn = None
        if self.model.has_vad:
            out, heads = self.lm_gen.step_with_extra_heads(codes)
            end_of_turn = heads[END_OF_TURN_HEAD][:, 0, 0]
        else:
            out = self.lm_gen.step(codes)
        self.frames_fed += active.numpy()
        self.steps += 1
        return out[:, 0, 0], end_of_turn

    def step(self, frames: torch.Tensor, active: torch.Tensor | None = None) -> list[StepOutput]:
        """`step_tensors`, brought to the host: one `StepOutput` per active slot."""
        tokens, end_of_turn = self.step_tensors(frames, active)
        tokens_cpu = tokens.cpu().tolist()
        eot_cpu = end_of_turn.float().cpu().tolist() if end_of_turn is not None else None
        slots = range(self.batch_size) if active is None else torch.nonzero(active).flatten()
        outputs = []
        for slot in (int(s) for s in slots):
            frame = int(self.frames_fed[slot]) - 1
            outputs.append(
                StepOutput(
                    slot=slot,
                    frame=frame,
                    token=tokens_cpu[slot],
                    time=(frame + 1) / self.model.frame_rate,
                    end_of_turn=eot_cpu[slot] if eot_cpu is not None else None,
                )
            )
        return outputs

    def reset(self, slots: torch.Tensor) -> None:
        """Start fresh streams in the slots of the bool mask `slots` (others are untouched)."""
        slots = slots.to(dtype=torch.bool, device="cpu")
        self.model.mimi.reset_streaming(slots.to(self.model.device))
        self.lm_gen.reset_streaming(slots.to(self.model.device))
        self._active |= slots  # moshi's reset re-activates the slots it resets
        self.frames_fed[slots.numpy()] = 0

    def flush(self, slots: Sequence[int]) -> FlushResult:
        """The flush trick: push `flush_frames(delay)` silent frames into `slots` at once.

        Other slots are masked out meanwhile and keep their state. Syncs after every step to
        time it, so `step_wall_s` is the wall time a caller waits for each flushed token.
        """
        slots = [int(s) for s in slots]
        n = flush_frames(self.model.delay_s, self.model.frame_rate)
        mask = torch.zeros(self.batch_size, dtype=torch.bool)
        mask[slots] = True
        previous = self._active.clone()
        silence = torch.zeros(self.batch_size, 1, self.model.frame_size, device=self.model.device)
        tokens, walls, times = [], [], []
        _sync(self.model.device)
        start = time.perf_counter()
        for _ in range(n):
            step_tokens, _ = self.step_tensors(silence, mask)
            tokens.append(step_tokens[slots].cpu())  # syncs
            walls.append(time.perf_counter() - start)
            times.append(self.frames_fed[slots] / self.model.frame_rate)
        self._set_active(previous)
        return FlushResult(
            slots=slots,
            frames=n,
            tokens=torch.stack(tokens, dim=1).numpy(),
            step_wall_s=walls,
            stream_time=np.stack(times, axis=1),
            padding_id=self.model.padding_id,
        )

    def run(
        self, streams: Iterable[tuple[Hashable, torch.Tensor]], encode_ahead: int = ENCODE_AHEAD
    ) -> Iterator[StreamResult]:
        """Continuous batching: feed each (key, pcm) stream through a free slot, yield as done.

        `pcm` is 1-D 24 kHz audio whose length is a multiple of the frame size (see
        `transcribe.pad_for_model`). Every stream gets the tokens it would get alone. The audio
        is known in advance, so Mimi may encode `encode_ahead` frames per call (see
        ENCODE_AHEAD and `_encode_ahead`); slots are then refilled every `encode_ahead` steps.
        """
        if encode_ahead < 1:
            raise DSMLabError(f"encode_ahead must be at least 1 frame, got {encode_ahead}")
        pending = iter(streams)
        frame_size = self.model.frame_size
        slots: list[_Slot | None] = [None] * self.batch_size
        history: list[torch.Tensor] = []
        eot_history: list[torch.Tensor] = []
        exhausted = False
        while True:
            fresh = torch.zeros(self.batch_size, dtype=torch.bool)
            for s in range(self.batch_size):
                if slots[s] is None and not exhausted:
                    item = next(pending, None)
                    if item is None:
                        exhausted = True
                        continue
                    key, pcm = item
                    if pcm.ndim != 1 or pcm.numel() == 0 or pcm.numel() % frame_size:
                        raise DSMLabError(
                            f"stream {key!r}: expected 1-D audio of a positive multiple of "
                            f"{frame_size} samples, got shape {tuple(pcm.shape)}"
                        )
                    slots[s] = _Slot(
                        key, pcm.to(self.model.device), self.steps, pcm.numel() // frame_size
                    )
                    fresh[s] = True
            if fresh.any():
                self.reset(fresh)
            if all(slot is None for slot in slots):
                return
            chunk = torch.zeros(
                self.batch_size, 1, encode_ahead * frame_size, device=self.model.device
            )
            for s, slot in enumerate(slots):
                if slot is not None:
                    start = slot.frames_done * frame_size
                    audio = slot.pcm[start : start + encode_ahead * frame_size]
                    chunk[s, 0, : audio.numel()] = audio
            codes = self._encode_ahead(chunk)
            for k in range(encode_ahead):
                active = torch.tensor([slot is not None and slot.frames_left > 0 for slot in slots])
                if not active.any():
                    break
                if not torch.equal(active, self._active):
                    self._set_active(active, mimi=False)
                tokens, end_of_turn = self._step_codes(codes[:, :, k : k + 1], active)
                history.append(tokens)
                if end_of_turn is not None:
                    eot_history.append(end_of_turn)
                for s, slot in enumerate(slots):
                    if slot is not None and active[s]:
                        slot.frames_done += 1
                        if slot.frames_left == 0:
                            yield self._collect(slot, s, history, eot_history)
                            slots[s] = None
            oldest = min((x.first_step for x in slots if x is not None), default=self.steps)
            # Only history still needed by a running stream is kept.
            kept_from = self.steps - len(history)
            if oldest - kept_from > 256:
                del history[: oldest - kept_from]
                del eot_history[: oldest - kept_from]

    @torch.no_grad()
    def _encode_ahead(self, chunk: torch.Tensor) -> torch.Tensor:
        """Mimi codes [B, n_q, K] of K frames [B, 1, K * 1920], in every slot, equal to K
        calls of `mimi.encode` on one frame each: MimiModel._encode_to_unquantized_latent with
        its SEANet encoder run once over the K frames (a causal conv stack with streaming
        state, so only the call size changes) and its transformer, whose ring KV cache holds
        exactly its context, kept at one frame per call. Equal codes in exact arithmetic; in
        floating point the convolutions may round differently (see ENCODE_AHEAD)."""
        mimi = self.model.mimi
        state = mimi._streaming_state
        masked = not bool(state.exec_mask.all())
        if masked:  # encode in every slot: an idle slot's state is reset before it is used
            mimi.set_exec_mask(torch.ones_like(state.exec_mask))
        emb = state.graphed_encoder(chunk).clone()
        per_frame = emb.shape[-1] // (chunk.shape[-1] // self.model.frame_size)
        codes = []
        for start in range(0, emb.shape[-1], per_frame):
            frame = emb[..., start : start + per_frame]
            if mimi.encoder_transformer is not None:
                (frame,) = state.graphed_tr_enc(frame)
            codes.append(mimi.quantizer.encode(mimi._to_framerate(frame)))
        if masked:
            mimi.set_exec_mask(self._active.to(self.model.device))
        return torch.cat(codes, dim=-1)

    def _collect(
        self, slot: _Slot, s: int, history: list[torch.Tensor], eot_history: list[torch.Tensor]
    ) -> StreamResult:
        n = slot.frames_done
        tokens = torch.stack(history[-n:])[:, s].cpu().numpy()
        eot = torch.stack(eot_history[-n:])[:, s].float().cpu().numpy() if eot_history else None
        return StreamResult(slot.key, tokens, eot)

    def _set_active(self, active: torch.Tensor, mimi: bool = True) -> None:
        device_mask = active.to(self.model.device)
        if mimi:
            self.model.mimi.set_exec_mask(device_mask)
        self.lm_gen.set_exec_mask(device_mask)
        self._active = active.clone()

    def _check_frames(self, frames: torch.Tensor) -> torch.Tensor:
        if frames.ndim == 2:
            frames = frames[:, None]
        expected = (self.batch_size, 1, self.model.frame_size)
        if tuple(frames.shape) != expected:
            raise DSMLabError(
                f"expected frames of shape {list(expected)} (batch, channel, samples), "
                f"got {list(frames.shape)}"
            )
        return frames.to(device=self.model.device, dtype=torch.float32)


@dataclass
class _Slot:
    key: Hashable
    pcm: torch.Tensor
    first_step: int
    frames: int  # the stream's length in frames
    frames_done: int = 0

    @property
    def frames_left(self) -> int:
        return self.frames - self.frames_done


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
