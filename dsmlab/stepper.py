"""The stepper: the streaming state of B slots (Mimi and the LM), advanced one frame at a time.

Each slot holds one stream. A slot left out of a step keeps its state (moshi's exec mask), and
`reset` starts a new stream in chosen slots, as moshi-server's batched ASR does. Mimi and the
LM each keep their own mask, set only through moshi's public `set_exec_mask`, so encoding
ahead (Mimi) and stepping (the LM) may mask different slots.

    with dsmlab.Stepper(model, batch_size=2) as stepper:
        for frames in chunks:  # [2, 1920] at 24 kHz
            tokens, end_of_turn = stepper.step_tensors(frames)
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass

import numpy as np
import torch
from moshi.models import LMGen
from moshi.utils.compile import no_compile

from .errors import UsageError
from .model import DSMModel
from .vad import END_OF_TURN_HEAD

INACTIVE_TOKEN = -2  # what an inactive slot's token reads on a step (moshi's ungenerated id)


@dataclass
class StepOutput:
    """What one slot produced on one step."""

    slot: int
    frame: int  # index of the frame in the slot's stream, from 0
    token: int
    time: float  # stream seconds fed to the slot, this frame included
    end_of_turn: float | None  # VAD end-of-turn probability, when the model has the heads


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


def flush_frames(delay_s: float, frame_rate: float) -> int:
    """Silent frames that push every pending word out: ceil(delay / frame) + 1."""
    return math.ceil(round(delay_s * frame_rate, 6)) + 1


class Stepper:
    """Batched frame-by-frame DSM inference: `with Stepper(model, batch_size) as stepper`."""

    def __init__(self, model: DSMModel, batch_size: int, temperature: float = 0.0):
        if batch_size < 1:
            raise UsageError(f"batch size must be at least 1, got {batch_size}")
        if not temperature >= 0:
            raise UsageError(f"temperature must be >= 0, got {temperature}")
        self.model = model
        self.batch_size = batch_size
        # Greedy text decoding by default, as Kyutai evaluates; temperature > 0 samples.
        self.lm_gen = LMGen(
            model.lm,
            use_sampling=temperature > 0,
            temp=temperature,
            temp_text=temperature,
            on_text_logits_hook=self._keep_text_probs,
            condition_tensors=model.condition_tensors(batch_size),
        )
        self._text_probs: torch.Tensor | None = None  # [B, text vocabulary] of the last step
        # the probability of each slot's text token on the last step ([B], on the device)
        self.token_probs = torch.zeros(batch_size)
        # every extra head's class-0 probability on the last step ([B, heads]; VAD models)
        self.head_probs: torch.Tensor | None = None
        self.frames_fed = np.zeros(batch_size, dtype=np.int64)  # LM steps per slot since reset
        self.steps = 0  # batched LM steps in this streaming session
        self._mimi_mask = torch.ones(batch_size, dtype=torch.bool)  # as moshi's state holds it
        self._lm_mask = torch.ones(batch_size, dtype=torch.bool)
        self._stack: ExitStack | None = None

    def __enter__(self) -> Stepper:
        self._stack = ExitStack()
        if self.model.device.type == "cpu":
            # moshi torch.compiles a few functions on first use: on CPU that costs ~9 s per
            # process and runs slower than eager afterwards (measured on the tiny model).
            self._stack.enter_context(no_compile())
        self._stack.enter_context(self.model.mimi.streaming(self.batch_size))
        self._stack.enter_context(self.lm_gen.streaming(self.batch_size))
        self.frames_fed[:] = 0
        self.steps = 0
        self._mimi_mask[:] = True
        self._lm_mask[:] = True
        return self

    def __exit__(self, *exc) -> None:
        assert self._stack is not None
        self._stack.close()
        self._stack = None

    @torch.no_grad()
    def encode(self, audio: torch.Tensor, active: torch.Tensor | None = None) -> torch.Tensor:
        """Mimi codes [B, n_q, K] of the next K frames ([B, 1, K * frame_size]) of the active
        slots; the others keep their Mimi state (their codes are meaningless).

        K = 1 is `mimi.encode`, the call of Kyutai's loop. K > 1 runs Mimi's convolutional
        encoder once over the K frames (causal, with streaming state: only the call size
        changes) and its transformer frame by frame: its ring KV cache holds exactly its
        context, so a K-frame call would let early frames see fewer past steps than one frame
        per call does. Same codes in exact arithmetic; moshi has no public call for this, so it
        composes Mimi's public submodules as `MimiModel._encode_to_unquantized_latent` does,
        and tests/test_stepper.py holds it to `mimi.encode`, frame by frame.
        """
        self._check_running()
        frames = audio.shape[-1] // self.model.frame_size
        if audio.ndim == 2:
            audio = audio[:, None]
        if tuple(audio.shape) != (self.batch_size, 1, frames * self.model.frame_size) or not frames:
            raise UsageError(
                f"expected audio of shape [{self.batch_size}, 1, K * {self.model.frame_size}], "
                f"got {list(audio.shape)}"
            )
        self._set_mimi_mask(self._mask(active))
        audio = audio.to(device=self.model.device, dtype=torch.float32)
        mimi = self.model.mimi
        if frames == 1:
            return mimi.encode(audio)
        latent = mimi.encoder(audio)
        per_frame = latent.shape[-1] // frames
        codes = []
        for start in range(0, latent.shape[-1], per_frame):
            frame = latent[..., start : start + per_frame]
            if mimi.encoder_transformer is not None:
                (frame,) = mimi.encoder_transformer(frame)
            if hasattr(mimi, "downsample"):  # encoder rate -> frame rate (released Mimi: 2:1)
                frame = mimi.downsample(frame)
            codes.append(mimi.quantizer.encode(frame))
        return torch.cat(codes, dim=-1)

    @torch.no_grad()
    def step_codes(
        self, codes: torch.Tensor, active: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One LM step on one frame of codes ([B, n_q, 1]) for the active slots; no host sync.

        Returns the text token per slot ([B], on the device; INACTIVE_TOKEN for inactive slots)
        and the end-of-turn probabilities ([B]) when the model has VAD heads, else None.
        """
        self._check_running()
        active = self._mask(active)
        self._set_lm_mask(active)
        end_of_turn = None
        if self.model.has_vad:
            out, heads = self.lm_gen.step_with_extra_heads(codes)
            self.head_probs = torch.stack([head[:, 0, 0] for head in heads], dim=1)
            end_of_turn = self.head_probs[:, END_OF_TURN_HEAD]
        else:
            out = self.lm_gen.step(codes)
        self.frames_fed += active.numpy()
        self.steps += 1
        tokens = out[:, 0, 0]
        if self._text_probs is not None:
            chosen = tokens.clamp(min=0)[:, None].to(self._text_probs.device)
            self.token_probs = self._text_probs.gather(1, chosen)[:, 0]
        return tokens, end_of_turn

    def step_tensors(
        self, frames: torch.Tensor, active: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Advance the active slots by one frame ([B, frame_size] or [B, 1, frame_size] of
        24 kHz audio): `encode`, then `step_codes`."""
        if frames.shape[-1] != self.model.frame_size:
            raise UsageError(
                f"expected frames of shape [{self.batch_size}, 1, {self.model.frame_size}] "
                f"(batch, channel, samples), got {list(frames.shape)}"
            )
        return self.step_codes(self.encode(frames, active), active)

    def step(self, frames: torch.Tensor, active: torch.Tensor | None = None) -> list[StepOutput]:
        """`step_tensors`, brought to the host: one `StepOutput` per active slot."""
        active = self._mask(active)
        tokens, end_of_turn = self.step_tensors(frames, active)
        tokens_cpu = tokens.cpu().tolist()
        eot_cpu = end_of_turn.float().cpu().tolist() if end_of_turn is not None else None
        outputs = []
        for slot in torch.nonzero(active).flatten().tolist():
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

    def _keep_text_probs(self, logits: torch.Tensor) -> None:
        """moshi's text-logits hook ([B, 1, 1, vocabulary]): keep the step's probabilities,
        read in `step_codes` once the token is chosen (the word confidences)."""
        self._text_probs = logits[:, 0, 0].float().softmax(-1)

    def reset(self, slots: torch.Tensor) -> None:
        """Start fresh streams in the slots of the bool mask `slots` (others are untouched)."""
        self._check_running()
        slots = slots.to(dtype=torch.bool, device="cpu")
        self.model.mimi.reset_streaming(slots.to(self.model.device))
        self.lm_gen.reset_streaming(slots.to(self.model.device))
        # moshi's reset also re-activates the slots it resets, in both models
        self._mimi_mask |= slots
        self._lm_mask |= slots
        self.frames_fed[slots.numpy()] = 0

    def flush(self, slots: Sequence[int]) -> FlushResult:
        """The flush trick: push `flush_frames(delay)` silent frames into `slots` at once.

        Other slots are masked out meanwhile and keep their state; both masks are restored
        after. Syncs after every step to time it, so `step_wall_s` is the wall time a caller
        waits for each flushed token.
        """
        slots = [int(s) for s in slots]
        n = flush_frames(self.model.delay_s, self.model.frame_rate)
        mask = torch.zeros(self.batch_size, dtype=torch.bool)
        mask[slots] = True
        previous = self._mimi_mask.clone(), self._lm_mask.clone()
        silence = torch.zeros(self.batch_size, 1, self.model.frame_size, device=self.model.device)
        tokens, walls, times = [], [], []
        _sync(self.model.device)
        start = time.perf_counter()
        for _ in range(n):
            step_tokens, _ = self.step_tensors(silence, mask)
            tokens.append(step_tokens[slots].cpu())  # syncs
            walls.append(time.perf_counter() - start)
            times.append(self.frames_fed[slots] / self.model.frame_rate)
        self._set_mimi_mask(previous[0])
        self._set_lm_mask(previous[1])
        return FlushResult(
            slots=slots,
            frames=n,
            tokens=torch.stack(tokens, dim=1).numpy(),
            step_wall_s=walls,
            stream_time=np.stack(times, axis=1),
            padding_id=self.model.padding_id,
        )

    def _mask(self, active: torch.Tensor | None) -> torch.Tensor:
        if active is None:
            return torch.ones(self.batch_size, dtype=torch.bool)
        active = torch.as_tensor(active).to(dtype=torch.bool, device="cpu")
        if tuple(active.shape) != (self.batch_size,):
            raise UsageError(
                f"expected an active mask of shape [{self.batch_size}], got {list(active.shape)}"
            )
        return active

    def _set_mimi_mask(self, mask: torch.Tensor) -> None:
        if not torch.equal(mask, self._mimi_mask):
            self.model.mimi.set_exec_mask(mask.to(self.model.device))
            self._mimi_mask = mask.clone()

    def _set_lm_mask(self, mask: torch.Tensor) -> None:
        if not torch.equal(mask, self._lm_mask):
            self.lm_gen.set_exec_mask(mask.to(self.model.device))
            self._lm_mask = mask.clone()

    def _check_running(self) -> None:
        if self._stack is None:
            raise UsageError("the stepper is not running; use `with Stepper(model, B) as s`")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
