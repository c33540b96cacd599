"""python -m eval.latency --model M --dataset D --out DIR: how fast words and turns arrive.

- word emission latency: stream time at which a word's last token came out, minus the
  reference word end (matched words; needs reference word times);
- finalization without flush: after the audio ends, the stream time until the last word
  comes out when silence is fed in real time;
- finalization with flush: the measured wall time of the flush steps (silence pushed at
  once) until the last word, on this device;
- the compute cost of one step at --batch-size, and the streams it could keep in real time.
"""

from __future__ import annotations

import sys
import time

import torch

import dsmlab

from . import metrics, options, plots, runner
from .data import EvalData
from .results import print_table, write_results


def main(argv: list[str] | None = None) -> int:
    parser = options.parser("latency", __doc__)
    parser.add_argument(
        "--flush-samples",
        type=dsmlab.cli.non_negative_int,
        default=20,
        help="utterances on which the flush is timed",
    )
    args = runner.parse(parser, argv)

    def body() -> int:
        options.fill_defaults(args, "latency")
        with runner.run(args, args.model, args.out) as result:
            if not result.is_main:
                return 0
            summary, extra = latency_summary(result, args.flush_samples, args.batch_size)
            write_results(result, "latency", summary, extra)
            plots.latency_cdf(
                result.records, args.out / "latency_cdf.png", extra["flush_latencies_s"]
            )
        print_table(f"{result.model.name} on {result.data.name}: latency", summary)
        return 0

    return runner.main_guard(body, args)


def latency_summary(result: runner.Run, flush_samples: int, batch_size: int):
    """Latency metrics of a finished run, with the flush and step cost measured now."""
    flushes = measure_flush(result.model, result.data, result.records, flush_samples)
    step_s = measure_step(result.model, batch_size)
    summary = (
        metrics.wer_metrics(result.records, options.scoring(result.args)[1])
        | metrics.latency_metrics(result.records)
        | metrics.flush_metrics(flushes, step_s, batch_size)
    )
    return summary, {"flush_latencies_s": flushes}


def measure_flush(
    model: dsmlab.DSMModel, data: EvalData, records: list[dict], samples: int
) -> list[float]:
    """Stream each of the first `samples` utterances live, flush at its end, time the flush.

    The value is the wall time into the flush until the last text token came out (0 when
    every word was out before the audio ended).
    """
    wanted = {r["index"] for r in records if r["status"] == "ok"}
    latencies = []
    for utt in data:
        if len(latencies) >= samples:
            break
        if utt.index not in wanted or utt.audio is None:
            continue
        audio = torch.from_numpy(utt.audio)
        prefix = torch.zeros(round(model.prefix_s * model.sample_rate))
        pcm = torch.cat([prefix, audio])
        pcm = torch.nn.functional.pad(pcm, (0, -pcm.numel() % model.frame_size))
        with dsmlab.Stepper(model, 1) as stepper:
            for frame in pcm.view(-1, 1, model.frame_size):
                stepper.step_tensors(frame[None])
            last = stepper.flush([0]).last_text()
        latencies.append(0.0 if last is None else last[1])
    return latencies


def measure_step(model: dsmlab.DSMModel, batch_size: int, steps: int = 20) -> float:
    """Seconds per step at `batch_size` (frames of noise, after 3 warm-up steps)."""
    frames = 0.1 * torch.randn(batch_size, 1, model.frame_size)
    with dsmlab.Stepper(model, batch_size) as stepper:
        for _ in range(3):
            stepper.step_tensors(frames)
        _sync(model)
        start = time.perf_counter()
        for _ in range(steps):
            stepper.step_tensors(frames)
        _sync(model)
    return (time.perf_counter() - start) / steps


def _sync(model: dsmlab.DSMModel) -> None:
    if model.device.type == "cuda":
        torch.cuda.synchronize(model.device)


if __name__ == "__main__":
    sys.exit(main())
