"""Kyutai's plain inference loop, written out independently of dsmlab's engine: the reference
the engine's tokens must equal (scripts/stt_evaluate_on_dataset.py, one stream)."""

import torch
from moshi.models import LMGen


def kyutai_padding(pcm: torch.Tensor, model, margin_s: float = 0.5) -> torch.Tensor:
    left = int(model.prefix_s * 24000)
    right = int((model.delay_s + margin_s) * 24000)
    padded = torch.nn.functional.pad(pcm, (left, right))
    return torch.nn.functional.pad(padded, (0, -padded.numel() % 1920))


@torch.no_grad()
def plain_loop(model, padded: torch.Tensor, vad: bool = False):
    """Mimi streaming encode of each 80 ms frame, then a greedy LMGen.step."""
    lm_gen = LMGen(model.lm, temp=0, temp_text=0)
    tokens, end_of_turn = [], []
    with model.mimi.streaming(1), lm_gen.streaming(1):
        for offset in range(0, padded.numel(), 1920):
            codes = model.mimi.encode(padded[None, None, offset : offset + 1920])
            if vad:
                out, heads = lm_gen.step_with_extra_heads(codes)
                end_of_turn.append(float(heads[2][0, 0, 0]))
            else:
                out = lm_gen.step(codes)
            tokens.append(int(out[0, 0, 0]))
    return (tokens, end_of_turn) if vad else tokens
