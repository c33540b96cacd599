"""Delay conditioning: one model that serves several delays, the delay given at inference.

Kyutai's server passes a `conditioning_delay` to its STT models; moshi's LM has conditioners
for it. A delay-conditioned checkpoint declares a lookup-table conditioner named "delay" in
config.json, whose possible values are the delays it was trained for (seconds, as text), summed
into the LM's input at every step (moshi's fuser, "sum"). moshi's own loader builds it from that
config; `dsmlab.load("dir@0.64")` picks the delay, and the stepper hands moshi's `LMGen` the
condition tensors.
"""

from __future__ import annotations

from moshi.conditioners import ConditionAttributes

from .errors import DSMLabError, UsageError

DELAY_CONDITION = "delay"
CONDITION_DIM = 16  # the lookup table's width before moshi's projection to the LM's width


def delay_label(delay_s: float) -> str:
    """The condition's value for a delay: seconds, shortest decimal form ("0.64")."""
    return f"{round(delay_s, 4):g}"


def model_family(name: str) -> str:
    """The model behind a run's name: "dc" for a conditioned model's "dc@0.64", "" for a
    fixed-delay model (they form one family: one model per delay)."""
    return name.rpartition("@")[0]


def delay_conditioner(delays_s: list[float]) -> dict:
    """The config.json entries that make moshi build a delay conditioner for `delays_s`."""
    labels = [delay_label(d) for d in delays_s]
    lut = {"n_bins": len(labels), "dim": CONDITION_DIM, "tokenizer": "noop"}
    return {
        "conditioners": {
            DELAY_CONDITION: {"type": "lut", "lut": lut | {"possible_values": labels}}
        },
        "fuser": {"sum": [DELAY_CONDITION]},
    }


def same_delay(a: float, b: float) -> bool:
    """Two delays are the same to the nearest millisecond (configs write them rounded)."""
    return abs(a - b) < 5e-4


def conditioned_delays(config: dict) -> list[float]:
    """The delays a checkpoint serves through its delay conditioner; [] for a fixed delay."""
    conditioner = (config.get("conditioners") or {}).get(DELAY_CONDITION)
    if not conditioner:
        return []
    try:
        return [float(v) for v in conditioner["lut"]["possible_values"]]
    except (KeyError, TypeError, ValueError):
        raise DSMLabError(
            'config.json: the "delay" conditioner must be {"type": "lut", "lut": '
            '{"possible_values": ["0.16", ...], ...}} (delays in seconds)'
        ) from None


def check_delay(delay_s: float, delays_s: list[float], name: str, *, conditioned: bool) -> float:
    """`delay_s` if the model serves it (to the nearest millisecond), else a one-line error."""
    for served in delays_s:
        if same_delay(served, delay_s):
            return served
    choices = ", ".join(delay_label(d) for d in delays_s)
    if not conditioned:
        raise UsageError(f"{name} has a fixed delay of {choices} s; it cannot run at {delay_s:g} s")
    raise UsageError(f"{name} serves the delays {choices} s, not {delay_s:g} s")


def condition_tensors(lm, delays_s: list[float]) -> dict:
    """moshi's condition tensors (for `LMGen` or the fuser), one delay per batch row."""
    attributes = [ConditionAttributes(text={DELAY_CONDITION: delay_label(d)}) for d in delays_s]
    return lm.condition_provider.prepare_and_provide(attributes)
