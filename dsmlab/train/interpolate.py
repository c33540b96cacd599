"""A fine-tuned checkpoint moved back toward its base along the straight line between their
weights (WiSE-FT, Wortsman et al. 2022): LM weights = base + alpha x (tuned - base).

    python -m dsmlab.train.interpolate --base synth-d4 --tuned runs/ft/festival --alpha 0.5 \
        --out runs/ft/festival-0.5

Why: fine-tuning on a new domain forgets the old one, and the line bends the right way:
on the festival study (FINETUNE.md), half way kept about three quarters of the new domain's
gain for about a quarter of the old domain's loss. It costs no training: write a few alphas
and score each with the eval scripts.

Only the LM is interpolated. Mimi and the text tokenizer must be the same in both (fine-tuning
keeps them), the LMs of one architecture, both at the same delay (half way between two
timings is neither; a delay-conditioned pair must serve the same delays), and where the tuned
folder has a finetune.json, the base must be the one it names. Written in float32 (a bf16
checkpoint doubles in size), in the layout every loader reads, with interpolation.json: both
models' fingerprints and alpha; never over either checkpoint.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from ..checkpoint import WEIGHTS_NAME, model_identity, write_checkpoint
from ..cli import ArgumentParser, probability, run_cli
from ..errors import UsageError
from ..loading import load
from ..model import DSMModel

ABOUT_NAME = "interpolation.json"


def interpolate(base: DSMModel, tuned: DSMModel, alpha: float) -> DSMModel:
    """`tuned`, its LM's weights set to base + alpha x (tuned - base) in place (computed in
    float32, stored in each weight's own dtype); 0 gives the base, 1 the tuned model."""
    check_pair(base, tuned)
    start = base.lm.state_dict()
    with torch.no_grad():
        for name, weight in tuned.lm.state_dict().items():
            if weight.is_floating_point():
                begin = start[name].to(device=weight.device, dtype=torch.float32)
                weight.copy_(torch.lerp(begin, weight.float(), alpha))
    return tuned


def check_pair(base: DSMModel, tuned: DSMModel) -> None:
    """Refuse, in one line, two models whose weights are not points of one model."""
    pair = f"{base.name} and {tuned.name}"
    for part, a, b in (("LM", base.lm, tuned.lm), ("Mimi", base.mimi, tuned.mimi)):
        if different := _first_difference(a.state_dict(), b.state_dict()):
            raise UsageError(
                f"{pair} are not one {part} architecture ({different}): interpolate a "
                "fine-tuned checkpoint with the checkpoint it was tuned from"
            )
    if base.delays_s or tuned.delays_s:  # conditioned: the delays served, not the default
        if base.delays_s != tuned.delays_s:
            raise UsageError(
                f"{pair} serve different delays ({base.delays_s}, {tuned.delays_s}): "
                "interpolate a fine-tuned checkpoint with the checkpoint it was tuned from"
            )
    elif base.delay_s != tuned.delay_s:
        raise UsageError(
            f"{pair} write text at different delays ({base.delay_s:g} s, {tuned.delay_s:g} s): "
            "half way between two timings is neither"
        )
    mimi, other = base.mimi.state_dict(), tuned.mimi.state_dict()
    same_mimi = all(torch.equal(weight, other[name]) for name, weight in mimi.items())
    same_tokenizer = (
        base.tokenizer.serialized_model_proto() == tuned.tokenizer.serialized_model_proto()
    )
    if not (same_mimi and same_tokenizer):
        raise UsageError(
            f"{pair} do not share their Mimi and text tokenizer: only the LM is interpolated"
        )


def check_base(base: DSMModel, tuned: DSMModel) -> None:
    """Where `tuned` says what it was tuned from (finetune.json), refuse another base."""
    report = Path(tuned.files["config.json"]).parent / "finetune.json"
    if not report.is_file():
        return
    recorded = json.loads(report.read_text())["base"]["files"].get(WEIGHTS_NAME)
    actual = model_identity(base)["files"].get(WEIGHTS_NAME)
    if recorded != actual:
        raise UsageError(
            f"{tuned.name} was tuned from weights {recorded} ({report}), {base.name} has "
            f"{actual}: interpolate toward the checkpoint it was tuned from"
        )


def _first_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> str:
    """The first weight one state has and the other lacks or shapes otherwise; '' if none."""
    for name in list(a) + [n for n in b if n not in a]:
        if name not in a or name not in b:
            return f"{name} only in {'the second' if name in b else 'the first'}"
        if a[name].shape != b[name].shape:
            return f"{name}: {tuple(a[name].shape)} against {tuple(b[name].shape)}"
    return ""


def _check_out(out: Path, base: DSMModel, tuned: DSMModel) -> None:
    """Write only to a new folder or over an earlier interpolation, never over a source."""
    sources = {Path(m.files["config.json"]).parent.resolve() for m in (base, tuned)}
    if out.resolve() in sources:
        raise UsageError(f"--out {out} is one of the two checkpoints: choose a new folder")
    if out.is_dir() and any(out.iterdir()) and not (out / ABOUT_NAME).is_file():
        raise UsageError(f"--out {out} holds something else: choose a new or empty folder")


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
        check_base(base, tuned)
        _check_out(args.out, base, tuned)
        about = {
            "base": model_identity(base),
            "tuned": model_identity(tuned),
            "alpha": args.alpha,
        }
        model = interpolate(base, tuned, args.alpha)
        print(write_checkpoint(model, args.out, reports={ABOUT_NAME: about}))
        return 0

    return run_cli(body, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
