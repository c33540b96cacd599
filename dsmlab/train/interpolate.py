"""A fine-tuned checkpoint moved back toward its base along the straight line between their
weights (WiSE-FT, Wortsman et al. 2022): LM weights = base + alpha x (tuned - base).

    python -m dsmlab.train.interpolate --base synth-d4 --tuned runs/ft/festival --alpha 0.5 \
        --out runs/ft/festival-0.5

Why: fine-tuning on a new domain forgets the old one, and the points between the two
checkpoints trade the two domains better than the training run itself does: measured on the
festival study (FINETUNE.md), half way keeps two thirds of the gain and loses little of the old
domain. It costs no training: write a few alphas and score each with the eval scripts.

Only the LM is interpolated. Mimi and the text tokenizer must be the same in both (fine-tuning
keeps them), the LMs of one architecture, and both at the same delay (half way between two
timings is neither). Written in float32, in the layout every loader reads, with
interpolation.json: both models' fingerprints and alpha.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from ..checkpoint import model_identity, write_checkpoint
from ..cli import ArgumentParser, probability, run_cli
from ..errors import UsageError
from ..loading import load
from ..model import DSMModel


def interpolate(base: DSMModel, tuned: DSMModel, alpha: float) -> DSMModel:
    """`tuned`, its LM's weights set to base + alpha x (tuned - base) in place; 0 gives the
    base, 1 the tuned model."""
    check_pair(base, tuned)
    start = base.lm.state_dict()
    with torch.no_grad():
        for name, weight in tuned.lm.state_dict().items():
            if weight.is_floating_point():
                weight.copy_(torch.lerp(start[name].to(weight.dtype), weight, alpha))
    return tuned


def check_pair(base: DSMModel, tuned: DSMModel) -> None:
    """Refuse, in one line, two models whose weights are not points of one model."""
    pair = f"{base.name} and {tuned.name}"
    start, end = base.lm.state_dict(), tuned.lm.state_dict()
    if start.keys() != end.keys() or any(start[k].shape != end[k].shape for k in start):
        raise UsageError(
            f"{pair} are not one LM architecture: interpolate a fine-tuned checkpoint with "
            "the checkpoint it was tuned from"
        )
    if (base.delay_s, base.delays_s) != (tuned.delay_s, tuned.delays_s):
        raise UsageError(
            f"{pair} write text at different delays ({base.delay_s:g} s, {tuned.delay_s:g} s): "
            "half way between two timings is neither"
        )
    same_mimi = all(
        torch.equal(a, b)
        for a, b in zip(
            base.mimi.state_dict().values(), tuned.mimi.state_dict().values(), strict=True
        )
    )
    same_tokenizer = (
        base.tokenizer.serialized_model_proto() == tuned.tokenizer.serialized_model_proto()
    )
    if not (same_mimi and same_tokenizer):
        raise UsageError(
            f"{pair} do not share their Mimi and text tokenizer: only the LM is interpolated"
        )


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m dsmlab.train.interpolate", description=__doc__)
    parser.add_argument("--base", required=True, help="the checkpoint that was fine-tuned")
    parser.add_argument("--tuned", required=True, help="the fine-tuned checkpoint")
    parser.add_argument(
        "--alpha", type=probability, required=True, help="in (0, 1]: 1 is the tuned model"
    )
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    def body() -> int:
        base = load(args.base, device="cpu", dtype=torch.float32)
        tuned = load(args.tuned, device="cpu", dtype=torch.float32)
        about = {
            "base": model_identity(base),
            "tuned": model_identity(tuned),
            "alpha": args.alpha,
        }
        model = interpolate(base, tuned, args.alpha)
        print(write_checkpoint(model, args.out, reports={"interpolation.json": about}))
        return 0

    return run_cli(body, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
